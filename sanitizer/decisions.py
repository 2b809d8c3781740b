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


def decide(clean_logits: torch.Tensor, labels: np.ndarray, suspected: np.ndarray, min_confidence: float, relabel: bool) -> Decisions:
    """Eq. 5: suspected samples take the clean model's label. The clean model never trained on
    a suspected sample, so it judges it as held-out data: when it predicts the given label, at
    whatever confidence, the suspicion was a false alarm and the sample is kept. A poison's
    image belongs to another class, which is what a clean model predicts for it; a hard clean
    image is often predicted right but without much confidence (CIFAR-10 Blend: of the 13,213
    clean suspects, 5,827 are predicted at their label and 3,345 of them with p >= 0.5; none of
    the 2,500 poisons is predicted at its label). When it predicts another class with at least
    `min_confidence`, the sample is dropped with that class in `new_label` as a suggestion for a
    reviewer, or relabelled under `relabel`: a wrong relabel puts a label the data owner never
    gave into training. Less sure than that, it is dropped."""
    prob = F.softmax(clean_logits.float(), 1)
    conf, pred = (t.numpy() for t in prob.max(1))
    pred = pred.astype(np.int64)
    decision = np.full(len(labels), "keep", dtype=object)
    reason = np.full(len(labels), "not suspected", dtype=object)
    new_label = labels.copy()
    false_alarm = suspected & (pred == labels)
    reason[false_alarm] = "suspected; clean model, which never trained on it, predicts the given label"
    doubted = suspected & (pred != labels)
    other = doubted & (conf >= min_confidence)
    decision[other], new_label[other] = "relabel" if relabel else "drop", pred[other]
    reason[other] = "suspected; clean model predicts another label" + ("" if relabel else " (new_label), for a reviewer to accept")
    unsure = doubted & ~other
    decision[unsure] = "drop"
    reason[unsure] = "suspected; clean model unsure"
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
