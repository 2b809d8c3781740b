"""Parquet manifests between stages: keyed and sorted by `sample_id`, stamped with the schema
version and the stage that wrote them, written atomically and byte-for-byte reproducibly."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from .errors import SanitizerError
from .io import atomic_path, placeholder_error

SCHEMA_VERSION = 1


def write_manifest(df: pl.DataFrame, path: str | Path, stage: str, meta: dict | None = None) -> None:
    if "sample_id" not in df.columns:
        raise SanitizerError(f"manifest {path} has no sample_id column")
    if df["sample_id"].is_duplicated().any():
        raise SanitizerError(f"manifest {path} has duplicate sample_ids")
    table = df.sort("sample_id").to_arrow()
    file_meta = {
        "schema_version": str(SCHEMA_VERSION),
        "stage": stage,
        **{k: json.dumps(v, sort_keys=True) for k, v in (meta or {}).items()},
    }
    table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in file_meta.items()})
    with atomic_path(path) as tmp:
        # No statistics/page index timestamps: identical input gives identical bytes.
        pq.write_table(table, tmp, compression="zstd", write_statistics=False)


def read_manifest(path: str | Path, columns: list[str] | None = None) -> pl.DataFrame:
    path = Path(path)
    if not path.exists():
        raise SanitizerError(f"missing manifest {path}: run the stage that writes it first")
    try:
        df = pl.read_parquet(path)
        version = read_meta(path).get("schema_version")
    except Exception as e:  # noqa: BLE001 - polars and pyarrow raise many types for a damaged file
        raise SanitizerError(placeholder_error(path) or f"{path} is damaged or not a Parquet file ({type(e).__name__}); delete it and re-run the stage that writes it") from None
    if version != str(SCHEMA_VERSION):
        raise SanitizerError(f"{path} has schema_version {version}, expected {SCHEMA_VERSION}")
    missing = [c for c in (columns or []) if c not in df.columns]
    if missing:
        raise SanitizerError(f"{path} lacks column(s) {missing}: another version of sanitizer wrote it; re-run the stage that writes it (`dvc repro` does)")
    return df


def read_aligned(path: str | Path, columns: list[str], sample_ids) -> pl.DataFrame:
    """A manifest that must hold exactly `sample_ids` (the store's train split), in order."""
    return aligned(read_manifest(path, ["sample_id", *columns]), sample_ids, path)


def aligned(df: pl.DataFrame, sample_ids, path: str | Path) -> pl.DataFrame:
    import numpy as np

    if len(df) != len(sample_ids) or not np.array_equal(df["sample_id"].to_numpy(), sample_ids):
        raise SanitizerError(f"{path} does not match the sample store's train split: it comes from another run; re-run the pipeline from ingest")
    return df


def read_meta(path: str | Path) -> dict[str, str]:
    raw = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in raw.items() if not k.startswith(b"ARROW")}


_REQUIRED = object()


def meta_value(path: str | Path, key: str, default=_REQUIRED):
    """A JSON metadata value; `default` when given and the manifest predates the key."""
    try:
        meta = read_meta(path)
        if key not in meta and default is not _REQUIRED:
            return default
        return json.loads(meta[key])
    except FileNotFoundError:
        raise SanitizerError(f"missing manifest {path}: run the stage that writes it first") from None
    except Exception as e:  # noqa: BLE001 - a damaged file or a manifest from another version
        raise SanitizerError(f"{path}: cannot read its {key!r} metadata ({type(e).__name__}); re-run the stage that writes it") from None
