"""Why PUD's target inference misses some all-to-one attacks: where a suspect model's
adversarial examples land, for finished grid rows (their suspect models and stores).

- L-inf landings: untargeted PGD-7 at eps 6/255 (PUD's budget), 16/255 and 32/255 on 3,000
  train samples; per class, the share of the successful ones landing in it. PUD infers the
  target from the 6/255 shares.
- Universal patches: one shared, unbounded k x k patch (k = a quarter of the side) per position
  on a grid, trained to raise the loss of 1,000 train samples at their given labels; on 1,000
  others, how many it fools and the class they land in. A patch trigger is a universal patch.

    python benchmarks/pud_target.py benchmarks/runs/grid-fmnist-pud-badnets benchmarks/runs/grid-fmnist-pud-clean ...

`benchmarks/landing.py RUN` gives one run's landings class by class, with more budgets and per-sample
patches. Writes benchmarks/results/pud-target.md (+ JSON twin)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from run_pipeline import REPO, machine, markdown_table

from sanitizer.steps import adversarial
from sanitizer.training import TrainSet, to_float

EPS = (6, 16, 32)


def landings(model, x, y, classes: int, eps: float, generator) -> tuple[float, np.ndarray]:
    """Share of samples moved off their label, and per class the share of the moved ones."""
    moved = torch.zeros(classes)
    for start in range(0, len(x), 500):
        xb, yb = x[start : start + 500], y[start : start + 500]
        x_adv = adversarial(model, xb, yb, eps, 7, generator)
        with torch.no_grad():
            land = model(x_adv).argmax(1)
        moved += torch.bincount(land[land != yb], minlength=classes)
    return float(moved.sum()) / len(x), (moved / moved.sum().clamp_min(1)).numpy()


def universal_patch(model, x, y, mask, generator, steps: int = 60) -> torch.Tensor:
    delta = (torch.rand(x.shape[1:], generator=generator) * 2 - 1) * mask
    for _ in range(steps):
        delta.requires_grad_(True)
        idx = torch.randint(len(x), (256,), generator=generator)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(torch.clamp(x[idx] + delta, 0, 1)), y[idx]), delta)
        delta = (delta + 0.1 * grad.sign() * mask).clamp(-1, 1).detach()
    return delta


def probe(run: Path) -> dict:
    params = yaml.safe_load((run / "params.yaml").read_text())
    data = TrainSet(run / "data/ingest/store", params["model"]["arch"])
    model = data.load(run / "data/train_suspect/model.pt").eval().requires_grad_(False)
    classes = data.store.classes
    generator = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(data.x), generator=generator)[:3000]
    x, y = to_float(data.x[pick], "cpu"), data.y[pick]
    out = {"attack": params["attack"]["name"], "mode": params["attack"].get("mode", "all-to-one"), "target": classes[params["attack"]["target"]], "linf": {}}
    for eps in EPS:
        moved, shares = landings(model, x, y, len(classes), eps / 255, generator)
        out["linf"][eps] = {"moved": moved, "shares": dict(zip(classes, shares.tolist()))}
    _, h, w = data.store.image_shape
    k = h // 4
    best = None
    for i in range(0, h - k + 1, k):
        for j in range(0, w - k + 1, k):
            mask = torch.zeros(data.store.image_shape)
            mask[:, i : i + k, j : j + k] = 1
            delta = universal_patch(model, x[:1000], y[:1000], mask, generator)
            with torch.no_grad():
                land = model(torch.clamp(x[1000:2000] + delta, 0, 1)).argmax(1)
            fooled = land != y[1000:2000]
            top = int(torch.bincount(land[fooled], minlength=len(classes)).argmax())
            into_top = float((land[fooled] == top).float().mean()) if fooled.any() else 0.0
            cand = {"at": [i, j], "fooled": float(fooled.float().mean()), "class": classes[top], "share": into_top}
            if best is None or cand["fooled"] * cand["share"] > best["fooled"] * best["share"]:
                best = cand
    out["patch"] = best
    return out


def top(shares: dict) -> str:
    name = max(shares, key=shares.get)
    return f"{name} {100 * shares[name]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="finished grid row folders")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = {run.name: probe(run) for run in args.runs}
    doc = {"command": "python benchmarks/pud_target.py " + " ".join(r.name for r in args.runs), "machine": machine(), "rows": rows}
    out = REPO / "benchmarks" / "results"
    (out / "pud-target.json").write_text(json.dumps(doc, indent=2) + "\n")
    header = ["grid row", "attack / true target", *(f"L-inf {e}/255: moved, target's share, top class" for e in EPS), "best universal patch: fooled, into class (share)"]
    table = []
    for name, r in rows.items():
        label = f"{r['attack']} {r['mode']}" if r["attack"] != "none" else "none (clean)"
        cells = [f"{100 * r['linf'][e]['moved']:.0f} %, {100 * r['linf'][e]['shares'][r['target']]:.1f}, {top(r['linf'][e]['shares'])}" for e in EPS]
        p = r["patch"]
        table.append([name, f"{label} / {r['target'] if r['attack'] != 'none' else '-'}", *cells, f"{100 * p['fooled']:.0f} % at {p['at']}, {p['class']} ({100 * p['share']:.0f} %)"])
    (out / "pud-target.md").write_text(
        "# PUD target inference: where adversarial examples land\n\n"
        f"Command: `{doc['command']}` (folders from `benchmarks/grid.py fmnist --methods pbe pud`). Machine: {doc['machine']}.\n"
        "Per suspect model: untargeted L-inf PGD-7 on 3,000 train samples, the share moved off their label, the true "
        "target's share of the moved ones, and the class with the largest share; then the universal k x k patch "
        "(k = side / 4, one per grid position) that fools the most held-out train samples into one class.\n\n"
        + markdown_table(header, table)
        + "\n"
    )
    print(markdown_table(header, table))


if __name__ == "__main__":
    sys.exit(main())
