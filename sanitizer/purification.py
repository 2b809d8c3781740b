"""Purification gap, after PBE (CVPR 2023): adversarial examples of a backdoored model behave
like triggered inputs, so fine-tuning a copy of the suspect model on adversarial examples of
a random subset, at their given labels, wears off a backdoor whose trigger is faint (blends,
warps, partial-alpha patches) while the clean features survive. A sample the suspect fits
but the purified model rejects is suspicious:

    gap(x) = log p_S(y|x) - log p_P(y|x)

Bold patch triggers (BadNets, TaCT) survive purification, so their poisons show no gap; the
loss signal catches those. The two signals fail on different attacks (DESIGN section 4).

Clean samples of hard classes (Fashion-MNIST's Shirt, Pullover, Coat) also lose their label
under purification, so a gap threshold alone costs clean samples. Poisons share one label
(the target), so the gap is trusted only inside a class where high gaps are an outlier among
classes, by the MAD anomaly index that Neural Cleanse applies to per-class trigger norms."""

from __future__ import annotations

import copy

import numpy as np
import torch

from .config import PurifyConfig
from .metrics import mad_anomaly
from .progress import progress_bar
from .steps import adversarial, batches, descent, num_batches, sgd, step, tuning_lr
from .training import log_prob_at_label, to_float


def purify(suspect: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: PurifyConfig) -> torch.nn.Module:
    """A copy of `suspect` fine-tuned on whole-image PGD examples of a random `fraction` of
    the samples. `suspect` is not modified."""
    model = copy.deepcopy(suspect)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(cfg.seed)
    subset = torch.randperm(len(images), generator=generator)[: max(1, round(cfg.fraction * len(images)))]
    opt = sgd(model, tuning_lr(model, cfg.lr))
    model.train()
    with progress_bar("purifying", cfg.epochs * num_batches(len(subset), cfg.batch_size)) as advance:
        for _ in range(cfg.epochs):
            for idx in batches(subset, cfg.batch_size, generator):
                x, y = to_float(images[idx], device), labels[idx].to(device)
                step(opt, descent(model, adversarial(model, x, y, cfg.eps, cfg.steps, generator), y))
                advance()
    return model.eval()


def purification_gap(suspect, images: torch.Tensor, labels: torch.Tensor, cfg: PurifyConfig, suspect_loss: np.ndarray | None = None) -> np.ndarray:
    """gap(x) in nats for every sample; high = the suspect's fit came from a faint trigger.
    `suspect_loss`, the suspect's cross-entropy at the given label, spares an inference pass
    when the caller already has it (the score stage does)."""
    purified = purify(suspect, images, labels, cfg)
    log_p_suspect = log_prob_at_label(suspect, images, labels) if suspect_loss is None else -suspect_loss
    return log_p_suspect - log_prob_at_label(purified, images, labels)


def class_anomaly(gap: np.ndarray, labels: np.ndarray, num_classes: int, level: float) -> np.ndarray:
    """Per class, the MAD anomaly index of its share of samples with gap > `level`: how many
    robust standard deviations above the median class it lies. The MAD is floored at the
    binomial noise of the median share, so classes with almost no high gaps do not divide by 0."""
    counts = np.bincount(labels, minlength=num_classes)
    share = np.bincount(labels, weights=gap > level, minlength=num_classes) / np.maximum(counts, 1)
    median, n = np.median(share), np.median(counts)
    return mad_anomaly(share, np.sqrt(max(median, 1 / n) / n))
