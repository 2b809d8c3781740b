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


def decide(clean_logits: torch.Tensor, labels: np.ndarray, suspected: np.ndarray, min_confidence: float, relabel: bool, evidence: float = 0.0, persists: np.ndarray | None = None) -> Decisions:
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
    the data owner never gave into training.
    A suspect that `persists` (see `persisting`) is dropped even where the clean model keeps
    it: a clean model that trained on a few missed poisons half accepts their trigger, so it
    confirms some suspected poisons' labels."""
    prob = F.softmax(clean_logits.float(), 1)
    conf, pred = (t.numpy() for t in prob.max(1))
    pred = pred.astype(np.int64)
    decision = np.full(len(labels), "keep", dtype=object)
    reason = np.full(len(labels), "not suspected", dtype=object)
    new_label = labels.copy()
    at_label = prob.numpy()[np.arange(len(labels)), labels]
    # Where the prediction is another class, conf is that class's probability.
    doubted = suspected & (pred != labels) & (np.log(conf) - np.log(np.maximum(at_label, 1e-30)) > evidence)
    trigger = suspected & ~doubted & (persists if persists is not None else False)
    false_alarm = suspected & ~doubted & ~trigger
    reason[false_alarm & (pred == labels)] = "suspected; clean model, which never trained on it, predicts the given label"
    reason[false_alarm & (pred != labels)] = f"suspected; clean model, which never trained on it, rates another class less than {math.exp(evidence):.2f} times the given label"
    other = doubted & (conf >= min_confidence)
    decision[other], new_label[other] = "relabel" if relabel else "drop", pred[other]
    reason[other] = "suspected; clean model predicts another label" + ("" if relabel else " (new_label), for a reviewer to accept")
    unsure = doubted & ~other
    decision[unsure] = "drop"
    reason[unsure] = "suspected; clean model unsure"
    decision[trigger] = "drop"
    reason[trigger] = "suspected; the suspect model keeps its label on blends with other classes' images more surely than for any unsuspected sample of its class: a trigger"
    return Decisions(decision.astype(str), new_label, conf.astype(np.float64), reason.astype(str), np.full(len(labels), "method"))


def persisting(model, images: torch.Tensor, labels: np.ndarray, suspected: np.ndarray, partners: int, reference: int, seed: int) -> np.ndarray:
    """Suspected samples whose given label the suspect model keeps on blends with other classes'
    images more surely than it does for every unsuspected sample of their class (up to
    `reference` of them, drawn at random). Averaging an image half and half with another
    class's image wipes out most of what makes it its class, but not a trigger that survives
    blending (a patch, a blended pattern), so the backdoored model still answers the target
    (STRIP, Gao et al. 2019). A clean sample the detector suspected is as ordinary under
    blending as the unsuspected ones. Fashion-MNIST BadNets 3 % into Shirt, 2-px patch: the
    25 suspected poisons the clean model confirmed kept their label at 0.98-1.00 on blends,
    2,000 of the class's unsuspected samples at most 0.85. A warp (WaNet) does not survive
    blending and none of its suspects stands out: the check only adds drops."""
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(suspected)
    refs = [rng.choice(r, min(reference, len(r)), replace=False) for r in (np.flatnonzero((labels == c) & ~suspected) for c in range(int(labels.max()) + 1))]
    ref = np.concatenate(refs)
    p = blend_persistence(model, images, labels, np.concatenate([rows, ref]), partners, rng)
    ceiling = np.full(len(refs), -np.inf)
    np.maximum.at(ceiling, labels[ref], p[len(rows) :])
    ceiling[np.isneginf(ceiling)] = np.inf  # a class with no unsuspected sample: nothing to compare with
    out = np.zeros(len(labels), dtype=bool)
    out[rows] = p[: len(rows)] > ceiling[labels[rows]]
    return out


def blend_persistence(model, images: torch.Tensor, labels: np.ndarray, rows: np.ndarray, partners: int, rng: np.random.Generator, batch_size: int = 1024) -> np.ndarray:
    """Per row, the model's mean probability of its label on its image averaged with each of
    `partners` images drawn at random from the other classes."""
    from .progress import progress_bar
    from .training import to_float

    mate = np.empty((len(rows), partners), dtype=np.int64)
    for c in np.unique(labels[rows]):
        pool, mine = np.flatnonzero(labels != c), labels[rows] == c
        mate[mine] = pool[rng.integers(len(pool), size=(int(mine.sum()), partners))]
    pairs = np.stack([np.repeat(rows, partners), mate.ravel()], 1)
    device = next(model.parameters()).device
    model.eval()
    p = np.empty(len(pairs))
    with torch.no_grad(), progress_bar("blend persistence", len(pairs)) as advance:
        for start in range(0, len(pairs), batch_size):
            i, j = (torch.from_numpy(col) for col in pairs[start : start + batch_size].T)
            blend = (to_float(images[i], device) + to_float(images[j], device)) / 2
            p[start : start + len(i)] = F.softmax(model(blend).float(), 1).cpu()[torch.arange(len(i)), torch.from_numpy(labels)[i]].double().numpy()
            advance(len(i))
    return p.reshape(len(rows), partners).mean(1)


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
