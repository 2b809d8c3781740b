"""The attack grid: every attack through the same AdvrBD pipeline config (params.yaml), plus a
clean-data row, one fresh `dvc repro` per row. Writes benchmarks/results/grid-<dataset>.md and
its JSON twin (per row the keys of data/evaluate/metrics.json, plus command, config, machine).

    python benchmarks/grid.py fmnist                      # the full Fashion-MNIST grid
    python benchmarks/grid.py cifar10-cpu-reduced         # CIFAR-10, reduced for a CPU
    python benchmarks/grid.py fmnist --rows sig wanet     # re-run some rows, keep the others
    python benchmarks/grid.py fmnist-gap-filter           # Fashion-MNIST, opt-in gap filter on

Rows finish one at a time and are saved as they finish, so an interrupted grid resumes with
--rows. A grid's overrides change only the dataset (and, for the reduced CPU grid, its size)
or switch on one named option for every row; the attack knobs are each attack's paper
defaults."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from run_pipeline import CIFAR, REPO, auroc, machine, markdown_table, model_cells, run_scenario

DATASETS = {
    "fmnist": ({}, "Fashion-MNIST, all 60,000 train images, small_cnn, params.yaml as committed"),
    "fmnist-gap-filter": (
        {"partition": {"max_gap": 1.25}},
        "Fashion-MNIST as `fmnist`, with the opt-in purification-gap filter (partition.max_gap 1.25)",
    ),
    # ResNet-18 on two CPU cores is ~10 min per epoch of 10k images: the CPU grid uses
    # small_cnn on a stratified 5,000-image subset (1,000 test) and 8 training epochs.
    "cifar10-cpu-reduced": (
        {
            "data": {"source": "cifar10", "path": CIFAR, "limit": 5000},
            "model": {"arch": "small_cnn"},
            "train": {"epochs": 8},
        },
        "CIFAR-10 (shared JPEG Parquet), REDUCED for a CPU: 5,000 train / 1,000 test images, small_cnn, 8 epochs",
    ),
}
ROWS = {
    "badnets": {"name": "badnets"},
    "badnets-all-to-all": {"name": "badnets", "mode": "all-to-all"},
    "blend": {"name": "blend"},
    "blend-all-to-all": {"name": "blend", "mode": "all-to-all"},
    "sig": {"name": "sig"},
    "wanet": {"name": "wanet"},
    "physical_ba": {"name": "physical_ba"},
    "tact": {"name": "tact"},
    "adaptive_blend": {"name": "adaptive_blend"},
    "adaptive_patch": {"name": "adaptive_patch"},
    "input_aware": {"name": "input_aware"},
    "clean (no attack)": {"name": "none"},
}
ASR_BAR, ACC_DROP_BAR, STRONG_ATTACK = 0.02, 0.02, 0.90


def run_dir(workdir: Path, dataset: str, row: str) -> Path:
    return workdir / f"grid-{dataset}-{row.split()[0]}"


def verdict(m: dict) -> str:
    """The issue's bars: defended ASR <= 2 % and ACC >= oracle - 2 points (clean row: ACC only)."""
    asr_ok = m["defended"]["asr"] is None or m["defended"]["asr"] <= ASR_BAR
    acc_ok = m["defended"]["acc"] >= m["oracle"]["acc"] - ACC_DROP_BAR
    return "pass" if asr_ok and acc_ok else "**FAIL** (" + ", ".join(n for n, ok in (("ASR", asr_ok), ("ACC", acc_ok)) if not ok) + ")"


def table(rows: dict[str, dict]) -> str:
    header = ["attack", "no-defense ACC / ASR", "oracle ACC / ASR", "AdvrBD ACC / ASR", "precision", "recall", "FPR"]
    header += ["AUROC AdvrBD", "AUROC loss baseline", "AUROC Eq. 3 R", "AUROC purification gap", "wall s", "bars"]
    lines = []
    for name, m in rows.items():
        cells = model_cells(m)
        if m["no_defense"]["asr"] is not None and m["no_defense"]["asr"] < STRONG_ATTACK:
            cells[0] += " (weak)"
        aucs = [auroc(m["detection"], k) for k in ("auroc", "auroc_loss_baseline", "auroc_robustness_score", "auroc_purification_gap")]
        lines.append([name, *cells, *aucs, f"{m['benchmark']['dvc_repro_seconds']:.0f}", verdict(m)])
    return markdown_table(header, lines)


def write(dataset: str, doc: dict, out: Path) -> None:
    (out / f"grid-{dataset}.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    (out / f"grid-{dataset}.md").write_text(
        f"# AdvrBD attack grid: {doc['dataset']}\n\n"
        f"Figures in percent. Command: `{doc['command']}`. Machine: {doc['machine']}.\n"
        f"One config for every row: `params.yaml` with these overrides: `{json.dumps(doc['overrides'])}`; "
        "each attack at its paper defaults (`attack:` section), rate 5 %, target 1.\n"
        f"Bars: AdvrBD ASR <= {ASR_BAR:.0%} and ACC >= oracle - {ACC_DROP_BAR * 100:.0f} points. "
        f"(weak): the attack itself reaches < {STRONG_ATTACK:.0%} ASR without defense.\n\n" + table(doc["rows"])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("--rows", nargs="*", metavar="ROW", help=f"any of {', '.join(ROWS)} (default: all)")
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "runs")
    args = parser.parse_args()
    unknown = set(args.rows or ()) - set(ROWS)
    if unknown:
        parser.error(f"unknown row(s) {sorted(unknown)}")
    overrides, description = DATASETS[args.dataset]
    out = REPO / "benchmarks" / "results"
    twin = out / f"grid-{args.dataset}.json"
    previous = json.loads(twin.read_text())["rows"] if twin.exists() and args.rows else {}
    doc = {
        "dataset": description,
        "command": f"python benchmarks/grid.py {args.dataset}",
        "overrides": overrides,
        "config": yaml.safe_load((REPO / "params.yaml").read_text()),
        "machine": machine(),
        "rows": previous,
    }
    for row in args.rows or ROWS:
        print(f"running {args.dataset} / {row} ...", flush=True)
        scenario = {**overrides, "attack": ROWS[row]}
        proj = run_dir(args.workdir, args.dataset, row)
        doc["rows"][row] = run_scenario(proj.name, scenario, args.workdir, f"{doc['command']} --rows '{row}'")
        doc["rows"] = {r: doc["rows"][r] for r in ROWS if r in doc["rows"]}
        write(args.dataset, doc, out)
        print(table({row: doc["rows"][row]}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
