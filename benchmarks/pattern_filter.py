"""The pixel-pattern filter (sanitizer/components.py) on the grid's attacks, without
training anything: each row's train split is poisoned in memory as ingest would poison it,
and partition's filter runs on it. Per row: every class's flattest independent component
(excess kurtosis; below -1.2 the class holds two populations), the samples the filter flags
and how many of them are poisons (truth read for the benchmark only). A clean class that fell
below -1.2 would lose the side of its pixels the other classes lack.

    python benchmarks/pattern_filter.py fmnist                       # the grid's rows and variants
    python benchmarks/pattern_filter.py cifar10 --rows "clean (no attack)" sig badnets

Writes benchmarks/results/pattern-filter.md (+ JSON twin); a second dataset's rows are merged in."""

from __future__ import annotations

import argparse
import json

import numpy as np

from grid import ROWS, VARIANTS
from run_pipeline import CIFAR_DATA, REPO, machine, markdown_table

from sanitizer.attacks import build_attack
from sanitizer.config import config, load_params
from sanitizer.datasets import load_dataset
from sanitizer.components import pattern_carriers

DATA = {"fmnist": {}, "cifar10": CIFAR_DATA}
OUT = REPO / "benchmarks" / "results" / "pattern-filter"


def probe(dataset: str, rows: list[str]) -> list[dict]:
    params = load_params(REPO / "params.yaml")
    params["data"] = {**params["data"], **DATA[dataset]}
    part = config("partition", params)
    raw = load_dataset(config("data", params))
    train = raw.split("train")
    images, labels = raw.images[train], raw.labels[train]
    out = []
    for name in rows:
        attack = build_attack(config("attack", {**params, "attack": {**params["attack"], **{**ROWS, **VARIANTS}[name]}}), images.shape[1:], len(raw.classes))
        poisoned = attack.poison(images.copy(), labels.copy())
        kurtosis, flagged = pattern_carriers(poisoned.images, poisoned.labels, len(raw.classes), part.pattern_dims, part.pattern_kurtosis)
        found = [raw.classes[c] for c in np.flatnonzero(kurtosis < part.pattern_kurtosis)]
        poison = poisoned.is_poison
        out.append(
            {
                "dataset": dataset,
                "row": name,
                "kurtosis": [round(float(k), 3) for k in kurtosis],
                "classes": list(raw.classes),
                "two_populations": found,
                "flagged": int(flagged.sum()),
                "poisons_flagged": int((flagged & poison).sum()),
                "poisons": int(poison.sum()),
            }
        )
        print(f"{dataset} {name}: lowest kurtosis {min(kurtosis):.2f}, two populations in {found or 'no class'}, {int(flagged.sum())} flagged ({int((flagged & poison).sum())} of {int(poison.sum())} poisons)", flush=True)
    return out


def render(results: list[dict]) -> str:
    rows = []
    for r in results:
        low = int(np.argmin(r["kurtosis"]))
        rows.append(
            [
                r["dataset"],
                r["row"],
                f"{r['kurtosis'][low]:.2f} ({r['classes'][low]})",
                ", ".join(r["two_populations"]) or "none",
                f"{r['flagged']:,}",
                f"{r['poisons_flagged']:,} of {r['poisons']:,}",
            ]
        )
    return (
        "# The pixel-pattern filter on the grid's attacks\n\n"
        f"Command: `python benchmarks/pattern_filter.py <dataset>` (no training: each row's train split poisoned as ingest poisons it, then partition's filter). Machine: {machine()}.\n"
        "Per row: the flattest independent component over all classes (FastICA in 50 whitened principal directions of each class's pixels; a class below an excess kurtosis of -1.2 holds two populations), "
        "the classes below it, and the samples flagged as carrying a trigger (the population of such a class the other classes' images lack, by a two-Gaussian mixture along the component).\n\n"
        + markdown_table(["data", "row", "lowest kurtosis (class)", "two populations in", "flagged", "poisons flagged"], rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(DATA))
    parser.add_argument("--rows", nargs="*", default=[*ROWS, *VARIANTS])
    args = parser.parse_args()
    path = OUT.with_suffix(".json")
    kept = [r for r in json.loads(path.read_text())] if path.exists() else []
    new = probe(args.dataset, args.rows)
    done = {(r["dataset"], r["row"]) for r in new}
    results = [r for r in kept if (r["dataset"], r["row"]) not in done] + new
    path.write_text(json.dumps(results, indent=1) + "\n")
    OUT.with_suffix(".md").write_text(render(results))


if __name__ == "__main__":
    main()
