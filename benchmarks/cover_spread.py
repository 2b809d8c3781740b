"""How much of a run's defended ASR its training seed and the attack's cover samples (the
trigger on images that keep their own label) decide. On saved runs (benchmark run folders),
the oracle's recipe is retrained with train seeds 0..N-1 on four sets of samples: the truly
clean ones (the oracle's set), those less the covers the run dropped, those less every cover,
and what the run kept (its decisions). Reads the ground truth: a diagnosis, not a defense.

Prints one Markdown row per run and set: the test ASR of each seed and their mean.

    python benchmarks/cover_spread.py benchmarks/runs/fmnist-tact-shirt-seed2 --seeds 3
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sanitizer.config import config, load_params  # noqa: E402
from sanitizer.evaluation import Bench  # noqa: E402
from sanitizer.layout import Paths  # noqa: E402
from sanitizer.manifest import read_aligned  # noqa: E402
from sanitizer.training import TrainSet, fit  # noqa: E402


def sets(paths: Paths, ids) -> dict[str, np.ndarray]:
    truth = read_aligned(paths.truth, ["is_poison", "is_cover"], ids)
    poison, cover = truth["is_poison"].to_numpy(), truth["is_cover"].to_numpy()
    dropped = read_aligned(paths.decisions, ["decision"], ids)["decision"].to_numpy() == "drop"
    return {
        "truly clean (oracle)": ~poison,
        "less the covers the run dropped": ~poison & ~(cover & dropped),
        "less every cover": ~poison & ~cover,
        "what the run kept": ~dropped,
    }


def rows(run: Path, seeds: int):
    params, paths = load_params(run / "params.yaml"), Paths(run / "data")
    train_cfg = config("train", params)
    data = TrainSet(paths.store, config("model", params).arch)
    bench = Bench(data.arch, data.store, paths.asr, config("evaluate", {"evaluate": {"robust_samples": 0}}))
    for name, keep in sets(paths, data.split.sample_ids).items():
        idx = torch.from_numpy(np.flatnonzero(keep))
        asr = [100 * bench.measure(fit(data.new_model(seed), data.x[idx], data.y[idx], train_cfg, desc=f"{name}, seed {seed}"))["asr"] for seed in range(seeds)]
        yield f"| {run.name} | {name} | {int(keep.sum())} | " + " | ".join(f"{a:.2f}" for a in asr) + f" | {np.mean(asr):.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print("| run | trained on | samples | " + " | ".join(f"ASR seed {s}" for s in range(args.seeds)) + " | mean |")
    print("|---|---|---|" + "---|" * (args.seeds + 1))
    for run in args.runs:
        for line in rows(run, args.seeds):
            print(line, flush=True)


if __name__ == "__main__":
    main()
