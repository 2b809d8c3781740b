"""PUD's target inference on finished grid rows: the class it names, with which test, on each
row's own suspect model and store, under the params.yaml committed here (its `pud` and
`partition` sections). The issue's bar: right on every all-to-one row whose attack is strong
(>= 90 % ASR without defense), "none" on clean data.

    python benchmarks/pud_inference.py /tmp/runs/grid-fmnist-badnets /tmp/runs/grid-fmnist-clean ...

The run's ground truth (its params.yaml's attack and its metrics.json's no-defense ASR) is read
to score the answer, never by the inference. Writes benchmarks/results/pud-inference.md (+ JSON twin)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import yaml

from run_pipeline import REPO, commit, machine, markdown_table

from sanitizer.config import config, load_params
from sanitizer.methods.pud import infer_target
from sanitizer.training import TrainSet, predict

STRONG = 0.9  # no-defense ASR from which an attack counts as strong (the grids' "weak" mark)


def infer(run: Path, params: dict) -> dict:
    own = yaml.safe_load((run / "params.yaml").read_text())
    attack = own["attack"]
    data = TrainSet(run / "data/ingest/store", own["model"]["arch"])
    suspect = data.load(run / "data/train_suspect/model.pt").eval()
    classes = data.store.classes
    cfg, part = config("pud", params), config("partition", params)
    features = predict(suspect, data.x, desc="suspect features", features=True)
    generator = torch.Generator().manual_seed(cfg.seed)
    _, summary = infer_target(suspect, features, data.x, data.split.images, data.y, classes, cfg, part, generator)
    asr = json.loads((run / "data/evaluate/metrics.json").read_text())["no_defense"].get("asr")
    mode = attack.get("mode", "all-to-one") if attack["name"] != "none" else "clean"
    strong = asr is not None and asr >= STRONG
    expected = "none" if mode != "all-to-one" else classes[attack["target"]] if strong else None  # None: weak, no bar
    return {"attack": attack["name"], "mode": mode, "true_target": classes[attack["target"]], "no_defense_asr": asr, "expected": expected, **summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="finished grid row folders")
    parser.add_argument("--name", default="pud-inference", help="results file name (default: pud-inference)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    params = load_params(REPO / "params.yaml")
    rows = {run.name: infer(run, params) for run in args.runs}
    doc = {"command": "python benchmarks/pud_inference.py " + " ".join(r.name for r in args.runs), "machine": machine(), "commit": commit(), "rows": rows}
    out = REPO / "benchmarks" / "results"
    (out / f"{args.name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    header = ["grid row", "attack", "true target", "no-defense ASR", "PUD's target", "named by", "classes partition's tests name", "landings: top anomaly index", "right"]
    table = []
    for name, r in rows.items():
        right = "n/a (weak)" if r["expected"] is None else "yes" if r["target"] == r["expected"] else "**no**"
        asr = "n/a" if r["no_defense_asr"] is None else f"{100 * r['no_defense_asr']:.2f}"
        true = "-" if r["mode"] == "clean" else "none (all-to-all)" if r["mode"] == "all-to-all" else r["true_target"]
        table.append([name, f"{r['attack']} {r['mode']}", true, asr, r["target"], r["target_by"], ", ".join(r["named_classes"]) or "-", f"{r['target_anomaly']:.1f}", right])
    held = sum(r["expected"] is not None and r["target"] == r["expected"] for r in rows.values())
    judged = sum(r["expected"] is not None for r in rows.values())
    (out / f"{args.name}.md").write_text(
        "# PUD's target inference on the grid's suspects\n\n"
        f"Command: `{doc['command']}` (folders from `benchmarks/grid.py`). Code: {doc['commit']}. Machine: {doc['machine']}.\n"
        "Each row: the run's own suspect model and store, PUD's `infer_target` under the committed params.yaml. "
        f"Right: the attack's target where it is all-to-one and strong (>= {100 * STRONG:.0f} % ASR without defense), "
        f"\"none\" on clean data and all-to-all; weak all-to-one rows have no bar. **{held} of {judged} right.**\n\n"
        + markdown_table(header, table)
        + "\n"
    )
    print(markdown_table(header, table))


if __name__ == "__main__":
    sys.exit(main())
