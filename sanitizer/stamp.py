"""A stamp in the pixels: values that a target class's barred samples share and other images
seldom take.

A patch trigger (BadNets, TaCT, Adaptive-Patch), or a blend over a plain background, sets some
pixels to the same value in every image that carries it. Partition bars a target class's
poison-like population from D_s; the pixel values that population shares are the trigger's,
and every sample of the class whose image carries them is a poison (or an attack's cover
sample). This finds the poisons that partition's filters and the enhanced model's consistency
both let through because the suspect fits them like the class's own images (Fashion-MNIST
Adaptive-Patch 10 % into Sandal: 14 Sneakers, Bags and Ankle boots, enough for 1.47 % ASR).

A cell is one pixel channel at one of 16 value levels. None of the thresholds is fitted:
- Lift: the barred population P takes the cell more often than |R| / n_min times the share of
  the samples partition did not bar (R), n_min being R's smallest class, by more than chance
  (a binomial tail below one over the number of cells tested). Were P drawn from one class k's
  images, R would hold the rest of them, so no cell could be more than |R| / n_k times as
  common in P: a larger lift is no class's content.
- Support: at least 1/K of P takes the cell (K classes). Below that a cell is a handful of
  images, and with thousands in P three of them already make a lift above the bound.
- Carriers: samples of the class with at least half as many of the stamp's cells as P's
  median sample has (an attack may paste only part of its trigger on each image:
  Adaptive-Patch puts 2 of its 5 patches), and none when P's median sample has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

LEVELS = 16


@dataclass(frozen=True)
class Stamp:
    """One target class's stamp: its cells (flat pixel index, value level) and its carriers."""

    pixels: np.ndarray
    levels: np.ndarray
    median_count: float
    carriers: np.ndarray  # bool, one per train sample

    @property
    def found(self) -> bool:
        return bool(self.carriers.any())


def level_shares(q: np.ndarray) -> np.ndarray:
    """(pixels, LEVELS): the share of rows of `q` (samples x pixels, value levels) at each level."""
    return np.stack([(q == b).mean(0) for b in range(LEVELS)], 1)


def stamp_of(q: np.ndarray, labels: np.ndarray, barred: np.ndarray, target: int, rest_shares: np.ndarray, bound: float, num_classes: int) -> Stamp:
    """The stamp of class `target`'s barred samples (P), against R's level shares `rest_shares`
    and the content bound `bound` (see the module's docstring)."""
    members = labels == target
    population = barred & members
    p, r = int(population.sum()), int((~barred).sum())
    none = Stamp(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 0.0, np.zeros(len(labels), dtype=bool))
    if p == 0:
        return none
    shares = level_shares(q[population])
    # Under "no class's content": P takes a cell at most `bound` times R's rate (add-one, so a
    # cell R never takes is not certain never to be taken).
    rate = np.minimum(bound * (rest_shares * r + 1) / (r + 1), 1 - 1 / (p + 1))
    z = (shares - rate) * np.sqrt(p / (rate * (1 - rate)))
    pixels, levels = np.nonzero((z > NormalDist().inv_cdf(1 - 1 / z.size)) & (shares >= 1 / num_classes))
    count = np.zeros(len(labels), dtype=np.int64)  # only the class's own samples can carry it
    count[members] = (q[members][:, pixels] == levels).sum(1)
    median = float(np.median(count[population]))
    if median < 1:
        return none
    return Stamp(pixels, levels, median, members & (count >= median / 2))


def stamps(images: np.ndarray, labels: np.ndarray, barred: np.ndarray, targets, num_classes: int) -> dict[int, Stamp]:
    """Each target class's stamp; `barred` is partition's bar from D_s."""
    if not len(targets) or barred.all():
        return {}
    q = (np.asarray(images).reshape(len(images), -1) // (256 // LEVELS)).astype(np.uint8)
    rest = ~barred
    bound = rest.sum() / max(np.bincount(labels[rest], minlength=num_classes).min(), 1)
    rest_shares = level_shares(q[rest])
    return {int(c): stamp_of(q, labels, barred, int(c), rest_shares, bound, num_classes) for c in targets}
