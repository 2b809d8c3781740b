"""Confident learning on out-of-fold predictions (Northcutt et al., JAIR 2021), as a baseline:
the train split is cut into `folds` folds, a fresh model of the suspect's architecture is
trained (the `train` section's recipe) on all folds but one and predicts the held-out one, and
cleanlab's `find_label_issues` flags the samples whose given label the out-of-fold
probabilities do not support. The reference implementation is cleanlab's; we call it rather
than rewrite it. A backdoor generalises across folds, so its poisons are mostly predicted as
their (wrong) given label: the issue's diagnosis expects few flags on all-to-one attacks."""

from __future__ import annotations

import numpy as np
import torch

from ..training import fit, predict
from .base import METHODS, Detection, Inputs, Method


def fold_of(n: int, folds: int, seed: int) -> np.ndarray:
    """Each sample's fold: a seeded shuffle dealt round-robin, so folds differ by at most one."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    fold = np.empty(n, dtype=np.int64)
    fold[order] = np.arange(n) % folds
    return fold


def out_of_fold_probs(inputs: Inputs, folds: int) -> np.ndarray:
    data, train = inputs.data, inputs.train
    fold = fold_of(len(data.y), folds, train.seed)
    probs = np.zeros((len(data.y), len(data.store.classes)))
    for k in range(folds):
        held = torch.from_numpy(np.flatnonzero(fold == k))
        rest = torch.from_numpy(np.flatnonzero(fold != k))
        model = fit(data.new_model(train.seed + 1 + k), data.x[rest], data.y[rest], train, desc=f"fold {k + 1}/{folds}")
        probs[held.numpy()] = torch.softmax(predict(model, data.x[held]), 1).double().numpy()
    return probs


@METHODS.register("confident")
class ConfidentLearning(Method):
    name = "confident"
    section = "confident"
    suspicion = "1 - out-of-fold probability of the given label (self-confidence)"

    def detect(self, inputs: Inputs) -> Detection:
        from cleanlab.filter import find_label_issues

        probs = out_of_fold_probs(inputs, inputs.cfg.folds)
        labels = inputs.data.split.labels
        # One process: the stage already uses every core, and its result must not hang on a pool.
        issues = find_label_issues(labels, probs, filter_by=inputs.cfg.filter_by, n_jobs=1)
        self_confidence = probs[np.arange(len(labels)), labels]
        return Detection(suspicion=1.0 - self_confidence, suspected=np.asarray(issues, dtype=bool), summary={"label_issues": int(issues.sum())})
