"""Relabel's keep rule at two `relabel.evidence` values on saved runs (benchmark run folders,
ground truth read): what each drops among the suspects, with the same suspects and the same
clean model, so only the rule differs. Evidence 0 is the argmax rule (keep a suspect when the
clean model predicts its given label); 1.25 nats (the default) keeps it unless the clean model
rates another class e^1.25 times its label. Prints one Markdown row per run.

    python benchmarks/relabel_pair.py benchmarks/runs/grid-fmnist-blend benchmarks/runs/grid-fmnist-sig
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sanitizer.decisions import decide  # noqa: E402
from sanitizer.layout import Paths  # noqa: E402
from sanitizer.manifest import read_aligned  # noqa: E402
from sanitizer.training import TrainSet, predict  # noqa: E402


def row(run: Path, old: float, new: float) -> str:
    paths = Paths(run / "data")
    data = TrainSet(paths.store, yaml.safe_load((run / "params.yaml").read_text())["model"]["arch"])
    logits = predict(data.load(paths.clean), data.x)
    truth = pl.read_parquet(paths.truth)
    poison = np.isin(data.split.sample_ids, truth.filter(pl.col("is_poison"))["sample_id"].to_numpy())
    suspected = read_aligned(paths.suspicion, ["suspected"], data.split.sample_ids)["suspected"].to_numpy()
    cells = []
    for evidence in (old, new):
        dropped = decide(logits, data.split.labels, suspected, min_confidence=0.5, relabel=False, evidence=evidence).decision == "drop"
        recall = 100 * (dropped & poison).sum() / max(poison.sum(), 1)
        kept_poisons = int((suspected & ~dropped & poison).sum())
        cells += [f"{recall:.2f}" if poison.any() else "n/a", f"{100 * (dropped & ~poison).sum() / (~poison).sum():.2f}", str(kept_poisons)]
    return f"| {run.name} | {int(suspected.sum())} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--evidence", nargs=2, type=float, default=(0.0, 1.25), metavar=("OLD", "NEW"))
    args = parser.parse_args()
    old, new = args.evidence
    print("| run | suspected | " + " | ".join(f"{what} at {e:g}" for e in (old, new) for what in ("recall", "FPR", "suspected poisons kept")) + " |")
    print("|---|---|---|---|---|---|---|---|")
    for run in args.runs:
        print(row(run, old, new), flush=True)


if __name__ == "__main__":
    main()
