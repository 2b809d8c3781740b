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

A class's own content can pass the lift where P is a kind of image of the class that other
images seldom resemble (Fashion-MNIST: black pixels in a Sandal's open middle, white sleeves of
a light T-shirt). But the class holds content in degrees, a trigger whole or not at all: its
`valley`, how empty the class's counts of the stamp's cells are between none and the
carriers', tells them apart (`count_valley`).
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
    valley: float = 1.0

    @property
    def found(self) -> bool:
        return bool(self.carriers.any())


def quantize(images) -> np.ndarray:
    """Samples x pixel channels, each at one of LEVELS value levels."""
    return (np.asarray(images).reshape(len(images), -1) // (256 // LEVELS)).astype(np.uint8)


def level_counts(q: np.ndarray) -> np.ndarray:
    """(pixels, LEVELS): how many rows of `q` (samples x pixels, value levels) take each level."""
    return np.stack([(q == b).sum(0) for b in range(LEVELS)], 1)


def count_valley(counts: np.ndarray, cells: int, bins: int = 20, least: int = 20) -> float:
    """How empty a class's counts of a stamp's `cells` leave the stretch between holding few
    and holding as many as the carriers: over the counts' histogram (at most `bins` bins), the
    emptiest bin over the lower of the highest bins on either side of it; 1 where no bin dips
    below both sides or the lower side's peak holds fewer than `least` samples (a handful of
    images apart is chance). A pasted trigger gives all its cells to every image that carries
    it and none to the rest (Fashion-MNIST: 0.00-0.04 on every patch and blend the clusters
    split off), content comes in degrees (the grid's and variants' unattacked classes whose
    split shares a stamp: 0.31 and up)."""
    hist = np.bincount(np.asarray(counts) // -(-(cells + 1) // bins))
    # Per inner bin, the lower of the highest bins on its left and on its right.
    peak = np.minimum(np.maximum.accumulate(hist)[:-2], np.maximum.accumulate(hist[::-1])[::-1][2:])
    dips = hist[1:-1][peak >= least] / peak[peak >= least]
    return float(dips.min(initial=1.0))


def stamp_of(q: np.ndarray, labels: np.ndarray, population: np.ndarray, target: int, rest_counts: np.ndarray, rest_sizes: np.ndarray) -> Stamp:
    """The stamp of `population` (P: samples of class `target`), against the samples it is
    told from (R): their level counts and their number in each class (see the module's
    docstring)."""
    members = labels == target
    p, r = int(population.sum()), int(rest_sizes.sum())
    none = Stamp(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 0.0, np.zeros(len(labels), dtype=bool))
    if p == 0:
        return none
    bound = r / max(rest_sizes.min(), 1)
    rest_shares = rest_counts / r
    shares = level_counts(q[population]) / p
    # Under "no class's content": P takes a cell at most `bound` times R's rate (add-one, so a
    # cell R never takes is not certain never to be taken).
    rate = np.minimum(bound * (rest_shares * r + 1) / (r + 1), 1 - 1 / (p + 1))
    z = (shares - rate) * np.sqrt(p / (rate * (1 - rate)))
    pixels, levels = np.nonzero((z > NormalDist().inv_cdf(1 - 1 / z.size)) & (shares >= 1 / len(rest_sizes)))
    count = np.zeros(len(labels), dtype=np.int64)  # only the class's own samples can carry it
    count[members] = (q[members][:, pixels] == levels).sum(1)
    median = float(np.median(count[population]))
    if median < 1:
        return none
    return Stamp(pixels, levels, median, members & (count >= median / 2), count_valley(count[members], len(pixels)))


def stamps(images: np.ndarray, labels: np.ndarray, barred: np.ndarray, targets, num_classes: int) -> dict[int, Stamp]:
    """Each target class's stamp; `barred` is partition's bar from D_s, told from the samples
    it did not bar."""
    if not len(targets) or barred.all():
        return {}
    q = quantize(images)
    rest_counts, rest_sizes = level_counts(q[~barred]), np.bincount(labels[~barred], minlength=num_classes)
    return {int(c): stamp_of(q, labels, barred & (labels == c), int(c), rest_counts, rest_sizes) for c in targets}


def split_stamps(images: np.ndarray, labels: np.ndarray, split: np.ndarray, classes, num_classes: int) -> dict[int, Stamp]:
    """The stamp of each of these classes' smaller activation cluster (`split`), told from
    every other sample."""
    if not len(classes):
        return {}
    q = quantize(images)
    counts, sizes = level_counts(q), np.bincount(labels, minlength=num_classes)
    populations = {int(c): split & (labels == c) for c in classes}
    return {c: stamp_of(q, labels, p, c, counts - level_counts(q[p]), sizes - np.bincount(labels[p], minlength=num_classes)) for c, p in populations.items()}
