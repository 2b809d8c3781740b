"""The evaluate stage's plots as PNG, beside the CSVs `dvc plots` reads: for people who would
rather look than read. matplotlib (Agg, no display) draws them; the PNGs carry no timestamp or
version text, so the same run gives the same bytes."""

from __future__ import annotations

from pathlib import Path

import polars as pl

PNG_META = {"Software": None}


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    return plt, fig, ax


def score_distribution(hist: pl.DataFrame, path: Path) -> None:
    """Counts per suspicion bin, one line per group (all, or clean and poisoned)."""
    plt, fig, ax = _figure()
    for group in sorted(set(hist["group"])):
        rows = hist.filter(pl.col("group") == group)
        ax.step(rows["suspicion"], rows["count"], where="mid", label=group)
    ax.set(xlabel="suspicion (higher = more suspicious)", ylabel="train samples", yscale="symlog", title="Suspicion score distribution")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, format="png", metadata=PNG_META)
    plt.close(fig)


def roc(curves: pl.DataFrame, auroc: dict[str, float], path: Path) -> None:
    """One ROC curve per signal, its AUROC in the legend."""
    plt, fig, ax = _figure()
    for name in sorted(set(curves["signal"]), key=lambda n: (n != "suspicion", n)):
        rows = curves.filter(pl.col("signal") == name)
        ax.plot(rows["fpr"], rows["tpr"], label=f"{name} (AUROC {auroc[name]:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate (poisons found)", title="ROC of each signal", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="png", metadata=PNG_META)
    plt.close(fig)
