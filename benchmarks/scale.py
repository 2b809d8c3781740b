"""How the default pipeline's cost grows with the data: one fresh `dvc repro` (ingest ->
evaluate, params.yaml as committed) per train-set size, each stage's wall time and peak memory
(its process's peak resident set, memory-mapped store pages it touched included). Cost
should grow linearly with the samples.

    python benchmarks/scale.py                            # Fashion-MNIST at 10k, 30k and 60k
    python benchmarks/scale.py --sizes 10000 --cifar      # ... and CIFAR-10's 50k, the same config

Writes benchmarks/results/scale.md and its JSON twin. Take the figures on an idle machine: a
second torch process on 2 cores makes every figure meaningless."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from run_pipeline import CIFAR_DATA, REPO, machine, markdown_table, run_scenario

from sanitizer.layout import TIMED_STAGES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 30_000, 60_000], help="Fashion-MNIST train samples (60000 = all)")
    parser.add_argument("--cifar", action="store_true", help="also CIFAR-10, all 50,000 train images")
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "runs")
    args = parser.parse_args()
    command = "python benchmarks/scale.py " + " ".join(["--sizes", *map(str, args.sizes)] + (["--cifar"] if args.cifar else []))
    if any(not 0 < n <= 60_000 for n in args.sizes):
        parser.error("--sizes: Fashion-MNIST has 60,000 train images; give sizes from 1 to 60000")
    runs = [(f"fashion-mnist {n:,}", {"data": {"limit": 0 if n == 60_000 else n}}) for n in args.sizes]
    if args.cifar:
        runs.append(("cifar10 50,000", {"data": CIFAR_DATA}))
    rows = {}
    for label, overrides in runs:
        print(f"running {label} ...", flush=True)
        m = run_scenario(f"scale-{label.replace(' ', '-').replace(',', '')}", overrides, args.workdir, command)
        rows[label] = {"wall_seconds": m["wall_seconds"], "peak_rss_mib": m["peak_rss_mib"], "dvc_repro_seconds": m["benchmark"]["dvc_repro_seconds"]}
        write(rows, command)


def write(rows: dict, command: str) -> None:
    out = REPO / "benchmarks" / "results"
    doc = {"command": command, "machine": machine(), "rows": rows}
    (out / "scale.json").write_text(json.dumps(doc, indent=2) + "\n")
    labels = list(rows)
    first = rows[labels[0]]
    header = ["stage", *(f"{label}: s" for label in labels), *(f"{label}: peak MiB" for label in labels)]
    table = [
        [name, *(f"{rows[label]['wall_seconds'].get(name, 0):.1f}" for label in labels), *(f"{rows[label]['peak_rss_mib'].get(name, 0):.0f}" for label in labels)]
        for name in TIMED_STAGES
        if name in first["wall_seconds"]
    ]
    table.append(["**dvc repro**", *(f"{rows[label]['dvc_repro_seconds']:.0f}" for label in labels), *([""] * len(labels))])
    (out / "scale.md").write_text(
        "# Scale: the default pipeline at several data sizes\n\n"
        f"Command: `{command}`. Machine: {doc['machine']}. params.yaml as committed, one fresh `dvc repro` per size.\n"
        "Peak MiB: the stage process's peak resident set (torch itself is ~530 MiB; memory-mapped store pages the stage "
        "touched count too, though the kernel can drop them).\n\n" + markdown_table(header, table) + "\n"
    )
    print(markdown_table(header, table), flush=True)


if __name__ == "__main__":
    sys.exit(main())
