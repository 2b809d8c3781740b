"""Eq. 5 of AdvrBD, for every method: what happens to each suspected sample. A clean model
trained without the suspected samples judges them as held-out data and relabels, keeps or
drops each."""

from __future__ import annotations

import math
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


def decide(clean_logits: torch.Tensor, labels: np.ndarray, suspected: np.ndarray, min_confidence: float, relabel: bool, evidence: float = 0.0) -> Decisions:
    """Eq. 5: suspected samples take the clean model's label. The clean model never trained on
    a suspected sample, so it judges it as held-out data: unless it rates some other class at
    least `exp(evidence)` times the given label (0: whenever it predicts another class), the
    suspicion was a false alarm and the sample is kept. A poison's image belongs to another
    class, which a clean model predicts for it, and surely; a hard clean image is often
    predicted right without much confidence, or put in a neighbouring class with its own label
    close behind (Fashion-MNIST Blend: the clean model, trained without the 1,866 suspected
    Shirts, puts 741 of them in another class, mostly Coat, with a median p(Shirt) of 0.58;
    99 % of the 3,000 poisons get their label at most 0.013). A dropped sample the clean model
    puts in another class with at least `min_confidence` gets that class in `new_label` as a
    suggestion for a reviewer, or is relabelled under `relabel`: a wrong relabel puts a label
    the data owner never gave into training."""
    prob = F.softmax(clean_logits.float(), 1)
    conf, pred = (t.numpy() for t in prob.max(1))
    pred = pred.astype(np.int64)
    decision = np.full(len(labels), "keep", dtype=object)
    reason = np.full(len(labels), "not suspected", dtype=object)
    new_label = labels.copy()
    at_label = prob.numpy()[np.arange(len(labels)), labels]
    # Where the prediction is another class, conf is that class's probability.
    doubted = suspected & (pred != labels) & (np.log(conf) - np.log(np.maximum(at_label, 1e-30)) > evidence)
    false_alarm = suspected & ~doubted
    reason[false_alarm & (pred == labels)] = "suspected; clean model, which never trained on it, predicts the given label"
    reason[false_alarm & (pred != labels)] = f"suspected; clean model, which never trained on it, rates another class less than {math.exp(evidence):.2f} times the given label"
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
