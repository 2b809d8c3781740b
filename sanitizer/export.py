"""`sanitize export`: the sanitized training set, the dataset a team hands on. Kept samples keep
their label, relabelled ones take their new label, dropped ones are left out. Written as an
ImageFolder (`<class>/<file>.png`) or one Parquet table that `data.source: parquet` reads back,
with `changes.csv` listing every dropped and relabelled sample and why."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import numpy as np
import polars as pl

from .errors import SanitizerError
from .io import atomic_path
from .layout import Paths
from .manifest import read_aligned
from .progress import progress_bar
from .store import SampleStore

FORMATS = ("imagefolder", "parquet")


def png(image: np.ndarray) -> bytes:
    """A uint8 C x H x W image as PNG bytes (lossless: the exported pixels are the store's)."""
    from PIL import Image

    array = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
    return buf.getvalue()


def safe_name(text: str) -> str:
    """A file or folder name for user text: no separators, no leading dot, never empty."""
    name = re.sub(r"[^\w.\-+=,@ ()\[\]]", "_", text).strip() or "_"
    return "_" + name if name.startswith(".") else name


def file_name(sample_id: str) -> str:
    # Sample ids are unique but may hold "/", so the readable part alone could collide.
    return f"{safe_name(sample_id)[-80:]}-{hashlib.sha1(sample_id.encode()).hexdigest()[:8]}.png"


def sanitized(data: str | Path) -> tuple[pl.DataFrame, np.ndarray, list[str]]:
    """Every train sample with its decision and exported label, the images, the class names."""
    from .pipeline import require_same_store

    paths = Paths(data)
    store = SampleStore(paths.store)
    require_same_store(paths, ("store", "decisions"))
    train = store.split("train")
    decisions = read_aligned(paths.decisions, ["decision", "new_label", "confidence", "reason", "source"], train.sample_ids)
    df = decisions.with_columns(pl.Series("label", train.labels))
    return df, train.images, store.classes


def export(data: str | Path, out: str | Path, fmt: str = "imagefolder", force: bool = False) -> dict:
    if fmt not in FORMATS:
        raise SanitizerError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise SanitizerError(f"{out} already exists and is not empty: choose another --out, or pass --force to replace it")
    df, images, classes = sanitized(data)
    kept = df["decision"].to_numpy() != "drop"
    labels = df["new_label"].to_numpy()
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (_imagefolder if fmt == "imagefolder" else _parquet)(tmp, df, images, classes, kept, labels)
        changes = df.filter(pl.col("decision") != "keep").select(
            "sample_id",
            "decision",
            pl.col("label").map_elements(lambda i: classes[i], return_dtype=pl.String).alias("given_label"),
            pl.when(pl.col("decision") == "relabel")
            .then(pl.col("new_label").map_elements(lambda i: classes[i], return_dtype=pl.String))
            .otherwise(None)
            .alias("new_label"),
            "confidence",
            "reason",
            "source",
        )
        changes.write_csv(tmp / "changes.csv")
    counts = {d: int((df["decision"] == d).sum()) for d in ("keep", "relabel", "drop")}
    return {"out": str(out), "format": fmt, "exported": int(kept.sum()), **counts}


def _imagefolder(tmp: Path, df, images, classes, kept, labels) -> None:
    folders = [safe_name(c) for c in classes]
    if len(set(folders)) != len(folders):
        raise SanitizerError(f"class names {classes} do not make distinct folder names; export with --format parquet")
    for folder in folders:
        (tmp / folder).mkdir()
    ids = df["sample_id"].to_list()
    rows = np.flatnonzero(kept)
    with progress_bar("exporting images", len(rows)) as advance:
        for i in rows:
            (tmp / folders[labels[i]] / file_name(ids[i])).write_bytes(png(images[i]))
            advance()


def _parquet(tmp: Path, df, images, classes, kept, labels) -> None:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = np.flatnonzero(kept)
    with progress_bar("encoding images", len(rows)) as advance:
        blobs = []
        for i in rows:
            blobs.append(png(images[i]))
            advance()
    table = pa.table(
        {
            "sample_id": pa.array(df["sample_id"].to_numpy()[rows].tolist(), pa.string()),
            "image": pa.array(blobs, pa.binary()),
            "label": pa.array(labels[rows], pa.int64()),
            "class_name": pa.array([classes[k] for k in labels[rows]], pa.string()),
        }
    )
    # The class list as metadata: `data.source: parquet` reads it back, empty classes included.
    pq.write_table(table.replace_schema_metadata({"classes": json.dumps(classes)}), tmp / "train.parquet", compression="zstd")
