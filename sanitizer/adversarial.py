"""The AdvrBD robustness score (paper Eq. 3): how far a small adversarial patch moves the
model's prediction. R(x) = KL(softmax f(x) || softmax f(x + M*delta)), with delta found by PGD
inside a random square mask M to maximise the loss at the given label. Poisoned samples ride a
strong shortcut feature and barely move: low R is suspicious."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .config import ScoreConfig
from .progress import log, progress_bar
from .training import to_float


@dataclass(frozen=True)
class Scores:
    robustness: np.ndarray  # R(x), Eq. 3
    loss: np.ndarray  # cross-entropy at the given label: the cheap ABL-style baseline


def patch_masks(n: int, height: int, width: int, cfg: ScoreConfig, generator: torch.Generator) -> torch.Tensor:
    """One random square mask per sample, drawn up front so a sample's mask does not depend
    on batch size or order. The side is a fraction of the shorter image side."""
    short = min(height, width)
    lo = max(1, round(cfg.patch_min * short))
    hi = max(lo, round(cfg.patch_max * short))
    side = torch.randint(lo, hi + 1, (n,), generator=generator)
    top = (torch.rand(n, generator=generator) * (height - side + 1)).long()
    left = (torch.rand(n, generator=generator) * (width - side + 1)).long()
    rows = (torch.arange(height) >= top[:, None]) & (torch.arange(height) < (top + side)[:, None])
    cols = (torch.arange(width) >= left[:, None]) & (torch.arange(width) < (left + side)[:, None])
    return (rows[:, :, None] & cols[:, None, :]).unsqueeze(1)  # N x 1 x H x W bool


def patch_pgd(model, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, eps: float, steps: int):
    """Untargeted L-inf PGD confined to `mask`. Returns the perturbed images and the clean
    logits, which the first step (delta = 0) computes anyway."""
    step = 2.5 * eps / steps
    delta = torch.zeros_like(x, requires_grad=True)
    clean = None
    for _ in range(steps):
        logits = model(torch.clamp(x + mask * delta, 0, 1))
        if clean is None:
            clean = logits.detach().float()
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y), delta)
        delta = (delta + step * grad.sign()).clamp(-eps, eps).detach().requires_grad_(True)
    return torch.clamp(x + mask * delta.detach(), 0, 1), clean


def robustness_scores(model, images: torch.Tensor, labels: torch.Tensor, cfg: ScoreConfig, desc: str = "scoring") -> Scores:
    """R and the loss at the given label for every sample; R is NaN unless `cfg.robustness`.
    Under torchrun each rank computes its share of the batches and every rank gets all of them
    back."""
    from . import distributed

    device = next(model.parameters()).device
    model.eval()
    model.requires_grad_(False)
    masks = patch_masks(len(images), *images.shape[-2:], cfg, torch.Generator().manual_seed(cfg.seed)) if cfg.robustness else None
    starts = range(0, len(images), cfg.batch_size)
    mine = distributed.shard(len(starts))
    done = {}
    with progress_bar(desc, sum(min(cfg.batch_size, len(images) - starts[b]) for b in mine)) as advance:
        for b in mine:
            sl = slice(starts[b], starts[b] + cfg.batch_size)
            x, y = to_float(images[sl], device), labels[sl].to(device)
            if cfg.robustness:
                x_adv, clean = patch_pgd(model, x, y, masks[sl].to(device), cfg.eps, cfg.steps)
                with torch.no_grad():
                    adv = model(x_adv).float()
                # KL(p || q) in float64, clamped: in float32 it came out at -2e-8 for a sample
                # the patch does not move, and R is a divergence.
                log_p, log_q = F.log_softmax(clean.double(), 1), F.log_softmax(adv.double(), 1)
                kl = (log_p.exp() * (log_p - log_q)).sum(1).clamp(min=0)
            else:
                with torch.no_grad():
                    clean = model(x).float()
                kl = torch.full((len(x),), float("nan"), dtype=torch.float64, device=device)
            done[b] = (kl.cpu(), F.cross_entropy(clean, y, reduction="none").cpu())
            advance(len(x))
    model.requires_grad_(True)
    rank, size = distributed.world()
    if size > 1:
        log(f"{desc}, rank {rank} of {size}: {sum(len(r) for r, _ in done.values())} of {len(images)} samples")
    done = distributed.gather(done)
    r_out, loss_out = zip(*(done[b] for b in range(len(starts))))
    return Scores(torch.cat(r_out).double().numpy(), torch.cat(loss_out).double().numpy())
