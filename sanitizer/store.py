"""The sample store that `ingest` writes once and every later stage reads: `samples.parquet`
with one row per sample, and the images as uint8 arrays, one `.npy` shard per split in
sample_id order (never one file per sample: DVC hashes every file). Stages memory-map the
shards, so a split's images are paged in from disk as batches touch them instead of being
copied into RAM: past ingest, a dataset need not fit in memory."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from .errors import SanitizerError
from .io import atomic_path
from .manifest import meta_value, read_manifest, write_manifest

CHUNK = 4096  # images copied into a shard at a time
SPLITS = ("train", "test")


@dataclass(frozen=True)
class RawDataset:
    """What a dataset source yields. Images are uint8, N x C x H x W."""

    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    sample_ids: np.ndarray
    classes: list[str]
    name: str

    def __post_init__(self):
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise SanitizerError(f"{self.name}: images must be uint8 N x C x H x W, got {self.images.dtype} {self.images.shape}")
        for field in ("labels", "splits", "sample_ids"):
            if len(getattr(self, field)) != n:
                raise SanitizerError(f"{self.name}: {field} has {len(getattr(self, field))} entries for {n} images")
        if n == 0:
            raise SanitizerError(f"{self.name}: no images found")
        bad = (self.labels < 0) | (self.labels >= len(self.classes))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise SanitizerError(
                f"{self.name}: label {int(self.labels[i])} of sample {self.sample_ids[i]} is out of range "
                f"0..{len(self.classes) - 1} ({len(self.classes)} classes)"
            )
        unknown = {str(s) for s in np.unique(self.splits)} - set(SPLITS)
        if unknown:
            raise SanitizerError(f"{self.name}: unknown split(s) {sorted(unknown)}")
        ids, counts = np.unique(self.sample_ids, return_counts=True)
        if (counts > 1).any():
            repeated = ids[counts > 1]
            more = f" ({len(repeated)} ids repeat)" if len(repeated) > 1 else ""
            raise SanitizerError(f"{self.name}: sample id {str(repeated[0])!r} appears {int(counts[counts > 1][0])} times{more}; sample ids must be unique")

    def split(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.splits == name)


def fingerprint(raw: RawDataset, order: np.ndarray) -> str:
    """A hash of everything a store holds: ids, splits, labels, classes and image bytes."""
    h = hashlib.sha256()
    for part in (raw.sample_ids[order].astype(str), raw.splits[order].astype(str)):
        h.update("\n".join(part.tolist()).encode())
    h.update(raw.labels[order].astype(np.int64).tobytes())
    h.update(json.dumps(list(raw.classes)).encode())
    for start in range(0, len(order), CHUNK):
        h.update(np.ascontiguousarray(raw.images[order[start : start + CHUNK]]).data)
    return h.hexdigest()


def write_store(path: str | Path, raw: RawDataset, stage: str = "ingest") -> None:
    """Write the store atomically, rows sorted by sample_id (as text, the order of every
    manifest) so shard contents are stable and shard row i is the split's i-th manifest row."""
    order = np.argsort(raw.sample_ids.astype(str), kind="stable")
    with atomic_path(path) as tmp:
        (tmp / "shards").mkdir(parents=True)
        for name in SPLITS:
            write_shard(tmp / "shards" / f"{name}.npy", raw.images, order[raw.splits[order] == name])
        df = pl.DataFrame(
            {
                "sample_id": raw.sample_ids[order].astype(str),
                "split": raw.splits[order].astype(str),
                "label": raw.labels[order].astype(np.int64),
            }
        )
        # Shard row i is the split's i-th manifest row only if numpy and polars sort ids alike.
        if not df["sample_id"].is_sorted():
            raise RuntimeError("sample ids sort differently in numpy and polars: the store's shards would not match samples.parquet")
        write_manifest(
            df,
            tmp / "samples.parquet",
            stage,
            {"classes": list(raw.classes), "source": raw.name, "image_shape": list(raw.images.shape[1:]), "fingerprint": fingerprint(raw, order)},
        )


def write_shard(path: Path, images: np.ndarray, rows: np.ndarray) -> None:
    """images[rows] as one .npy file (the bytes np.save writes), a chunk at a time rather than
    gathered first. Plain writes, not a memory map: a full disk is then an OSError, not SIGBUS."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (len(rows), *images.shape[1:])})
        for start in range(0, len(rows), CHUNK):
            f.write(np.ascontiguousarray(images[rows[start : start + CHUNK]], dtype=np.uint8).data)


class SampleStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "samples.parquet").exists():
            raise SanitizerError(f"no sample store at {self.path}: run `sanitize run ingest` first")

    @cached_property
    def samples(self) -> pl.DataFrame:
        return read_manifest(self.path / "samples.parquet", ["sample_id", "split", "label"])

    @cached_property
    def classes(self) -> list[str]:
        return meta_value(self.path / "samples.parquet", "classes")

    @cached_property
    def fingerprint(self) -> str:
        return meta_value(self.path / "samples.parquet", "fingerprint")

    @cached_property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(meta_value(self.path / "samples.parquet", "image_shape"))

    def images(self, name: str, rows: int) -> np.ndarray:
        """One split's images, memory-mapped copy-on-write: writable for torch, and nothing a
        stage does to them reaches the file."""
        path = self.path / "shards" / f"{name}.npy"
        try:
            images = np.load(path, mmap_mode="c")
        except FileNotFoundError:
            raise SanitizerError(f"the sample store {self.path} is incomplete (no {name} shard); re-run ingest") from None
        except (OSError, ValueError, EOFError) as e:
            raise SanitizerError(f"the sample store {self.path} has a damaged image shard {path.name} ({e or 'empty file'}); re-run ingest") from None
        if not isinstance(images, np.ndarray):  # an .npz archive under the shard's name
            raise SanitizerError(f"the sample store {self.path} has a damaged image shard {path.name} (not one array); re-run ingest")
        if images.dtype != np.uint8 or images.shape != (rows, *self.image_shape):
            raise SanitizerError(
                f"the sample store {self.path} is incomplete ({path.name} holds {images.dtype} images of shape {images.shape}, "
                f"expected {rows} of {self.image_shape}); re-run ingest"
            )
        return images

    def rows(self, name: str) -> pl.DataFrame:
        """samples.parquet's rows of one split, in sample_id order."""
        return self.samples.filter(pl.col("split") == name)

    def split(self, name: str) -> "Split":
        df = self.rows(name)
        return Split(
            sample_ids=df["sample_id"].to_numpy(),
            labels=df["label"].to_numpy(),
            images=self.images(name, len(df)),
            classes=self.classes,
        )


@dataclass(frozen=True)
class Split:
    """One split, rows in sample_id order (the order every manifest uses); `images` is
    memory-mapped."""

    sample_ids: np.ndarray
    labels: np.ndarray
    images: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.sample_ids)

    @property
    def num_classes(self) -> int:
        return len(self.classes)
