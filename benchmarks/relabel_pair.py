"""Relabel's old and new rule on one saved run (a benchmark's run folder, ground truth read):
what each keeps among the suspects, with the same suspects and the same clean model. Old rule:
keep when the clean model predicts the given label with p >= 0.5; new: keep when it predicts it.

    python benchmarks/relabel_pair.py benchmarks/runs/grid-fmnist-blend
"""

import sys
from pathlib import Path

import numpy as np
import polars as pl
import torch.nn.functional as F
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sanitizer.decisions import decide  # noqa: E402
from sanitizer.layout import Paths  # noqa: E402
from sanitizer.manifest import read_aligned  # noqa: E402
from sanitizer.training import TrainSet, predict  # noqa: E402


def main(run: Path) -> None:
    paths = Paths(run / "data")
    data = TrainSet(paths.store, yaml.safe_load((run / "params.yaml").read_text())["model"]["arch"])
    logits = predict(data.load(paths.clean), data.x)
    truth = pl.read_parquet(run / "data/ingest/truth.parquet")
    poison = np.isin(data.split.sample_ids, truth.filter(pl.col("is_poison"))["sample_id"].to_numpy())
    suspected = read_aligned(paths.suspicion, ["suspected"], data.split.sample_ids)["suspected"].to_numpy()
    new = decide(logits, data.split.labels, suspected, min_confidence=0.5, relabel=False)
    prob = F.softmax(logits.float(), 1).numpy()
    kept = {
        "old": suspected & (prob.argmax(1) == data.split.labels) & (prob.max(1) >= 0.5),  # no longer in the code
        "new": suspected & (new.decision == "keep"),
    }
    for rule, keep in kept.items():
        dropped = suspected & ~keep
        recall = 100 * (dropped & poison).sum() / max(poison.sum(), 1)
        print(f"{rule} rule: recall {recall:.2f} %, FPR {100 * (dropped & ~poison).sum() / (~poison).sum():.2f} %")
    extra = kept["new"] & ~kept["old"]
    print(f"kept by the new rule only: {(extra & ~poison).sum()} clean, {(extra & poison).sum()} poisons")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
