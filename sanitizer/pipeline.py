"""Runs one stage: validates every params section before any work, hands the stage only the
sections sanitizer/layout.py declares for it, and writes its outputs atomically, so a stage that
fails or is killed leaves none of them behind. `stages/<name>.py` holds the stage's code;
`python -m stages.<name>`, `sanitize run <name>` and `dvc repro` all end up here."""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from .config import config, load_params
from .errors import SanitizerError
from .io import atomic_outputs, read_json, write_json
from .layout import Paths, Stage, stage, writer


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
    store = require_same_store(paths, st.reads) if st.reads else None
    body = importlib.import_module(f"stages.{name}").run
    start = time.perf_counter()
    with atomic_outputs(*paths.outputs(st)):
        body(StageParams(st, params), paths)
        if not st.reads:  # ingest: the store it just wrote
            from .store import SampleStore

            store = SampleStore(paths.store).fingerprint
        # The stage's record: its wall time, and which sample store its outputs come from.
        write_json(paths.root / st.timing(), {"wall_seconds": round(time.perf_counter() - start, 2), "store": store})


def require_same_store(paths: Paths, artefacts) -> str | None:
    """The sample store the artefacts were computed from, by the records of the stages that
    wrote them. Inputs from different stores (ingest re-ran, and not every stage after it did)
    would give a silently wrong result: that is an error naming the stale ones."""
    current = _store_of(paths, stage("ingest"))
    stores = {w.name: _store_of(paths, w) for w in map(writer, artefacts)}
    never = sorted(name for name, fp in stores.items() if fp is None)
    if current is not None and never:
        raise SanitizerError(f"{', '.join(never)} has not run on this sample store: run it first (`dvc repro` runs what is missing)")
    stale = sorted(name for name, fp in stores.items() if fp != current)
    if stale:
        raise SanitizerError(
            f"the outputs of {', '.join(stale)} come from another run (not from the sample store ingest wrote last); "
            f"re-run {', '.join(stale)} and the stages after it (`dvc repro` does)"
        )
    return current


def _store_of(paths: Paths, st: Stage) -> str | None:
    try:
        return read_json(paths.root / st.timing()).get("store")
    except (OSError, ValueError, AttributeError):  # not run yet, or a damaged record
        return None
