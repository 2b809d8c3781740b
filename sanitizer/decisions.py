"""Eq. 5 of AdvrBD, for every method: what happens to each suspected sample. A clean model
trained without the suspected samples judges them as held-out data and relabels, keeps or
drops each."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .metrics import mad_anomaly

# A suspect's blend disagreement beyond 3.5 robust standard deviations above its class's
# unsuspected samples is a trigger: the textbook outlier cut (Iglewicz & Hoaglin 1993), not
# fitted. Not their highest value: the poisons identification missed sit among them and lift
# it (Fashion-MNIST TaCT Pullover -> Shirt 3 %: 136 suspected poisons kept under the highest, 61
# under this cut, on the same runs replayed).
OUTLIER = 3.5


@dataclass(frozen=True)
class Decisions:
    decision: np.ndarray  # keep / drop / relabel
    new_label: np.ndarray
    confidence: np.ndarray
    reason: np.ndarray
    source: np.ndarray  # "method", or "review" where a person's word overrode it


def decide(clean_logits: torch.Tensor, labels: np.ndarray, suspected: np.ndarray, min_confidence: float, relabel: bool, evidence: float = 0.0, persists: np.ndarray | None = None, carries: np.ndarray | None = None) -> Decisions:
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
    it: a clean model that trained on a few missed poisons half accepts their trigger, and a
    poison made from an image much like the target class's looks like one, so the clean model
    confirms some suspected poisons' labels. So is one the method found carrying a trigger in
    its image (`carries`, `Detection.trigger`): a clean-label poison's label is right."""
    prob = F.softmax(clean_logits.float(), 1)
    conf, pred = (t.numpy() for t in prob.max(1))
    pred = pred.astype(np.int64)
    decision = np.full(len(labels), "keep", dtype=object)
    reason = np.full(len(labels), "not suspected", dtype=object)
    new_label = labels.copy()
    doubt = suspected & doubted(clean_logits, labels, evidence)
    carries = suspected & ~doubt & (carries if carries is not None else False)
    trigger = suspected & ~doubt & (persists if persists is not None else False) & ~carries
    false_alarm = suspected & ~doubt & ~trigger & ~carries
    reason[false_alarm & (pred == labels)] = "suspected; clean model, which never trained on it, predicts the given label"
    reason[false_alarm & (pred != labels)] = f"suspected; clean model, which never trained on it, rates another class less than {math.exp(evidence):.2f} times the given label"
    other = doubt & (conf >= min_confidence)
    decision[other], new_label[other] = "relabel" if relabel else "drop", pred[other]
    reason[other] = "suspected; clean model predicts another label" + ("" if relabel else " (new_label), for a reviewer to accept")
    unsure = doubt & ~other
    decision[unsure] = "drop"
    reason[unsure] = "suspected; clean model unsure"
    decision[trigger] = "drop"
    reason[trigger] = "suspected; on blends with other classes' images the suspect model answers unlike the clean model, far more than for the unsuspected samples of its class: a trigger"
    decision[carries] = "drop"
    reason[carries] = "suspected; its image carries a pattern that splits its class's pixels in two and that the other classes' images lack: a trigger, whatever its label"
    return Decisions(decision.astype(str), new_label, conf.astype(np.float64), reason.astype(str), np.full(len(labels), "method"))


def doubted(clean_logits: torch.Tensor, labels: np.ndarray, evidence: float) -> np.ndarray:
    """Samples the clean model puts in another class, rating it more than `exp(evidence)` times
    the given label."""
    prob = F.softmax(clean_logits.float(), 1).numpy()
    pred = prob.argmax(1)
    at_label = prob[np.arange(len(labels)), labels]
    return (pred != labels) & (np.log(prob.max(1)) - np.log(np.maximum(at_label, 1e-30)) > evidence)


def persisting(suspect, clean, images: torch.Tensor, labels: np.ndarray, suspected: np.ndarray, candidates: np.ndarray, partners: int, reference: int, seed: int) -> np.ndarray:
    """The `candidates` (suspected samples) on whose blends with other classes' images the
    suspect model answers unlike the clean model, far more than for the unsuspected samples of
    their class (an outlier among up to `reference` of them, drawn at random). Averaging an
    image half and half with another class's image wipes out most of what makes it its class,
    but not a trigger that survives blending (a patch, a blended pattern), so the backdoored
    model still follows the trigger (STRIP, Gao et al. 2019) and the clean model, which has
    not learnt it, does not.
    What both models see in a blend is its two images; the difference between their answers
    (total variation) is the trigger's. An all-to-one trigger pulls the blend to the target,
    the suspect's label; an all-to-all trigger to the class after whichever image dominates
    the blend, often the partner's, which a check at the label alone missed (Fashion-MNIST
    Blend all-to-all: 41 of the 49 suspected poisons the clean model confirmed, against 6 at
    the label). A warp (WaNet) does not survive blending: the check adds little there."""
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero(candidates)
    classes = np.unique(labels[rows])
    refs = [rng.choice(r, min(reference, len(r)), replace=False) for r in (np.flatnonzero((labels == c) & ~suspected) for c in classes)]
    ref = np.concatenate([rows[:0], *refs])
    disagreement = blend_disagreement(suspect, clean, images, labels, np.concatenate([rows, ref]), partners, rng)
    mine, theirs = disagreement[: len(rows)], disagreement[len(rows) :]
    out = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels[ref]):  # a class with no unsuspected sample: nothing to compare with
        here = labels[rows] == c
        out[rows[here]] = mad_anomaly(mine[here], 1e-12, theirs[labels[ref] == c]) > OUTLIER
    return out


def blend_disagreement(suspect, clean, images: torch.Tensor, labels: np.ndarray, rows: np.ndarray, partners: int, rng: np.random.Generator, batch_size: int = 1024) -> np.ndarray:
    """Per row, the total variation between the two models' predicted distributions on its
    image averaged with each of `partners` images drawn at random from the other classes,
    averaged over the partners."""
    from .progress import progress_bar
    from .training import to_float

    mate = np.empty((len(rows), partners), dtype=np.int64)
    for c in np.unique(labels[rows]):
        pool, mine = np.flatnonzero(labels != c), labels[rows] == c
        mate[mine] = pool[rng.integers(len(pool), size=(int(mine.sum()), partners))]
    pairs = np.stack([np.repeat(rows, partners), mate.ravel()], 1)
    device = next(suspect.parameters()).device
    for model in (suspect, clean):
        model.eval()
    tv = np.empty(len(pairs))
    with torch.no_grad(), progress_bar("blend check", len(pairs)) as advance:
        for start in range(0, len(pairs), batch_size):
            i, j = (torch.from_numpy(col) for col in pairs[start : start + batch_size].T)
            blend = (to_float(images[i], device) + to_float(images[j], device)) / 2
            p, q = (F.softmax(m(blend).float(), 1) for m in (suspect, clean))
            tv[start : start + len(i)] = (p - q).abs().sum(1).mul(0.5).cpu().double().numpy()
            advance(len(i))
    return tv.reshape(len(rows), partners).mean(1)


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
