"""Eq. 5 of AdvrBD, for every method: what happens to each suspected sample. A clean model
trained without the suspected samples judges them as held-out data and relabels, keeps or
drops each."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import SanitizerError


@dataclass(frozen=True)
class Decisions:
    decision: np.ndarray  # keep / drop / relabel
    new_label: np.ndarray
    confidence: np.ndarray
    reason: np.ndarray
    source: np.ndarray  # "method", or "review" where a person's word overrode it


def holdout_mask(trainable: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A seeded random `share` of the `trainable` samples that the clean model does not train
    on, so that its judgement of clean data it never saw can be measured."""
    return trainable & (np.random.default_rng(seed).random(len(trainable)) < share)


def rescue_thresholds(held_out_logits: torch.Tensor, held_out_labels: np.ndarray, num_classes: int, quantile: float) -> np.ndarray:
    """Per class, the `quantile` of the clean model's probability of the given label over
    held-out samples of that class: how weakly it may predict a clean sample it never saw.
    Derived from the data, so it follows each class's difficulty and the model's calibration
    (label smoothing 0.2 caps a fitted probability near 0.82, under any fixed 0.9). A class
    with no held-out sample takes the quantile over all of them."""
    if len(held_out_labels) == 0:
        raise SanitizerError("no held-out samples to calibrate the rescue: raise [train_clean].holdout or keep more samples")
    p_label = F.softmax(held_out_logits.float(), 1)[torch.arange(len(held_out_labels)), torch.from_numpy(held_out_labels)].numpy()
    pooled = np.quantile(p_label, quantile)
    return np.array([np.quantile(p_label[held_out_labels == k], quantile) if (held_out_labels == k).any() else pooled for k in range(num_classes)])


def decide(clean_logits: torch.Tensor, labels: np.ndarray, suspected: np.ndarray, min_confidence: float, rescue_at, relabel: bool) -> Decisions:
    """Eq. 5: suspected samples take the clean model's label. The clean model never trained on
    a suspected sample, so it judges it as held-out data: when it predicts the given label with
    at least `rescue_at` (a probability, or one per sample) the suspicion was a false alarm and
    the sample is kept. When it is unsure, or only weakly agrees with the given label, the
    sample is dropped rather than guessed. Without `relabel`, a sample it confidently assigns
    another class is dropped too, its label left in `new_label` as a suggestion for a reviewer:
    a wrong relabel puts a label the data owner never gave into training."""
    prob = F.softmax(clean_logits.float(), 1)
    conf, pred = (t.numpy() for t in prob.max(1))
    pred = pred.astype(np.int64)
    agrees = pred == labels
    decision = np.full(len(labels), "keep", dtype=object)
    reason = np.full(len(labels), "not suspected", dtype=object)
    new_label = labels.copy()
    rescued = suspected & agrees & (conf >= rescue_at)
    reason[rescued] = "suspected; clean model predicts the given label as it does held-out clean samples"
    other = suspected & ~agrees & (conf >= min_confidence)
    decision[other], new_label[other] = "relabel" if relabel else "drop", pred[other]
    reason[other] = "suspected; clean model predicts another label" + ("" if relabel else " (new_label), for a reviewer to accept")
    drop = suspected & ~rescued & ~other
    decision[drop] = "drop"
    reason[drop] = np.where(agrees[drop], "suspected; clean model only weakly predicts the given label", "suspected; clean model unsure")
    return Decisions(decision.astype(str), new_label, conf.astype(np.float64), reason.astype(str), np.full(len(labels), "method"))


def overrule(dec: Decisions, said) -> Decisions:
    """A person's review wins over the method: `said` is reviews.Overrides for every sample."""
    r = said.reviewed
    return Decisions(
        np.where(r, said.decision, dec.decision).astype(str),
        np.where(r, said.label, dec.new_label),
        dec.confidence,
        np.where(r, said.reason, dec.reason).astype(str),
        np.where(r, "review", dec.source),
    )
