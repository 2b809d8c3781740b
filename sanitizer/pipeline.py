"""Runs one stage: validates every params section before any work, hands the stage only the
sections sanitizer/layout.py declares for it, and writes its outputs atomically, so a stage that
fails or is killed leaves none of them behind. `stages/<name>.py` holds the stage's code;
`python -m stages.<name>`, `sanitize run <name>` and `dvc repro` all end up here."""

from __future__ import annotations

import importlib
import resource
import time
from pathlib import Path

from .config import config, load_params
from .errors import SanitizerError
from .io import PLACEHOLDER, atomic_outputs, atomic_path, read_json, write_json
from .layout import ARTEFACTS, STAGES, Paths, Stage, stage, writer


class StageParams(dict):
    """Validated config objects of the params sections one stage declares. Reading any other
    section is a bug: DVC would not re-run the stage when that section changes."""

    def __init__(self, st: Stage, params: dict):
        super().__init__({name: config(name, params) for name in st.params})
        self.stage = st
        self._params = params

    def __missing__(self, section: str):
        raise KeyError(f"stage {self.stage.name} reads params section {section!r}, which sanitizer/layout.py does not declare for it")

    def own(self, section: str | None):
        """The chosen method's own section (None for a method without one), for the stage
        that runs it; dvc.yaml lists every method's section for that stage."""
        if not self.stage.runs_method:
            raise KeyError(f"stage {self.stage.name} does not run a method")
        return None if section is None else config(section, self._params)


def run_stage(name: str, params_path: str | Path = "params.yaml", root: str | Path = "data") -> None:
    from . import distributed

    st = stage(name)
    rank, size = distributed.world()
    if size > 1 and not st.ranks:
        raise SanitizerError(f"stage {name} does not run under torchrun yet (only {', '.join(s.name for s in STAGES if s.ranks)} does): run it as one process")
    params = load_params(params_path)  # every section, so a typo anywhere fails at the first stage
    paths = Paths(root)
    made = [a for a in st.reads if a in ARTEFACTS]
    store = require_same_store(paths, made) if made else None
    chosen = config("method", params).name
    if st.only_for is not None and chosen != st.only_for:
        body = _placeholders(st, chosen)
    else:
        body = importlib.import_module(f"stages.{name}").run
    if rank > 0:  # a helper rank: it computes its share; rank 0 owns and writes the outputs
        distributed.setup()
        body(StageParams(st, params), paths)
        distributed.teardown()
        return
    distributed.setup()
    start = time.perf_counter()
    with atomic_outputs(*paths.outputs(st)):
        body(StageParams(st, params), paths)
        if not st.reads:  # ingest: the store it just wrote
            from .store import SampleStore

            store = SampleStore(paths.store).fingerprint
        # The stage's record: its wall time, its process's peak resident memory (memory-mapped
        # store pages it touched included), and which sample store its outputs come from.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        write_json(paths.root / st.timing(), {"wall_seconds": round(time.perf_counter() - start, 2), "peak_rss_mib": round(peak, 1), "store": store})
    distributed.teardown()  # after rank 0 has written: the helper ranks wait for it


def _placeholders(st: Stage, chosen: str):
    """A stage of another method than the chosen one: a note in place of each output."""

    def body(cfg, paths: Paths) -> None:
        note = f"{PLACEHOLDER} stage {st.name} belongs to method {st.only_for}, and params.yaml [method].name is {chosen}\n"
        for artefact in st.writes:
            with atomic_path(getattr(paths, artefact)) as tmp:
                tmp.write_text(note)

    return body


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
