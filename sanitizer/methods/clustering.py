"""Activation clustering (Chen et al., SafeAI 2019), as a baseline: a poisoned class's
penultimate activations split into two clusters, its clean samples and its poisons, while a
clean class stays one. Per class the activations are reduced to `dims` principal components
(the paper uses ICA; PCA keeps it deterministic and dependency-free) and split by 2-means; the
smaller cluster is flagged when it holds at most `max_share` of the class (the paper's relative
size rule, 0.35)."""

from __future__ import annotations

import numpy as np
import torch

from ..metrics import mad_anomaly
from ..training import predict
from .base import METHODS, Detection, Inputs, Method


def reduce(features: torch.Tensor, dims: int) -> torch.Tensor:
    centred = features.double() - features.double().mean(0)
    basis = torch.linalg.svd(centred, full_matrices=False).Vh[:dims]
    return centred @ basis.T


def two_means(points: torch.Tensor, iterations: int = 100, centres: torch.Tensor | None = None) -> np.ndarray:
    """Lloyd's 2-means, started from `centres` or else from the two extremes of the first
    component (deterministic); cluster 1 is the smaller one."""
    if centres is None:
        first = points[:, 0]
        centres = torch.stack([points[first.argmin()], points[first.argmax()]])
    centres = centres.clone()
    assign = torch.zeros(len(points), dtype=torch.long)
    for _ in range(iterations):
        new = torch.cdist(points, centres).argmin(1)
        if torch.equal(new, assign) and _ > 0:
            break
        assign = new
        for c in (0, 1):
            if (assign == c).any():
                centres[c] = points[assign == c].mean(0)
    assign = assign.numpy()
    return assign if (assign == 1).sum() <= (assign == 0).sum() else 1 - assign


def split(features: torch.Tensor, dims: int) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """One class's activations in `dims` principal components, split by 2-means: per sample
    whether it is in the smaller cluster, the points, and the larger and smaller centre."""
    points = reduce(features, min(dims, len(features) - 1))
    small = two_means(points) == 1
    return small, points, _centres(points, small)


def _centres(points: torch.Tensor, small: np.ndarray) -> torch.Tensor:
    return torch.stack([points[torch.from_numpy(small == c)].mean(0) for c in (False, True)])


def _separation_of(points: torch.Tensor, small: np.ndarray) -> tuple[float, torch.Tensor]:
    """The squared distance between the split's two centres over a sample's mean squared
    distance to its own centre, and the centres (larger side's first)."""
    centres = _centres(points, small)
    spread = ((points - centres[torch.from_numpy(small).long()]) ** 2).sum(1).mean()
    return float(((centres[0] - centres[1]) ** 2).sum() / spread.clamp_min(1e-12)), centres


def cluster_scores(features: torch.Tensor, labels: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: its margin toward its class's smaller cluster (d_large - d_small over their
    sum, in [-1, 1]), whether it is in that cluster, and that cluster's share of the class."""
    margin, small, share = np.zeros(len(labels)), np.zeros(len(labels), dtype=bool), np.zeros(len(labels))
    for k in np.unique(labels):
        rows = np.flatnonzero(labels == k)
        if len(rows) < 2:
            continue
        small[rows], points, centres = split(features[rows], dims)
        d = torch.cdist(points, centres).numpy()
        margin[rows] = (d[:, 0] - d[:, 1]) / np.maximum(d[:, 0] + d[:, 1], 1e-12)
        share[rows] = small[rows].mean()
    return margin, small, share


def separation(features: torch.Tensor, labels: np.ndarray, num_classes: int, dims: int, depth: int = 1, classes=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class, its most contrasted split into two clusters: how far apart they lie (the
    squared distance between their centres over a sample's mean squared distance to its own
    centre; 0 for a class too small to split), and the separation a Gaussian of the class's
    own principal variances gives for a cut in the same direction (`gaussian_separation`); per
    sample, whether it is in its class's smaller cluster.
    A clean class splits into two neighbouring halves; a dirty-label target class holds two
    populations, its own images and the poisons the trigger carried into it, far apart.
    2-means starts from every `tail_starts`, not only the first component's extremes: a small
    far cluster can lie along a later component of a class whose own shape is longest along
    the first, and 2-means started there halves the class instead (Fashion-MNIST BadNets
    all-to-all: Dress's and Bag's poisons split off at 5.2 and 6.4 times the Gaussian's
    separation, and from the first component's extremes not at all, 1.3 and 1.5 times).
    With `depth` 2, each side of the best split is split again the same way, and each cluster
    found there competes as a split of the whole class (it against the rest): poisons that
    2-means on the whole class lumps with some of the class's own images, or that are no fixed
    point of it, come apart inside a side (Fashion-MNIST Blend all-to-all: Trouser's 347 poisons
    in a cluster of 698 at 2.8 times, alone at 4.9; Bag's 277, never split off from the whole
    class, in a cluster of 296 at 3.1). But a far cluster already split off can split again
    into a part of itself that stands further from the rest, so `bar_by_clusters` looks deeper
    only in the classes the first level does not convince. The split kept is the one with the
    highest ratio. `classes`: only these (default all); the others stay 0."""
    sep, small, gaussian = np.zeros(num_classes), np.zeros(len(labels), dtype=bool), np.zeros(num_classes)
    for k in range(num_classes) if classes is None else classes:
        rows = np.flatnonzero(labels == k)
        if len(rows) < 3:
            continue
        points = reduce(features[rows], min(dims, len(rows) - 1))
        best = _most_contrasted(points, _clusters(points, np.arange(len(rows)), least=1))
        d = points.shape[1]
        least = min(d + d * (d + 1) // 2, len(rows) // 2)  # inside a side: a Gaussian's parameter count
        for _ in range(depth - 1):
            if best is None:
                break
            sides = [np.flatnonzero(side) for side in (best[2], ~best[2]) if side.sum() >= 3]
            best = _most_contrasted(points, (c for side in sides for c in _clusters(points, side, least)), best)
        if best is not None:
            sep[k], gaussian[k], small[rows] = best
    return sep, small, gaussian


def axis_contrast(features: torch.Tensor, labels: np.ndarray, small: np.ndarray, num_classes: int, dims: int) -> np.ndarray:
    """Per class, the separation of its split (`small`) along the line through the two
    centres alone, over a Gaussian's halving in one dimension. The more of a class the poisons
    fill, the more of its variance lies along that line, so a Gaussian of the class's own
    variances is cut there nearly as far apart as the two populations lie (Fashion-MNIST
    BadNets 10 % into Dress, 6,000 poisons in 12,000: 1.9 times the Gaussian's separation in
    10 dimensions); along the line, where the other dimensions' spread does not dilute it,
    they lie 9.5 times as far apart. On five variant runs the all-to-one targets lay 4.3-20
    times apart along their axis, every clean class 1.1-3.0 times. 0 where a class has no
    split."""
    halving = gaussian_separation(np.ones(1))
    out = np.zeros(num_classes)
    for k in range(num_classes):
        rows = np.flatnonzero(labels == k)
        side = small[rows]
        if len(rows) < 3 or side.all() or not side.any():
            continue
        points = reduce(features[rows], min(dims, len(rows) - 1))
        out[k] = _separation_of(_along_axis(points, side)[0][:, None], side)[0] / halving
    return out


def valleys(features: torch.Tensor, labels: np.ndarray, small: np.ndarray, num_classes: int, dims: int, classes=None) -> np.ndarray:
    """Per class (of `classes`, default all), the `valley` of its split (`small`) along the line
    through the two centres; 1 where a class has no split, or one whose smaller side holds fewer
    samples than a Gaussian in `dims` dimensions has parameters (a handful of outliers leaves
    empty space behind it by chance)."""
    out = np.ones(num_classes)
    for k in range(num_classes) if classes is None else classes:
        rows = np.flatnonzero(labels == k)
        d = min(dims, max(len(rows) - 1, 1))
        side = small[rows]
        if min(side.sum(), (~side).sum()) < d + d * (d + 1) // 2:
            continue
        out[k] = valley(reduce(features[rows], d), side)
    return out


def hollowness(valley: np.ndarray) -> np.ndarray:
    """How much emptier each class's valley is than the other classes' (MAD anomaly index),
    among the classes whose valley was measured: 1 is `valleys`' "no evidence" (too small a
    split or peak), and were most classes at 1 any measured valley would stand out infinitely."""
    measured = valley < 1
    if not measured.any():
        return np.zeros(len(valley))
    return np.where(measured, mad_anomaly(-valley, 1e-12, reference=-valley[measured]), 0.0)


def valley(points: torch.Tensor, small: np.ndarray, bins: int = 20, least: int = 20) -> float:
    """How empty the space between a split's two clusters is: the samples' positions along the
    line through the two centres are counted in `bins` equal stretches between the centres (and
    half as far again on either side); the emptiest stretch between the centres, over the fuller
    stretch of the lower of the two peaks around it. A class cut through one population is
    densest toward its mode, so nothing dips between the centres and the ratio is near 1; two
    separate populations leave the space between them empty, near 0, however close their
    centres lie next to the class's spread (Fashion-MNIST Blend all-to-all: Bag's 277 poisons
    split off at 2.6 times a Gaussian's separation, under the contrast bar of 3, but with not
    one sample in the emptiest stretch; on clean data the classes' splits lie at 0.45-1)."""
    along, (lo, hi) = _along_axis(points, small)
    width = (hi - lo) / bins
    counts, _ = np.histogram(along.numpy(), lo - width * bins / 2 + width * np.arange(2 * bins + 1))
    between = counts[bins // 2 : bins // 2 + bins]
    at = bins // 2 + int(np.argmin(between))
    peak = min(counts[: at + 1].max(), counts[at:].max())
    # Below `least` samples at the lower peak an empty stretch may be chance. Where a class is one
    # population, a stretch between its peaks holds about as many as the lower one: were twenty
    # stretches each expected to hold 14 (0.7 of a 20-sample peak), one would hold at most 2 (a
    # tenth) about once in 500 classes.
    return float(between.min() / peak) if peak >= least else 1.0


def shared_shift(features: np.ndarray, labels: np.ndarray, small: np.ndarray, classes, min_cos: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The direction in which two or more of these classes' splits move the same way, and
    those classes: each class's split is its smaller cluster's centre minus its larger one's,
    in the full feature space where the classes' directions compare. The class with the most
    others at a cosine of at least `min_cos` is averaged with them (the first among equals);
    None when no two align.
    A natural split of a class is its own (Fashion-MNIST's and CIFAR-10's unattacked classes:
    cosines at most 0.36 between named classes, 0.59 between automobile and truck, which no
    filter names); the images of several classes carrying one trigger are moved by it alike
    (CIFAR-10 Adaptive-Patch, its cover samples in airplane, deer and dog: 0.84-0.92)."""
    split, directions = [], []
    for k in classes:
        rows = labels == k
        if (rows & small).any() and (rows & ~small).any():
            d = features[rows & small].mean(0) - features[rows & ~small].mean(0)
            split.append(k)
            directions.append(d / max(np.linalg.norm(d), 1e-12))
    if len(directions) < 2:
        return None
    unit = np.array(directions)
    aligned = unit @ unit.T >= min_cos
    group = aligned[int(np.argmax(aligned.sum(1)))]
    if group.sum() < 2:
        return None
    shift = unit[group].mean(0)
    return shift / np.linalg.norm(shift), np.array(split)[group]


def _along_axis(points: torch.Tensor, small: np.ndarray) -> tuple[torch.Tensor, tuple[float, float]]:
    """The samples' positions on the line through a split's two centres (larger side's first),
    and the two centres' positions on it."""
    centres = _centres(points, small)
    axis = (centres[1] - centres[0]) / (centres[1] - centres[0]).norm().clamp_min(1e-12)
    return points @ axis, (float(centres[0] @ axis), float(centres[1] @ axis))


def _clusters(points: torch.Tensor, among: np.ndarray, least: int):
    """The clusters 2-means finds among these samples of a class from every `tail_starts`, each
    as a split of the whole class (a mask of its smaller side) of at least `least` samples.
    From a tail start inside a small side, 2-means can settle on a handful of outliers whose
    centre lies far off by chance (in a Gaussian class of 120 samples in 4 dimensions, single
    samples at 5 times a Gaussian's separation); a cluster of at least as many samples as a
    Gaussian in those dimensions has parameters (14 in 4, 65 in 10) did not (at most 1.5)."""
    sub = points[torch.from_numpy(among)]
    for start in tail_starts(sub):
        found = two_means(sub, centres=start) == 1
        for cluster in (found, ~found) if len(among) < len(points) else (found,):
            mask = np.zeros(len(points), dtype=bool)
            mask[among[cluster]] = True
            mask = mask if 2 * mask.sum() <= len(points) else ~mask
            if mask.sum() >= least:
                yield mask


def _most_contrasted(points: torch.Tensor, clusters, best=None):
    """(separation, Gaussian's separation, smaller cluster) of the split most contrasted
    against a Gaussian cut in its own direction, or `best` unless one beats it; the first
    among equals."""
    variances = (points**2).mean(0).numpy()
    for small in clusters:
        ratio, centres = _separation_of(points, small)
        reference = gaussian_separation(variances, (centres[1] - centres[0]).numpy())
        if best is None or ratio * best[1] > best[0] * reference:
            best = (ratio, reference, small)
    return best


def tail_starts(points: torch.Tensor, share: float = 0.02) -> list[torch.Tensor]:
    """Starting centres for 2-means: the class mean, and the mean of the `share` of samples
    furthest out on either side of each component. A tail's mean, unlike its single extreme
    sample, lies inside a far cluster that sits out along that side (Fashion-MNIST Blend
    all-to-all: Sandal's poisons are found from a tail and from no extreme); the splits it
    converges to were the same at a share of 2 % and 5 % on the grid's runs."""
    mean, m = points.mean(0), max(1, int(share * len(points)))
    order = torch.argsort(points, dim=0)
    return [torch.stack([mean, points[side].mean(0)]) for j in range(points.shape[1]) for side in (order[:m, j], order[-m:, j])]


def gaussian_separation(variances: np.ndarray, direction: np.ndarray | None = None) -> float:
    """The separation of a Gaussian with these principal variances cut through its mean across
    `direction` (default: the first component, where 2-means cuts it), in closed form: each
    half's centre lies sqrt(2/pi) |S u| / sqrt(u'S u) from the mean, and a sample's squared
    distance to its centre is trace(S) minus that squared. Unimodal classes stay near it
    (Fashion-MNIST: 1.1-1.8 times it); two far populations do not."""
    variances = np.asarray(variances, dtype=np.float64)
    u = np.eye(len(variances))[variances.argmax()] if direction is None else np.asarray(direction, dtype=np.float64)
    u = u / max(np.linalg.norm(u), 1e-300)
    offset2 = (2 / np.pi) * float(((variances * u) ** 2).sum()) / max(float((variances * u * u).sum()), 1e-300)
    return 4 * offset2 / max(float(variances.sum()) - offset2, 1e-12)


@METHODS.register("clustering")
class ActivationClustering(Method):
    name = "clustering"
    section = "clustering"
    suspicion = "margin toward the smaller of the class's two activation clusters"

    def detect(self, inputs: Inputs) -> Detection:
        labels = inputs.data.split.labels
        features = predict(inputs.suspect, inputs.data.x, features=True, desc="features")
        margin, small, share = cluster_scores(features, labels, inputs.cfg.dims)
        suspected = small & (share <= inputs.cfg.max_share)
        classes = inputs.data.store.classes
        split = sorted({classes[k] for k in np.unique(labels[suspected])}, key=classes.index)
        return Detection(suspicion=margin, suspected=suspected, summary={"split_classes": split})
