"""PBE, progressive backdoor erasing (Mu et al., CVPR 2023), without clean data.

Adversarial examples of a backdoored model behave like triggered inputs: fine-tuning a copy of
the suspect on untargeted adversarial examples at their given labels wears the backdoor off,
while the clean features survive. With no clean data, PBE starts from a random 5 % subset and
grows it progressively: after each round every train sample is scored by how much the infected
and the purified model still agree,

    agreement(x) = 0.5 + 0.5 * cos(f_S(x), f_P(x))   (cosine of the two logit vectors),

and the most agreeing 20 % / 50 % / 70 % form the next round's subset (poisons, whose fit the
purification removed, agree least). Round 1 is fully adversarial; later rounds are adversarial
only early in their first epoch and otherwise fine-tune on the subset as it is.

Outputs: the purified model, the final agreement (suspicion = 1 - agreement), and a suspected
flag by one rule: the suspect predicts the given label and the purified model does not. That is
what a backdoor's fit looks like once purification has removed it; clean samples the purified
model gets wrong are flagged too, and relabel's clean model judges those (it keeps the ones it
confidently gives their own label)."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F

from ..progress import log, progress_bar
from ..steps import adversarial, batches, descent, num_batches, sgd, step, tuning_lr
from ..training import predict, to_float
from .base import METHODS, Detection, Inputs, Method


def agreement(suspect_logits: torch.Tensor, model_logits: torch.Tensor) -> np.ndarray:
    """0.5 + 0.5 cos of two models' logits, per sample: 1 when they point the same way."""
    return (0.5 + 0.5 * F.cosine_similarity(suspect_logits.double(), model_logits.double(), dim=1)).numpy()


def random_subset(n: int, share: float, generator: torch.Generator, eligible: np.ndarray | None = None) -> torch.Tensor:
    """`share` of n samples at random (from the eligible ones), as sorted indices."""
    pool = torch.arange(n) if eligible is None else torch.from_numpy(np.flatnonzero(eligible))
    k = min(len(pool), max(1, round(share * n)))
    return pool[torch.randperm(len(pool), generator=generator)[:k]].sort().values


def top_share(score: np.ndarray, share: float) -> torch.Tensor:
    """The `share` of samples with the highest score, as sorted indices; ties go to the earlier
    sample, so the subset is reproducible. -inf scores are never taken."""
    k = min(int(np.isfinite(score).sum()), max(1, round(share * len(score))))
    return torch.from_numpy(np.sort(np.argsort(-score, kind="stable")[:k]))


def adversarial_batches(round_: int, share: float, subset_size: int, batch_size: int) -> float:
    """How many batches of a round are adversarial: all of round 0; later, the first `share`
    of the first epoch."""
    return math.inf if round_ == 0 else round(share * num_batches(subset_size, batch_size))


def fine_tune(model, images, labels, subset: torch.Tensor, cfg, eps: float, n_adversarial: float, generator: torch.Generator, desc: str, extra=None) -> None:
    """One round: `cfg.epochs` over the subset at its given labels, the first `n_adversarial`
    batches on PGD examples. `extra(model)`, if given, adds a loss term to every step."""
    device = next(model.parameters()).device
    opt = sgd(model, tuning_lr(model, cfg.lr, slower=10))
    done = 0
    model.train()
    with progress_bar(desc, cfg.epochs * num_batches(len(subset), cfg.batch_size)) as advance:
        for _ in range(cfg.epochs):
            for idx in batches(subset, cfg.batch_size, generator):
                x, y = to_float(images[idx], device), labels[idx].to(device)
                if done < n_adversarial:
                    x = adversarial(model, x, y, eps, cfg.steps, generator)
                loss = descent(model, x, y)
                step(opt, loss if extra is None else loss + extra(model))
                done += 1
                advance()
    model.eval()


def purified_flags(suspect_logits: torch.Tensor, purified_logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Suspected: the suspect predicts the given label, the purified model another one."""
    return ((suspect_logits.argmax(1) == labels) & (purified_logits.argmax(1) != labels)).numpy()


def pbe(suspect, images: torch.Tensor, labels: torch.Tensor, cfg):
    """The purified model, and the suspect's and purified model's logits on every sample.
    `suspect` is not modified."""
    generator = torch.Generator().manual_seed(cfg.seed)
    model = copy.deepcopy(suspect)
    suspect_logits = predict(suspect, images, desc="suspect's logits")
    subset = random_subset(len(images), cfg.start, generator)
    shares = (*cfg.schedule, None)
    for r, share in enumerate(shares):
        n_adv = adversarial_batches(r, cfg.adversarial_share, len(subset), cfg.batch_size)
        fine_tune(model, images, labels, subset, cfg, cfg.eps, n_adv, generator, f"PBE round {r + 1}/{len(shares)} on {len(subset)} samples")
        logits = predict(model, images, desc="agreement")
        if share is not None:
            subset = top_share(agreement(suspect_logits, logits), share)
    log(f"PBE: purified model agrees with the given label on {(logits.argmax(1) == labels).float().mean():.1%} of the train set")
    return model, suspect_logits, logits


@METHODS.register("pbe")
class PBE(Method):
    name = "pbe"
    section = "pbe"
    suspicion = "1 - agreement (0.5 + 0.5 cos of the suspect's and the purified model's logits)"

    def detect(self, inputs: Inputs) -> Detection:
        x, y = inputs.data.x, inputs.data.y
        purified, suspect_logits, logits = pbe(inputs.suspect, x, y, inputs.cfg)
        return Detection(
            suspicion=1 - agreement(suspect_logits, logits),
            suspected=purified_flags(suspect_logits, logits, y),
            models={"purified": purified},
        )
