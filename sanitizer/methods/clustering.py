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


def cluster_scores(features: torch.Tensor, labels: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample: its margin toward its class's smaller cluster (d_large - d_small over their
    sum, in [-1, 1]), whether it is in that cluster, and that cluster's share of the class."""
    margin, small, share = np.zeros(len(labels)), np.zeros(len(labels), dtype=bool), np.zeros(len(labels))
    for k in np.unique(labels):
        rows = np.flatnonzero(labels == k)
        if len(rows) < 2:
            continue
        points = reduce(features[rows], min(dims, len(rows) - 1))
        assign = two_means(points)
        centres = torch.stack([points[torch.from_numpy(assign == c)].mean(0) for c in (0, 1)])
        d = torch.cdist(points, centres).numpy()
        margin[rows] = (d[:, 0] - d[:, 1]) / np.maximum(d[:, 0] + d[:, 1], 1e-12)
        small[rows] = assign == 1
        share[rows] = (assign == 1).mean()
    return margin, small, share


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
