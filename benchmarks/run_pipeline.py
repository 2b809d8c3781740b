"""Run the whole pipeline (`dvc repro`) from scratch for each scenario in a fresh project copy,
time it, time a second (no-op) `dvc repro`, and write the figures to benchmarks/results/.

    python benchmarks/run_pipeline.py                      # every scenario
    python benchmarks/run_pipeline.py fmnist-badnets       # some of them

All scenarios share params.yaml; a scenario only changes the dataset and the attack
(and, for CIFAR-10 on a CPU, shrinks the run, which its row says)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from conftest import make_project  # noqa: E402  (one way to lay out a fresh project)

CIFAR = str(REPO.parent / "shared/datasets/cifar10-jpeg")
SCENARIOS = {
    "fmnist-badnets": {},
    "fmnist-blend": {"attack": {"name": "blend"}},
    "fmnist-clean": {"attack": {"name": "none"}},
    # ResNet-18 takes ~10 min an epoch on 10k CIFAR images on two cores: the CPU run uses
    # small_cnn on a 10k subset. The GPU machine runs the full configuration.
    "cifar10-badnets-cpu-reduced": {
        "data": {"source": "cifar10", "path": CIFAR, "limit": 10000},
        "model": {"arch": "small_cnn"},
        "train": {"epochs": 8},
    },
}


def run_scenario(name: str, overrides: dict, workdir: Path, command: str) -> dict:
    """dvc repro from scratch in a fresh copy, then a no-op repro; metrics.json plus timings."""
    proj = workdir / name
    if proj.exists():
        shutil.rmtree(proj)
    make_project(proj, overrides)
    start = time.perf_counter()
    subprocess.run(["dvc", "repro"], cwd=proj, check=True, capture_output=True)
    wall = time.perf_counter() - start
    start = time.perf_counter()
    noop = subprocess.run(["dvc", "repro"], cwd=proj, check=True, capture_output=True, text=True)
    noop_wall = time.perf_counter() - start
    metrics = json.loads((proj / "data/evaluate/metrics.json").read_text())
    metrics["benchmark"] = {
        "scenario": name,
        "overrides": overrides,
        "dvc_repro_seconds": round(wall, 1),
        "noop_repro_seconds": round(noop_wall, 2),
        "noop_ran_nothing": "Running stage" not in noop.stdout,
        "machine": machine(),
        "command": command,
    }
    return metrics


def machine() -> str:
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {os.cpu_count()} cores, {device}, Python {platform.python_version()}, torch {torch.__version__}"


def pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def auroc(detection: dict, key: str) -> str:
    return "n/a" if detection.get(key) is None else f"{detection[key]:.4f}"


def model_cells(m: dict) -> list[str]:
    """Table cells shared by every benchmark: ACC / ASR of each model, then precision, recall, FPR."""
    d = m["detection"]
    models = [f"{pct(m[k]['acc'])} / {pct(m[k]['asr'])}" for k in ("no_defense", "oracle", "defended")]
    return models + [pct(d.get(k)) for k in ("precision", "recall", "fpr")]


def markdown_table(header: list[str], rows: list[list]) -> str:
    line = lambda cells: "| " + " | ".join(map(str, cells)) + " |\n"  # noqa: E731
    return line(header) + "|" + "---|" * len(header) + "\n" + "".join(map(line, rows))


def table(results: dict[str, dict]) -> str:
    header = ["scenario", "no-defense ACC / ASR", "oracle ACC / ASR", "defended ACC / ASR", "precision", "recall", "FPR"]
    header += ["flagged", "dropped", "AUROC (ours / Eq. 3 R / loss / gap)", "dvc repro s", "no-op s"]
    rows = []
    for name, m in results.items():
        d, b = m["detection"], m["benchmark"]
        auc = " / ".join(auroc(d, k) for k in ("auroc", "auroc_robustness_score", "auroc_loss_baseline", "auroc_purification_gap"))
        rows.append([name, *model_cells(m), d["flagged"], m["decisions"]["drop"], auc, b["dvc_repro_seconds"], b["noop_repro_seconds"]])
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "runs")
    args = parser.parse_args()
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}")
    out = REPO / "benchmarks" / "results"
    for name in args.scenarios or SCENARIOS:
        print(f"running {name} ...", flush=True)
        metrics = run_scenario(name, SCENARIOS[name], args.workdir, f"python benchmarks/run_pipeline.py {name}")
        (out / f"{name}.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        print(table({name: metrics}), flush=True)
    results = {n: json.loads((out / f"{n}.json").read_text()) for n in SCENARIOS if (out / f"{n}.json").exists()}
    (out / "pipeline.md").write_text(
        "# AdvrBD pipeline benchmark\n\nFigures in percent; generated by `python benchmarks/run_pipeline.py`.\n\n" + table(results)
    )


if __name__ == "__main__":
    main()
