"""Where untargeted adversarial examples of a run's suspect model land, per class: the premise
of PBE and PUD is that they land in the backdoor's target. Whole-image L-inf PGD (PBE's, as PUD's
target inference uses) at several budgets, and PGD confined to a random square patch (Eq. 3's
masks) with no budget inside it, on 2,000 random train samples.

    python benchmarks/landing.py benchmarks/runs/grid-fmnist-pud-badnets

Prints, per perturbation, how many examples changed the suspect's label and the share of
those that each class received."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from sanitizer.adversarial import patch_masks, patch_pgd
from sanitizer.config import config, load_params
from sanitizer.layout import Paths
from sanitizer.steps import adversarial
from sanitizer.training import TrainSet, to_float

SAMPLES = 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a project folder that ran the pipeline")
    args = parser.parse_args()
    paths = Paths(args.run / "data")
    data = TrainSet(paths.store, config("model", load_params(args.run / "params.yaml")).arch)
    suspect = data.load(paths.suspect).requires_grad_(False)
    generator = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(data.x), generator=generator)[:SAMPLES]
    x, y = to_float(data.x[pick], "cpu"), data.y[pick]
    perturbations = {f"L-inf {e}/255, 7 steps": lambda e=e: adversarial(suspect, x, y, e / 255, 7, generator) for e in (6, 16, 32, 64)}
    for side in (0.25, 0.35):
        cfg = dataclasses.replace(config("score", {}), patch_min=side, patch_max=side)
        masks = patch_masks(len(x), *x.shape[-2:], cfg, generator)
        perturbations[f"patch {side:.2f} of the side, 10 steps"] = lambda m=masks: patch_pgd(suspect, x, y, m, 1.0, 10)[0]
    classes = data.store.classes
    print("perturbation | moved | " + " | ".join(classes))
    for name, make in perturbations.items():
        x_adv = make()
        with torch.no_grad():
            landed = suspect(x_adv).argmax(1)
        moved = landed != y
        share = torch.bincount(landed[moved], minlength=len(classes)).double() / max(int(moved.sum()), 1)
        print(f"{name} | {int(moved.sum())} | " + " | ".join(f"{100 * s:.1f}" for s in share.tolist()))


if __name__ == "__main__":
    main()
