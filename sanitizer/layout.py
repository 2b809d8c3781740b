"""The pipeline, declared once: every stage's name, the params sections it reads, and the
artefacts it reads and writes. dvc.yaml is generated from this table (`python -m
sanitizer.dvcfile`), and the CLI, the runner and evaluation's timings read it, so none of them
can drift from the others. A stage's code is `stages/<name>.py`.

Kept free of heavy imports: the CLI and `sanitize inspect` read it without loading torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Every artefact, by the name stages and readers use for it, relative to the data root.
ARTEFACTS = {
    "store": "ingest/store",
    "truth": "ingest/truth.parquet",
    "asr": "ingest/asr",
    "suspect": "train_suspect/model.pt",
    "oracle": "train_oracle/model.pt",
    "scores": "score/scores.parquet",
    "partition": "partition/partition.parquet",
    "rounds": "enhance/rounds.parquet",
    "enhanced": "enhance/enhanced.pt",
    "snapshots": "enhance/rounds",
    "identify": "identify/identify.parquet",
    "suspicion": "detect/suspicion.parquet",
    "method_models": "detect/models",
    "clean": "train_clean/model.pt",
    "decisions": "relabel/decisions.parquet",
    "defended": "relabel/model.pt",
    "metrics": "evaluate/metrics.json",
    "plots": "evaluate/plots",
}
METRICS = ("metrics",)  # outputs DVC treats as metrics rather than plain outs
# What people write, relative to the project root (the data root's parent): git-tracked, not
# made by any stage.
INPUTS = {"reviews": "reviews.csv"}


@dataclass(frozen=True)
class Stage:
    name: str
    params: tuple[str, ...]
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    # Reads every other stage's timing.json (evaluate reports the wall time of each).
    reads_timings: bool = False
    # A sub-stage of one method: it does its work only when params.yaml picks that method,
    # and otherwise writes placeholders (DVC needs its outputs; nothing reads them).
    only_for: str | None = None
    # Runs the method params.yaml picks: it also gets that method's own params section.
    runs_method: bool = False
    # Runs under torchrun (sanitizer/distributed.py): its ranks share the work, rank 0 writes.
    ranks: bool = False

    def timing(self) -> str:
        return f"{self.name}/timing.json"


STAGES = (
    Stage("ingest", ("data", "attack"), (), ("store", "truth", "asr")),
    Stage("train_suspect", ("model", "train"), ("store",), ("suspect",)),
    # Benchmark upper bound: reads the ground truth, so it is no defense stage.
    Stage("train_oracle", ("model", "train"), ("store", "truth"), ("oracle",)),
    # AdvrBD's own stages, cached one by one: changing the partition rate re-runs only what follows.
    Stage("score", ("method", "model", "score", "purify"), ("store", "suspect"), ("scores",), only_for="advrbd", ranks=True),
    Stage("partition", ("method", "model", "partition"), ("store", "suspect", "scores"), ("partition",), only_for="advrbd"),
    Stage("enhance", ("method", "model", "train", "enhance"), ("store", "suspect", "partition"), ("rounds", "enhanced", "snapshots"), only_for="advrbd"),
    Stage("identify", ("method", "identify"), ("store", "rounds", "partition"), ("identify",), only_for="advrbd"),
    # The method-neutral hand-over: every stage after it reads only suspicion.parquet. It reads
    # the outputs of every method's own stages (DVC needs them listed); a method uses its own.
    Stage("detect", ("method", "model", "train"), ("store", "suspect", "scores", "partition", "identify", "enhanced"), ("suspicion", "method_models"), runs_method=True),
    # A person's reviews win over the method in both: the clean model trains on what they kept
    # and relabelled, never on what they dropped, and the decisions carry their word.
    Stage("train_clean", ("model", "train"), ("store", "suspicion", "reviews"), ("clean",)),
    Stage("relabel", ("model", "train", "relabel"), ("store", "suspect", "suspicion", "clean", "reviews"), ("decisions", "defended")),
    Stage(
        "evaluate",
        ("model", "evaluate"),
        ("store", "truth", "asr", "suspect", "oracle", "suspicion", "method_models", "clean", "decisions", "defended"),
        ("metrics", "plots"),
        reads_timings=True,
    ),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
# The stages whose wall time evaluate reports: all the others.
TIMED_STAGES = tuple(s.name for s in STAGES if not s.reads_timings)


def writer(artefact: str) -> Stage:
    """The stage that writes an artefact (not one of the INPUTS)."""
    return next(s for s in STAGES if artefact in s.writes)


def stage(name: str) -> Stage:
    for s in STAGES:
        if s.name == name:
            return s
    raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}")


class Paths:
    """Where every artefact lives under one data root: `Paths("data").scores`."""

    def __init__(self, root: str | Path = "data"):
        self.root = Path(root)

    def __getattr__(self, name: str) -> Path:
        if name in INPUTS:
            return self.root.parent / INPUTS[name]
        try:
            return self.root / ARTEFACTS[name]
        except KeyError:
            raise AttributeError(f"no artefact {name!r}; artefacts: {', '.join([*ARTEFACTS, *INPUTS])}") from None

    def outputs(self, st: Stage) -> list[Path]:
        """Everything the stage writes, its timing included."""
        return [getattr(self, a) for a in st.writes] + [self.root / st.timing()]
