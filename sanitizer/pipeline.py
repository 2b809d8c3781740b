"""Runs one stage: validates every params section before any work, hands the stage only the
sections sanitizer/layout.py declares for it, and writes its outputs atomically, so a stage that
fails or is killed leaves none of them behind. `stages/<name>.py` holds the stage's code;
`python -m stages.<name>`, `sanitize run <name>` and `dvc repro` all end up here."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from .config import config, load_params
from .io import atomic_outputs, write_json
from .layout import Paths, Stage, stage


class StageParams(dict):
    """Validated config objects of the params sections one stage declares. Reading any other
    section is a bug: DVC would not re-run the stage when that section changes."""

    def __init__(self, st: Stage, params: dict):
        super().__init__({name: config(name, params) for name in st.params})
        self.stage = st.name

    def __missing__(self, section: str):
        raise KeyError(f"stage {self.stage} reads params section {section!r}, which sanitizer/layout.py does not declare for it")


def run_stage(name: str, params_path: str | Path = "params.yaml", root: str | Path = "data") -> None:
    st = stage(name)
    params = load_params(params_path)  # every section, so a typo anywhere fails at the first stage
    paths = Paths(root)
    body = importlib.import_module(f"stages.{name}").run
    start = time.perf_counter()
    with atomic_outputs(*paths.outputs(st)):
        body(StageParams(st, params), paths)
        write_json(paths.root / st.timing(), {"wall_seconds": round(time.perf_counter() - start, 2)})
