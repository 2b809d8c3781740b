"""Activation clustering (Chen et al., SafeAI 2019), as a baseline: a poisoned class's
penultimate activations split into two clusters, its clean samples and its poisons, while a
clean class stays one. Per class the activations are reduced to `dims` principal components
(the paper uses ICA; PCA keeps it deterministic and dependency-free) and split by 2-means; the
smaller cluster is flagged when it holds at most `max_share` of the class (the paper's relative
size rule, 0.35)."""

from __future__ import annotations

import numpy as np
import torch

from ..training import predict
from .base import METHODS, Detection, Inputs, Method


def reduce(features: torch.Tensor, dims: int) -> torch.Tensor:
    centred = features.double() - features.double().mean(0)
    basis = torch.linalg.svd(centred, full_matrices=False).Vh[:dims]
    return centred @ basis.T


def two_means(points: torch.Tensor, iterations: int = 100) -> np.ndarray:
    """Lloyd's 2-means, started from the two extremes of the first component (deterministic);
    cluster 1 is the smaller one."""
    first = points[:, 0]
    centres = torch.stack([points[first.argmin()], points[first.argmax()]])
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
    centres = torch.stack([points[torch.from_numpy(small == c)].mean(0) for c in (False, True)])
    return small, points, centres


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


def separation(features: torch.Tensor, labels: np.ndarray, num_classes: int, dims: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class, how far apart its two activation clusters lie: the squared distance between
    their centres over a sample's mean squared distance to its own centre (0 for a class too
    small to split); per sample, whether it is in its class's smaller cluster; and per class,
    the separation a Gaussian of the class's own principal variances gives (`gaussian_separation`).
    A clean class splits into two neighbouring halves; a dirty-label target class holds two
    populations, its own images and the poisons the trigger carried into it, far apart."""
    sep, small, gaussian = np.zeros(num_classes), np.zeros(len(labels), dtype=bool), np.zeros(num_classes)
    for k in range(num_classes):
        rows = np.flatnonzero(labels == k)
        if len(rows) < 3:
            continue
        small[rows], points, centres = split(features[rows], dims)
        if not small[rows].any():  # identical activations: nothing to split
            continue
        spread = ((points - centres[torch.from_numpy(small[rows]).long()]) ** 2).sum(1).mean()
        sep[k] = float(((centres[0] - centres[1]) ** 2).sum() / spread.clamp_min(1e-12))
        gaussian[k] = gaussian_separation((points**2).mean(0).numpy())
    return sep, small, gaussian


def gaussian_separation(variances: np.ndarray) -> float:
    """The separation 2-means gives on a Gaussian with these principal variances, in closed
    form: it cuts through the mean across the first component, so the centres lie at
    +-sqrt(2 l1 / pi) and each sample's squared distance to its centre is sum(l) - 2 l1 / pi.
    Unimodal classes stay near it (Fashion-MNIST: 1.1-1.8 times it); two far populations do not."""
    l1, total = float(variances.max()), float(variances.sum())
    return (8 * l1 / np.pi) / max(total - 2 * l1 / np.pi, 1e-12)


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
