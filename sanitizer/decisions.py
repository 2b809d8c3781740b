"""Eq. 5 of AdvrBD, for every method: what happens to each suspected sample. A clean model
trained without the suspected samples judges them as held-out data and relabels, keeps or
drops each."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Decisions:
    decision: np.ndarray  # keep / drop / relabel
    new_label: np.ndarray
    confidence: np.ndarray
    reason: np.ndarray
    source: np.ndarray  # "method", or "review" where a person's word overrode it


def decide(clean_logits: torch.Tensor, labels: np.ndarray, suspected: np.ndarray, min_confidence: float, rescue_confidence: float) -> Decisions:
    """Eq. 5: suspected samples take the clean model's label. The clean model never trained on
    a suspected sample, so it judges it as held-out data: when it confidently predicts the
    given label the suspicion was a false alarm and the sample is kept. When it is unsure, or
    only weakly agrees with the given label, the sample is dropped rather than guessed."""
    prob = F.softmax(clean_logits.float(), 1)
    conf, pred = (t.numpy() for t in prob.max(1))
    pred = pred.astype(np.int64)
    agrees = pred == labels
    decision = np.full(len(labels), "keep", dtype=object)
    reason = np.full(len(labels), "not suspected", dtype=object)
    new_label = labels.copy()
    rescued = suspected & agrees & (conf >= rescue_confidence)
    reason[rescued] = "suspected; clean model confidently predicts the given label"
    relabel = suspected & ~agrees & (conf >= min_confidence)
    decision[relabel], new_label[relabel] = "relabel", pred[relabel]
    reason[relabel] = "suspected; clean model predicts another label"
    drop = suspected & ~rescued & ~relabel
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
