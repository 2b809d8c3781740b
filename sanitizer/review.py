"""What `sanitize inspect` shows: decisions per class and the top samples by one suspicion
signal. The default lists flagged samples by AdvrBD's consistency; `--by gap` lists samples of
any decision by their purification gap, which is where faint-trigger poisons that the pipeline
kept show up. Ground truth is shown beside them only when a benchmark run wrote it."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import SanitizerError
from .manifest import meta_value, read_manifest


def load_review(data: str | Path) -> tuple[pl.DataFrame, list[str]]:
    from .layout import Paths
    from .pipeline import require_same_store

    paths = Paths(data)
    require_same_store(paths, ("decisions", "identify", "scores"))
    decisions = read_manifest(paths.decisions, ["sample_id", "label", "decision", "new_label", "confidence", "reason"])
    ident = read_manifest(paths.identify, ["sample_id", "consistency"])
    scores = read_manifest(paths.scores, ["sample_id", "gap"])
    df = decisions.join(ident.select("sample_id", "consistency"), on="sample_id").join(scores.select("sample_id", "gap"), on="sample_id")
    truth_path = paths.truth
    if truth_path.exists() and meta_value(truth_path, "attack") != "none":
        truth = read_manifest(truth_path, ["sample_id", "is_poison"])
        df = df.join(truth.select("sample_id", "is_poison"), on="sample_id")
    return df, meta_value(paths.decisions, "classes")


def suspected_targets(data: str | Path) -> list[str]:
    """Classes the partition stage's gap filter suspected; none when the filter was off."""
    from .layout import Paths

    path = Paths(data).partition
    return meta_value(path, "suspected_targets", default=[]) if path.exists() else []


def class_summary(df: pl.DataFrame, classes: list[str]) -> pl.DataFrame:
    summary = (
        df.group_by("label")
        .agg(
            pl.len().alias("samples"),
            (pl.col("decision") == "keep").sum().alias("keep"),
            (pl.col("decision") == "relabel").sum().alias("relabel"),
            (pl.col("decision") == "drop").sum().alias("drop"),
        )
        .sort("label")
    )
    return summary.with_columns(pl.col("label").map_elements(lambda i: classes[i], return_dtype=pl.String).alias("class"))


# signal -> (only flagged samples?, table title); higher = more suspicious for both.
RANKINGS = {
    "consistency": (True, "Top {top} flagged samples (most suspicious first)"),
    "gap": (False, "Top {top} samples by purification gap, any decision"),
}


def top_samples(df: pl.DataFrame, top: int, by: str = "consistency", class_index: int | None = None) -> pl.DataFrame:
    flagged_only, _ = RANKINGS[by]
    if flagged_only:
        df = df.filter(pl.col("decision") != "keep")
    if class_index is not None:
        df = df.filter(pl.col("label") == class_index)
    return df.sort([by, "sample_id"], descending=[True, False]).head(top)


def render_review(data: str | Path, top: int, class_name: str | None, by: str = "consistency") -> None:
    df, classes = load_review(data)
    class_index = None
    if class_name is not None:
        if class_name not in classes:
            raise SanitizerError(f"unknown class {class_name!r}; classes: {', '.join(classes)}")
        class_index = classes.index(class_name)
    console = Console()
    summary = Table(title="Decisions per given label")
    for col in ("class", "samples", "keep", "relabel", "drop"):
        summary.add_column(col, justify="left" if col == "class" else "right")
    for row in class_summary(df, classes).iter_rows(named=True):
        summary.add_row(Text(row["class"]), *(str(row[c]) for c in ("samples", "keep", "relabel", "drop")))
    console.print(summary)
    targets = suspected_targets(data)
    if targets:
        console.print(Text(f"Suspected backdoor target (purification gap): {', '.join(targets)}; its high-gap samples were barred from D_s"))

    table = Table(title=RANKINGS[by][1].format(top=top))
    # Short headers: the table must fit 80 columns, rich's width when output is piped; sample
    # IDs are never cut, class names wrap instead.
    rows = top_samples(df, top, by, class_index)
    table.add_column("sample_id", no_wrap=True, min_width=max([9, *rows["sample_id"].str.len_chars()]))
    has_truth = "is_poison" in df.columns
    for col in ["given", "decision", "new", "conf.", "consist.", "gap"] + (["poison"] if has_truth else []):
        table.add_column(col, justify="right" if col in ("conf.", "consist.", "gap") else "left")
    for row in rows.iter_rows(named=True):
        # Text, not str: sample ids and class names are the user's, and rich would read
        # "[bold]" in them as markup (or fail on "[/]").
        cells = [
            Text(row["sample_id"]),
            Text(classes[row["label"]]),
            row["decision"],
            Text(classes[row["new_label"]]) if row["decision"] == "relabel" else "",
            f"{row['confidence']:.2f}",
            f"{row['consistency']:.2f}",
            f"{row['gap']:.2f}",
        ]
        table.add_row(*cells, *([str(row["is_poison"])] if has_truth else []))
    console.print(table)
