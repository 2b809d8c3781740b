"""The two models a defense trains for users, each under both of its training choices, on saved
runs (benchmark run folders): the same samples, seed and recipe, so only the choice differs.

- train_clean by `fit`'s class balance: "draw" draws each batch class-balanced with
  replacement; "loss" sees every sample once an epoch with a class-weighted loss.
- relabel's fine-tune of the run's stored clean model on its kept samples: the last step's
  weights, or their moving average (`relabel.ema` 0.99).

Prints one Markdown row per run: test ACC / ASR of each, beside the run's oracle (read from
its metrics.json, for scale).

    python benchmarks/final_models.py benchmarks/runs/grid-fmnist-clean benchmarks/runs/grid-fmnist-badnets
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sanitizer.config import config, load_params  # noqa: E402
from sanitizer.evaluation import Bench  # noqa: E402
from sanitizer.layout import Paths  # noqa: E402
from sanitizer.manifest import read_aligned  # noqa: E402
from sanitizer.steps import tuning_lr  # noqa: E402
from sanitizer.training import TrainSet, as_tensor, fit  # noqa: E402

BALANCES = ("draw", "loss")
EMAS = (None, 0.99)


def row(run: Path) -> str:
    params, paths = load_params(run / "params.yaml"), Paths(run / "data")
    train_cfg, relabel_cfg = config("train", params), config("relabel", params)
    data = TrainSet(paths.store, config("model", params).arch)
    bench = Bench(data.arch, data.store, paths.asr, config("evaluate", {"evaluate": {"robust_samples": 0}}))
    cells = []

    def measure(make) -> None:
        start = time.perf_counter()
        m = bench.measure(make())
        asr = "n/a" if m["asr"] is None else f"{100 * m['asr']:.2f}"
        cells.extend([f"{100 * m['acc']:.2f} / {asr}", f"{time.perf_counter() - start:.0f}"])

    ids = data.split.sample_ids
    keep = torch.from_numpy(np.flatnonzero(~read_aligned(paths.suspicion, ["suspected"], ids)["suspected"].to_numpy()))
    labels = as_tensor(data.split.labels)[keep]
    for balance in BALANCES:
        measure(lambda: fit(data.new_model(train_cfg.seed), data.x[keep], labels, train_cfg, balance=balance, desc=f"train_clean, balance={balance}"))
    decisions = read_aligned(paths.decisions, ["decision", "new_label"], ids)
    kept = torch.from_numpy(np.flatnonzero(decisions["decision"].to_numpy() != "drop"))
    new_labels = as_tensor(decisions["new_label"].to_numpy())[kept]
    for ema in EMAS:
        def tune():
            model = data.load(paths.clean)
            return fit(model, data.x[kept], new_labels, train_cfg, lr=tuning_lr(model, relabel_cfg.lr), epochs=relabel_cfg.epochs, ema=ema, desc=f"relabel, ema={ema}")
        measure(tune)
    oracle = json.loads(paths.metrics.read_text())["oracle"]["acc"]
    return f"| {run.name} | {100 * oracle:.2f} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    choices = [f"train_clean balance={b}" for b in BALANCES] + [f"relabel ema={e}" for e in EMAS]
    print("| run | oracle ACC | " + " | ".join(f"{c}: ACC / ASR | s" for c in choices) + " |")
    print("|---|---|" + "---|" * 2 * len(choices))
    for run in args.runs:
        print(row(run), flush=True)


if __name__ == "__main__":
    main()
