"""Detection metrics against ground truth, and the MAD anomaly index the methods compare
classes by; numpy only."""

from __future__ import annotations

import numpy as np


def _average_ranks(score: np.ndarray) -> np.ndarray:
    order = np.argsort(score, kind="stable")
    sorted_scores = score[order]
    ranks = np.empty(len(score), dtype=np.float64)
    # Tied scores share the mean of their ranks, so AUROC counts a tie as half a win.
    _, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    mean_rank = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, counts)
    return ranks


def auroc(suspicion: np.ndarray, is_poison: np.ndarray) -> float | None:
    """P(a random poison is more suspicious than a random clean sample); None without both."""
    pos = is_poison.astype(bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(np.asarray(suspicion, dtype=np.float64))
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(suspicion: np.ndarray, is_poison: np.ndarray, points: int = 101) -> list[dict]:
    """FPR/TPR at `points` thresholds spread over the score's quantiles."""
    pos = is_poison.astype(bool)
    if pos.all() or not pos.any():
        return []
    thresholds = np.unique(np.quantile(suspicion, np.linspace(0, 1, points)))[::-1]
    rows = [{"fpr": 0.0, "tpr": 0.0}]
    for t in thresholds:
        flagged = suspicion >= t
        rows.append({"fpr": float(flagged[~pos].mean()), "tpr": float(flagged[pos].mean())})
    return rows


def detection(flagged: np.ndarray, is_poison: np.ndarray) -> dict:
    flagged, pos = flagged.astype(bool), is_poison.astype(bool)
    tp = int((flagged & pos).sum())
    fp = int((flagged & ~pos).sum())
    fn = int((~flagged & pos).sum())

    def ratio(a, b):
        return a / b if b else None

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = ratio(2 * precision * recall, precision + recall) if precision is not None and recall is not None else None
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "fpr": ratio(fp, int((~pos).sum())),
        "flagged": int(flagged.sum()),
        "true_positives": tp,
        "false_positives": fp,
    }


def mad_anomaly(values: np.ndarray, floor: float, reference: np.ndarray | None = None) -> np.ndarray:
    """How many robust standard deviations (1.4826 MAD, at least `floor`) each value lies
    above the median of `reference` (by default the values themselves): the outlier test
    Neural Cleanse applies to per-class statistics."""
    ref = values if reference is None else reference
    median = np.median(ref)
    return (values - median) / max(1.4826 * np.median(np.abs(ref - median)), floor)
