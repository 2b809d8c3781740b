"""Does the CPU model learn CIFAR-10? One training run of the no-defense model on all 50,000
train images of the shared CIFAR-10 Parquet (no attack), with params.yaml's train section
(nulls: the architecture's recipe) and `--set` overrides; test accuracy, wall time and
throughput go to benchmarks/results/cifar10-recipe.{json,md}, one entry per run label.
Issue 17's bar: >= 85 % test accuracy with one training <= 10 min on two cores.

    python benchmarks/cifar_recipe.py --label default
    python benchmarks/cifar_recipe.py --label 16-epochs --set train.epochs=16 --seeds 0 1 2"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, replace

import torch
import yaml

from run_pipeline import CIFAR, REPO, machine, markdown_table, parse_sets, merge
from sanitizer.config import DataConfig, config
from sanitizer.datasets import load_dataset
from sanitizer.models import RECIPES, resolve_arch
from sanitizer.training import accuracy, as_tensor, fit, new_model

OUT = REPO / "benchmarks/results/cifar10-recipe.json"


def run(arch: str, train_cfg, x, y, x_test, y_test, shape) -> dict:
    """One training; `train_cfg` is already resolved against the architecture's recipe."""
    start = time.perf_counter()
    model = fit(new_model(arch, shape, 10, train_cfg.seed), x, y, train_cfg, desc=f"training {arch}, seed {train_cfg.seed}")
    train_s = time.perf_counter() - start
    return {"seed": train_cfg.seed, "test_acc": accuracy(model, x_test, y_test), "train_s": train_s, "img_per_s": train_cfg.epochs * len(x) / train_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--label", required=True, help="name of this run in the results")
    parser.add_argument("--set", action="append", default=[], help="SECTION.KEY=VALUE over params.yaml (train, model)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    params = merge(yaml.safe_load((REPO / "params.yaml").read_text()), parse_sets(args.set))
    raw = load_dataset(DataConfig(source="cifar10", path=CIFAR))
    train, test = raw.splits == "train", raw.splits == "test"
    x, y = as_tensor(raw.images[train]), as_tensor(raw.labels[train])
    x_test, y_test = as_tensor(raw.images[test]), as_tensor(raw.labels[test])
    shape = tuple(raw.images.shape[1:])
    arch = resolve_arch(config("model", params).arch, shape)
    recipe = config("train", params).resolved(RECIPES.get(arch))
    runs = [run(arch, replace(recipe, seed=s), x, y, x_test, y_test, shape) for s in args.seeds]
    for r in runs:
        print(json.dumps(r), flush=True)
    doc = json.loads(OUT.read_text()) if OUT.exists() else {"machine": machine(), "runs": {}}
    doc["machine"] = machine()
    doc["runs"][args.label] = {"arch": arch, "train": asdict(recipe), "threads": torch.get_num_threads(), "runs": runs}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    OUT.with_suffix(".md").write_text(report(doc))


def report(doc: dict) -> str:
    rows = []
    for label, entry in doc["runs"].items():
        accs = [100 * r["test_acc"] for r in entry["runs"]]
        secs = [r["train_s"] for r in entry["runs"]]
        spread = f" ± {statistics.stdev(accs):.2f} ({len(accs)} seeds)" if len(accs) > 1 else " (1 seed)"
        t = entry["train"]
        recipe = f"{t['epochs']} ep, batch {t['batch_size']}, lr {t['lr']}, mom {t['momentum']}, wd {t['weight_decay']}, ls {t['label_smoothing']}, aug {t['augment']} (shift {t['shift']}), {t.get('schedule', 'cosine')}"
        rows.append([label, entry["arch"], recipe, f"{statistics.mean(accs):.2f}{spread}", f"{statistics.mean(secs):.0f}", f"{statistics.mean(r['img_per_s'] for r in entry['runs']):.0f}"])
    return (
        "# CIFAR-10 on a CPU: one training of the no-defense model\n\n"
        f"Command: `python benchmarks/cifar_recipe.py --label LABEL [--set train.KEY=VALUE]`. Machine: {doc['machine']}.\n"
        "All 50,000 train images of the shared CIFAR-10 JPEG Parquet, no attack; test accuracy on its 10,000 test images, "
        "no test-time augmentation. Bar (issue 17): >= 85 % with one training <= 600 s.\n\n"
        + markdown_table(["run", "arch", "recipe", "test ACC %", "train s", "img/s"], rows)
    )


if __name__ == "__main__":
    main()
