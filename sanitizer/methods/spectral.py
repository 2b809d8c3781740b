"""Spectral signatures (Tran, Li and Madry, NeurIPS 2018), as a baseline: inside a class, the
poisons' penultimate features share a direction the clean samples lack, so they stand out on
the top singular vector of the class's centred features. A sample's score is its squared
projection on that vector; the paper removes the 1.5 epsilon highest-scoring samples of every
class, epsilon being an upper bound on the poison rate it assumes known (`spectral.eps_bound`
here). Every class loses that share, poisoned or not."""

from __future__ import annotations

import numpy as np
import torch

from ..training import predict
from .base import METHODS, Detection, Inputs, Method


def class_scores(features: torch.Tensor, labels: np.ndarray) -> np.ndarray:
    """Per sample, the squared projection of its centred feature on its class's top singular
    vector, divided by the class's mean score so that classes compare."""
    scores = np.zeros(len(labels))
    for k in np.unique(labels):
        rows = np.flatnonzero(labels == k)
        centred = features[rows].double() - features[rows].double().mean(0)
        # The top right singular vector; its sign does not matter once squared.
        top = torch.linalg.svd(centred, full_matrices=False).Vh[0]
        s = (centred @ top).pow(2).numpy()
        scores[rows] = s / max(s.mean(), 1e-12)
    return scores


def top_per_class(scores: np.ndarray, labels: np.ndarray, share: float) -> np.ndarray:
    """The `share` highest scores of every class (ties: the earlier sample first)."""
    flagged = np.zeros(len(labels), dtype=bool)
    for k in np.unique(labels):
        rows = np.flatnonzero(labels == k)
        n = int(round(share * len(rows)))
        flagged[rows[np.argsort(-scores[rows], kind="stable")[:n]]] = True
    return flagged


@METHODS.register("spectral")
class SpectralSignatures(Method):
    name = "spectral"
    section = "spectral"
    suspicion = "squared projection on the class's top singular vector of centred features, over the class mean"

    def detect(self, inputs: Inputs) -> Detection:
        labels = inputs.data.split.labels
        scores = class_scores(predict(inputs.suspect, inputs.data.x, features=True, desc="features"), labels)
        share = min(1.0, 1.5 * inputs.cfg.eps_bound)
        return Detection(suspicion=scores, suspected=top_per_class(scores, labels, share), summary={"removed_per_class": share})
