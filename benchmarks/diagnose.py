"""Why a grid row fails: how many poisons reached the trusted set D_s, and whether the clean
reference C trained on D_s picked up the backdoor. Reads the run folders a grid left behind
(benchmarks/runs/grid-<dataset>-<row>/) and writes benchmarks/results/diagnosis-<dataset>.md.

    python benchmarks/grid.py fmnist && python benchmarks/diagnose.py fmnist

AdvrBD's consistency log p_E(y|x) - log p_C(y|x) only separates poisons while C has not learnt
the trigger; C trains on D_s, so a few poisons in D_s are enough to blind it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from sanitizer.layout import Paths
from sanitizer.store import SampleStore

from grid import DATASETS, ROWS, run_dir
from run_pipeline import REPO, markdown_table, pct


def diagnose(run: Path) -> dict:
    """Per round k, D_s is the seed plus everything that joined before round k."""
    data = Paths(run / "data")
    truth = pl.read_parquet(data.truth).sort("sample_id")
    joined = pl.read_parquet(data.rounds).sort("sample_id")["joined_round"].to_numpy()
    loss = pl.read_parquet(data.scores).sort("sample_id")["loss"].to_numpy()
    rounds = round_rows(run)
    poison, cover = truth["is_poison"].to_numpy(), truth["is_cover"].to_numpy()
    seed = joined == 0
    out = {"poisons": int(poison.sum()), "seed_loss_cut": float(loss[seed].min()), "rounds": []}
    out["seed_worst_class"] = _worst_class(data, seed, poison)
    out["poison_median_loss"] = float(np.median(loss[poison])) if poison.any() else None
    for row in rounds:
        in_ds = (joined >= 0) & (joined < row["round"])
        out["rounds"].append(
            {**row, "ds_size": int(in_ds.sum()), "ds_poisons": int((in_ds & poison).sum()), "ds_covers": int((in_ds & cover).sum())}
        )
    return out


def round_rows(run: Path) -> list[dict]:
    """ACC and ASR of the enhanced model E and the clean reference C after each round."""
    from sanitizer.config import config
    from sanitizer.evaluation import Bench

    data = Paths(run / "data")
    arch = config("model", yaml.safe_load((run / "params.yaml").read_text())).arch
    bench = Bench(arch, SampleStore(data.store), data.asr, config("evaluate", {"evaluate": {"robust_samples": 0}}))
    rows = []
    for enhanced in sorted(data.snapshots.glob("round-*-enhanced.pt"), key=lambda p: int(p.name.split("-")[1])):
        k = int(enhanced.name.split("-")[1])
        e = bench.measure(bench.model(enhanced))
        c = bench.measure(bench.model(enhanced.with_name(f"round-{k}-clean.pt")))
        rows.append({"round": k, "enhanced_acc": e["acc"], "enhanced_asr": e["asr"], "clean_acc": c["acc"], "clean_asr": c["asr"]})
    return rows


def _worst_class(data: Paths, seed: np.ndarray, poison: np.ndarray) -> dict:
    """The seed's class with the largest poison share. C trains on D_s class-balanced, so a class
    that the seed holds few clean samples of gives its poisons a large weight."""
    store = SampleStore(data.store)
    labels = store.rows("train")["label"].to_numpy()  # labels only: no image load
    size = np.bincount(labels[seed], minlength=len(store.classes))
    poisons = np.bincount(labels[seed & poison], minlength=len(store.classes))
    worst = int(np.argmax(poisons / np.maximum(size, 1)))
    return {"class": store.classes[worst], "size": int(size[worst]), "poisons": int(poisons[worst])}


def table(rows: dict[str, dict]) -> str:
    header = ["attack", "poisons in D_s (covers), per round", "C ASR per round", "E ASR per round", "poison median loss", "seed loss cut", "seed's most-poisoned class"]
    lines = []
    for name, d in rows.items():
        r = d["rounds"]
        per_round = " → ".join(f"{x['ds_poisons']} ({x['ds_covers']})" for x in r)
        c_asr = " → ".join(pct(x["clean_asr"]) for x in r)
        e_asr = " → ".join(pct(x["enhanced_asr"]) for x in r)
        median = "n/a" if d["poison_median_loss"] is None else f"{d['poison_median_loss']:.3f}"
        w = d["seed_worst_class"]
        worst = f"{w['class']}: {w['poisons']} of {w['size']}" if w["poisons"] else "none"
        lines.append([name, per_round, c_asr, e_asr, median, f"{d['seed_loss_cut']:.3f}", worst])
    return markdown_table(header, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "runs")
    args = parser.parse_args()
    runs = {row: run_dir(args.workdir, args.dataset, row) for row in ROWS}
    missing = [str(p) for p in runs.values() if not Paths(p / "data").metrics.exists()]
    if missing:
        sys.exit("no finished grid run in: " + ", ".join(missing) + f"\nrun `python benchmarks/grid.py {args.dataset}` first")
    rows = {row: diagnose(path) for row, path in runs.items()}
    out = REPO / "benchmarks" / "results" / f"diagnosis-{args.dataset}.md"
    out.write_text(
        f"# Where D_s went wrong: {DATASETS[args.dataset][1]}\n\n"
        f"Generated by `python benchmarks/diagnose.py {args.dataset}` from the run folders of "
        f"`python benchmarks/grid.py {args.dataset}`. Round k's clean reference C trains on D_s as it "
        "stands at round k (the seed, then grown by the lowest-consistency samples); ASR in percent on "
        "the attacker's test set. The seed is the samples with the highest suspect-model loss at their "
        "given label; `seed loss cut` is the lowest loss that still made it in. `seed's most-poisoned "
        "class`: the class with the largest poison share among the seed's samples (C trains class-balanced, "
        "so those poisons carry that class's whole weight).\n\n" + table(rows)
    )
    print(out.read_text())


if __name__ == "__main__":
    main()
