"""Dataset sources for `ingest`, by name: fashion-mnist, cifar10, imagefolder, parquet.
Each turns its input into a RawDataset with stable sample ids and the class names kept."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from pathlib import Path

import numpy as np

from .config import DataConfig
from .errors import SanitizerError
from .progress import progress_bar
from .registry import Registry
from .store import RawDataset

SOURCES: Registry = Registry("dataset source")

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
CACHE = Path.home() / ".cache" / "sanitizer"


def load_dataset(cfg: DataConfig) -> RawDataset:
    try:
        source = SOURCES.get(cfg.source)
    except ValueError as e:
        raise SanitizerError(f"params.yaml [data].source: {e}") from None
    if cfg.path is not None and not Path(cfg.path).exists():
        raise SanitizerError(f"data.path {cfg.path} not found")
    raw = source(cfg)
    return subset(raw, cfg.limit, cfg.seed) if cfg.limit else raw


def subset(raw: RawDataset, limit: int, seed: int) -> RawDataset:
    """A stratified, seeded subset: `limit` train and limit // 5 test samples."""
    rng = np.random.default_rng(seed)
    keep = []
    for split, n in (("train", limit), ("test", max(limit // 5, 1))):
        idx = raw.split(split)
        if n >= len(idx):
            keep.append(idx)
            continue
        for label in np.unique(raw.labels[idx]):
            members = idx[raw.labels[idx] == label]
            k = max(1, int(round(n * len(members) / len(idx))))
            keep.append(np.sort(rng.choice(members, size=min(k, len(members)), replace=False)))
    keep = np.sort(np.concatenate(keep))
    return RawDataset(raw.images[keep], raw.labels[keep], raw.splits[keep], raw.sample_ids[keep], raw.classes, raw.name)


# ---------------------------------------------------------------- fashion-mnist


def read_idx(path: Path) -> np.ndarray:
    """IDX (LeCun's MNIST format), gzip-compressed: images (magic 2051) or labels (2049)."""
    try:
        data = gzip.open(path).read()
    except (OSError, EOFError) as e:
        raise SanitizerError(f"{path} is not a readable gzip IDX file: {e}") from None
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    dims = {2051: 3, 2049: 1}.get(magic)
    if dims is None:
        raise SanitizerError(f"{path}: bad IDX magic number {magic}; expected 2051 (images) or 2049 (labels)")
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    offset = 4 + 4 * dims
    if len(data) != offset + int(np.prod(shape)):
        raise SanitizerError(f"{path}: truncated or oversized IDX file (header says {shape})")
    return np.frombuffer(data, np.uint8, offset=offset).reshape(shape)


@SOURCES.register("fashion-mnist")
def fashion_mnist(cfg: DataConfig) -> RawDataset:
    root = Path(cfg.path) if cfg.path else FASHION_MNIST_DIR
    if not (root / "train-images-idx3-ubyte.gz").exists():
        root = _torchvision_download("FashionMNIST") / "FashionMNIST" / "raw"
    parts = []
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(root / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(root / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
        if len(images) != len(labels):
            raise SanitizerError(f"{root}: {len(images)} {split} images but {len(labels)} labels")
        parts.append((images[:, None], labels, np.full(len(labels), split), np.array([f"{split}/{i:05d}" for i in range(len(labels))])))
    return RawDataset(*(np.concatenate(col) for col in zip(*parts)), classes=FASHION_MNIST_CLASSES, name="fashion-mnist")


def _torchvision_download(name: str) -> Path:
    import torchvision

    try:
        for train in (True, False):
            getattr(torchvision.datasets, name)(CACHE, train=train, download=True)
    except Exception as e:  # noqa: BLE001 - any download failure means the same thing here
        hint = "apt-get install dataset-fashion-mnist, or " if name == "FashionMNIST" else ""
        raise SanitizerError(f"could not download {name} ({e}); {hint}set data.path to a local copy") from None
    return CACHE


# ---------------------------------------------------------------- cifar10


@SOURCES.register("cifar10")
def cifar10(cfg: DataConfig) -> RawDataset:
    if cfg.path:
        return parquet(cfg, name="cifar10")
    import torchvision

    _torchvision_download("CIFAR10")
    parts = []
    for split in ("train", "test"):
        ds = torchvision.datasets.CIFAR10(CACHE, train=split == "train")
        n = len(ds.targets)
        parts.append((ds.data.transpose(0, 3, 1, 2), np.array(ds.targets, np.int64), np.full(n, split), np.array([f"{split}/{i:05d}" for i in range(n)])))
    classes = torchvision.datasets.CIFAR10(CACHE, train=False).classes
    return RawDataset(*(np.ascontiguousarray(np.concatenate(col)) for col in zip(*parts)), classes=classes, name="cifar10")


# ---------------------------------------------------------------- encoded images


def decode_image(blob: bytes, sample_id: str) -> np.ndarray:
    """Encoded bytes to a uint8 C x H x W array: 1 channel for greyscale, else RGB (alpha and
    palettes flattened)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(blob)) as img:
            img = img.convert("L" if img.mode in ("1", "L", "I;16", "I") else "RGB")
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise SanitizerError(f"corrupt image {sample_id}: {e}") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def decode_all(blobs: list[bytes], ids: list[str]) -> np.ndarray:
    """Decode encoded images to one uint8 N x C x H x W array; greyscale stays one channel
    only if every image is greyscale."""
    decoded = []
    with progress_bar("decoding images", len(blobs)) as advance:
        for blob, sid in zip(blobs, ids):
            decoded.append(decode_image(blob, sid))
            advance()
    channels = 1 if all(img.shape[0] == 1 for img in decoded) else 3
    first = decoded[0].shape[1:]
    out = np.empty((len(decoded), channels, *first), dtype=np.uint8)
    for k, (img, sid) in enumerate(zip(decoded, ids)):
        if img.shape[1:] != first:
            raise SanitizerError(f"image {sid} is {tuple(img.shape[1:])}, but {ids[0]} is {tuple(first)}: all images must share one size")
        out[k] = img  # a greyscale image broadcasts to RGB when others are colour
    return out


def held_out(sample_ids: np.ndarray, fraction: float) -> np.ndarray:
    """'test' for a stable, hash-chosen `fraction` of ids: adding files reshuffles nothing."""
    digest = np.array([int(hashlib.sha1(s.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF for s in sample_ids])
    return np.where(digest < fraction, "test", "train")


@SOURCES.register("imagefolder")
def imagefolder(cfg: DataConfig) -> RawDataset:
    """root/<class>/<image>, or root/train/<class>/... and root/test/<class>/..."""
    if not cfg.path:
        raise SanitizerError("data.path must name the image folder root for source imagefolder")
    root = Path(cfg.path)
    split_roots = {"train": root / "train", "test": root / "test"}
    has_splits = split_roots["train"].is_dir() and split_roots["test"].is_dir()
    class_root = split_roots["train"] if has_splits else root
    classes = sorted(p.name for p in class_root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise SanitizerError(f"{class_root} has no class subfolders (expected root/<class>/<image>)")
    files, labels, splits = [], [], []
    for split, base in split_roots.items() if has_splits else [("train", root)]:
        for class_dir in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if class_dir.name not in classes:
                raise SanitizerError(f"unknown class {class_dir.name!r} in {base}: not among the train classes {classes}")
            for f in sorted(class_dir.rglob("*")):
                if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."):
                    files.append(f)
                    labels.append(classes.index(class_dir.name))
                    splits.append(split)
    if not files:
        raise SanitizerError(f"no images under {root}")
    ids = np.array([f.relative_to(root).as_posix() for f in files])
    split_arr = np.array(splits) if has_splits else held_out(ids, cfg.test_fraction)
    images = decode_all([f.read_bytes() for f in files], list(ids))
    return RawDataset(images, np.array(labels, np.int64), split_arr, ids, classes, "imagefolder")


@SOURCES.register("parquet")
def parquet(cfg: DataConfig, name: str = "parquet") -> RawDataset:
    """A table of encoded images and integer labels: one file, or train.parquet + test.parquet."""
    import pyarrow.parquet as pq

    if not cfg.path:
        raise SanitizerError(f"data.path must name a Parquet file or folder for source {name}")
    root = Path(cfg.path)
    files = {"train": root / "train.parquet", "test": root / "test.parquet"} if root.is_dir() else {None: root}
    tables = []
    for split, f in files.items():
        if not f.exists():
            raise SanitizerError(f"data.path {f} not found")
        table = pq.read_table(f)
        for col in (cfg.image_column, cfg.label_column):
            if col not in table.column_names:
                raise SanitizerError(f"{f} has no column {col!r}; columns: {table.column_names}")
        tables.append((split, f, table))
    ids, labels, splits, blobs = [], [], [], []
    for split, f, table in tables:
        n = table.num_rows
        label_col = table.column(cfg.label_column).to_pylist()
        if any(v is None for v in label_col):
            raise SanitizerError(f"{f}: column {cfg.label_column!r} has missing labels")
        id_col = next((c for c in ("sample_id", "path") if c in table.column_names), None)
        split_ids = table.column(id_col).to_pylist() if id_col else [f"{split or 'train'}/{i:06d}" for i in range(n)]
        ids += [str(s) for s in split_ids]
        labels += label_col
        blobs += table.column(cfg.image_column).to_pylist()
        if split is not None:
            splits += [split] * n
        elif "split" in table.column_names:
            splits += table.column("split").to_pylist()
    ids = np.array(ids)
    split_arr = np.array(splits) if splits else held_out(ids, cfg.test_fraction)
    classes = _parquet_classes(tables[0][2], labels)
    images = decode_all(blobs, list(ids))
    return RawDataset(images, np.array(labels, np.int64), split_arr, ids, classes, name)


def _parquet_classes(table, labels: list[int]) -> list[str]:
    meta = table.schema.metadata or {}
    if b"classes" in meta:
        text = meta[b"classes"].decode()
        # A JSON list, or a comma-separated list as the shared CIFAR-10 table has.
        return list(json.loads(text)) if text.lstrip().startswith("[") else text.split(",")
    if "class_name" in table.column_names:
        names = dict(zip(table.column("label").to_pylist(), table.column("class_name").to_pylist()))
        return [str(names.get(i, i)) for i in range(max(names) + 1)]
    return [str(i) for i in range(max(labels) + 1)]
