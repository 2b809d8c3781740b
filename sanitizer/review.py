"""What `sanitize inspect` shows: decisions per class, the method's summary (an inferred target
class, for one), and the top samples by any signal the method declared in
detect/suspicion.parquet. The default lists flagged samples by the method's suspicion score;
`--by SIGNAL` lists samples of any decision, which is where poisons the pipeline kept show up.
Ground truth is shown beside them only when a benchmark run wrote it. Reads the manifests
only: no stage code, no torch."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import SanitizerError
from .manifest import meta_value, read_manifest


def load_review(data: str | Path) -> tuple[pl.DataFrame, list[str], dict]:
    """Decisions joined with every signal, the class names, and the suspicion manifest's
    metadata (method, signals, summary)."""
    from .layout import Paths
    from .methods.base import signal_names
    from .pipeline import require_same_store

    paths = Paths(data)
    require_same_store(paths, ("decisions", "suspicion"))
    decisions = read_manifest(paths.decisions, ["sample_id", "label", "decision", "new_label", "confidence", "reason", "source"])
    meta = {key: meta_value(paths.suspicion, key) for key in ("method", "summary")}
    meta["signals"] = signal_names(paths.suspicion)
    suspicion = read_manifest(paths.suspicion, ["sample_id", *meta["signals"]])
    df = decisions.join(suspicion.select("sample_id", *meta["signals"]), on="sample_id")
    truth_path = paths.truth
    if truth_path.exists() and meta_value(truth_path, "attack") != "none":
        truth = read_manifest(truth_path, ["sample_id", "is_poison"])
        df = df.join(truth.select("sample_id", "is_poison"), on="sample_id")
    return df, meta_value(paths.decisions, "classes"), meta


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


def top_samples(df: pl.DataFrame, top: int, by: str = "suspicion", class_index: int | None = None) -> pl.DataFrame:
    """Ranked by `by`, most suspicious first: by the suspicion score, only flagged samples; by
    any other signal, samples of every decision."""
    if by == "suspicion":
        df = df.filter(pl.col("decision") != "keep")
    if class_index is not None:
        df = df.filter(pl.col("label") == class_index)
    return df.sort([by, "sample_id"], descending=[True, False]).head(top)


def summary_text(meta: dict) -> str:
    """The method's scalar facts (an inferred target, how strongly it stands out), one line."""
    facts = []
    for key, value in sorted(meta["summary"].items()):
        if isinstance(value, float):
            facts.append(f"{key} {value:.2f}")
        elif isinstance(value, list):
            facts.append(f"{key} {', '.join(map(str, value)) or 'none'}")
        elif not isinstance(value, dict):
            facts.append(f"{key} {value}")
    return f"Method {meta['method']}" + (f": {'; '.join(facts)}" if facts else "")


def render_review(data: str | Path, top: int, class_name: str | None, by: str = "suspicion") -> None:
    df, classes, meta = load_review(data)
    signals = list(meta["signals"])
    if by not in signals:
        raise SanitizerError(f"method {meta['method']} has no signal {by!r}; its signals: {', '.join(signals)}")
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
    console.print(Text(summary_text(meta)))

    title = f"Top {top} flagged samples by suspicion" if by == "suspicion" else f"Top {top} samples by {by}, any decision"
    table = Table(title=title)
    # Short headers: the table must fit 80 columns, rich's width when output is piped; sample
    # IDs are never cut, class names wrap instead.
    rows = top_samples(df, top, by, class_index)
    table.add_column("sample_id", no_wrap=True, min_width=max([9, *rows["sample_id"].str.len_chars()]))
    has_truth = "is_poison" in df.columns
    shown = ["suspicion"] + ([by] if by != "suspicion" else [])
    for col in ["given", "decision", "new", "conf.", *shown] + (["poison"] if has_truth else []):
        table.add_column("susp." if col == "suspicion" else col[:8], justify="right" if col in ("conf.", *shown) else "left")
    for row in rows.iter_rows(named=True):
        # Text, not str: sample ids and class names are the user's, and rich would read
        # "[bold]" in them as markup (or fail on "[/]").
        cells = [
            Text(row["sample_id"]),
            Text(classes[row["label"]]),
            row["decision"],
            # A dropped sample's other label is the clean model's suggestion.
            Text(classes[row["new_label"]]) if row["new_label"] != row["label"] else "",
            f"{row['confidence']:.2f}",
            *(f"{row[c]:.2f}" for c in shown),
        ]
        table.add_row(*cells, *([str(row["is_poison"])] if has_truth else []))
    console.print(table)
