"""Dataset sources for `ingest`, by name: fashion-mnist, cifar10, imagefolder, parquet.
Each turns its input into a RawDataset with stable sample ids and the class names kept."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .config import DataConfig
from .errors import SanitizerError
from .progress import log, progress_bar
from .registry import Registry
from .store import SPLITS, RawDataset

SOURCES: Registry[Callable[[DataConfig], RawDataset]] = Registry("dataset source")

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IDX_IMAGES, IDX_LABELS = 2051, 2049
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
CACHE = Path.home() / ".cache" / "sanitizer"
# Below this many images decoding takes about a second: a bar would only flicker.
PROGRESS_MIN = 2000


def require_trainable(raw: RawDataset) -> None:
    """What the pipeline needs beyond a well-formed dataset: train and test samples, and train
    samples of every class (a class the model never sees cannot be learnt or relabelled to)."""
    for split, remedy in (("train", "check data.path"), ("test", "add a test split, or set data.test_fraction above 0 for a source without one")):
        if not len(raw.split(split)):
            raise SanitizerError(f"{raw.name}: no {split} samples; {remedy}")
    counts = np.bincount(raw.labels[raw.split("train")], minlength=len(raw.classes))
    empty = [raw.classes[c] for c in np.flatnonzero(counts == 0)]
    if empty:
        raise SanitizerError(f"{raw.name}: class(es) {_listing(empty)} have no train samples; add some, raise data.limit if it is set, or drop them from the class list")


def load_dataset(cfg: DataConfig) -> RawDataset:
    try:
        source = SOURCES.get(cfg.source)
    except ValueError as e:
        raise SanitizerError(f"params.yaml [data].source: {e}") from None
    if cfg.path is not None and not Path(cfg.path).expanduser().exists():
        raise SanitizerError(f"data.path {cfg.path} not found")
    raw = source(cfg)
    return subset(raw, cfg.limit, cfg.seed) if cfg.limit else raw


def subset(raw: RawDataset, limit: int, seed: int) -> RawDataset:
    """A stratified, seeded subset of `limit` train and max(limit // 5, 1) test samples."""
    rng = np.random.default_rng(seed)
    keep = [_stratified(raw.split(split), raw.labels, n, rng) for split, n in (("train", limit), ("test", max(limit // 5, 1)))]
    keep = np.sort(np.concatenate(keep))
    return RawDataset(raw.images[keep], raw.labels[keep], raw.splits[keep], raw.sample_ids[keep], raw.classes, raw.name)


def _stratified(idx: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if n >= len(idx):
        return idx
    classes, counts = np.unique(labels[idx], return_counts=True)
    quota, remainder = np.divmod(n * counts, len(idx))
    # Largest remainders take the places rounding down left over, so exactly n are kept.
    quota[np.argsort(-remainder, kind="stable")[: n - quota.sum()]] += 1
    return np.concatenate([rng.choice(idx[labels[idx] == c], size=k, replace=False) for c, k in zip(classes, quota)])


def _parts_to_raw(parts: list[tuple], classes: list[str], name: str) -> RawDataset:
    """Join per-split (images, labels, splits, sample_ids) tuples."""
    images, labels, splits, ids = (np.concatenate(column) for column in zip(*parts))
    return RawDataset(np.ascontiguousarray(images), labels.astype(np.int64), splits, ids, classes, name)


def _numbered_ids(split: str, n: int, width: int) -> np.ndarray:
    return np.array([f"{split}/{i:0{width}d}" for i in range(n)])


def _required_path(cfg: DataConfig, what: str) -> Path:
    if not cfg.path:
        raise SanitizerError(f"data.path must name {what} for source {cfg.source}")
    return Path(cfg.path).expanduser()


# ---------------------------------------------------------------- torchvision downloads


def _torchvision_parts(name: str, hint: str) -> tuple[list[tuple], list[str]]:
    """Both splits of a torchvision dataset, downloaded into CACHE on first use."""
    import torchvision

    try:
        sets = {split: getattr(torchvision.datasets, name)(CACHE, train=split == "train", download=True) for split in SPLITS}
    except Exception as e:  # noqa: BLE001 - no network, bad checksum or full disk: the remedy is the same
        raise SanitizerError(f"could not download {name} into {CACHE} ({e}); {hint}") from None
    parts = []
    for split, ds in sets.items():
        images = np.asarray(ds.data)
        # FashionMNIST holds N x H x W, CIFAR10 N x H x W x C.
        images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
        parts.append((images, np.asarray(ds.targets), np.full(len(images), split), _numbered_ids(split, len(images), 5)))
    return parts, list(sets["test"].classes)


# ---------------------------------------------------------------- fashion-mnist


def read_idx(path: Path, magic: int) -> np.ndarray:
    """A gzipped IDX file (LeCun's MNIST format) of unsigned bytes: images (magic 2051, N x H x W)
    or labels (magic 2049, N)."""
    try:
        with gzip.open(path) as f:
            data = f.read()
    except FileNotFoundError:
        raise SanitizerError(f"{path} not found") from None
    except (OSError, EOFError) as e:
        raise SanitizerError(f"{path} is not a readable gzip IDX file: {e}") from None
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        raise SanitizerError(f"{path}: bad IDX magic number {found}; expected {magic}")
    dims = magic & 0xFF  # the magic's low byte is the number of dimensions
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    offset = 4 + 4 * dims
    if len(data) != offset + int(np.prod(shape)):
        raise SanitizerError(f"{path}: truncated or oversized IDX file (header says {shape}, {len(data) - offset} data bytes)")
    return np.frombuffer(data, np.uint8, offset=offset).reshape(shape)


def _idx_split(root: Path, split: str) -> tuple:
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(root / f"{prefix}-images-idx3-ubyte.gz", IDX_IMAGES)
    labels = read_idx(root / f"{prefix}-labels-idx1-ubyte.gz", IDX_LABELS)
    if len(images) != len(labels):
        raise SanitizerError(f"{root}: {len(images)} {split} images but {len(labels)} labels")
    return images[:, None], labels, np.full(len(labels), split), _numbered_ids(split, len(labels), 5)


@SOURCES.register("fashion-mnist")
def fashion_mnist(cfg: DataConfig) -> RawDataset:
    root = Path(cfg.path).expanduser() if cfg.path else FASHION_MNIST_DIR
    if cfg.path or (root / "train-images-idx3-ubyte.gz").exists():
        parts = [_idx_split(root, split) for split in SPLITS]
    else:
        hint = "apt-get install dataset-fashion-mnist, or set data.path to a folder with the four IDX .gz files"
        parts, _ = _torchvision_parts("FashionMNIST", hint)
    return _parts_to_raw(parts, FASHION_MNIST_CLASSES, "fashion-mnist")


# ---------------------------------------------------------------- cifar10


@SOURCES.register("cifar10")
def cifar10(cfg: DataConfig) -> RawDataset:
    if cfg.path:
        return _parquet(cfg, "cifar10")
    parts, classes = _torchvision_parts("CIFAR10", "set data.path to CIFAR-10 as Parquet (train.parquet + test.parquet)")
    return _parts_to_raw(parts, classes, "cifar10")


# ---------------------------------------------------------------- encoded images


def decode_image(blob: bytes, sample_id: str) -> np.ndarray:
    """Encoded bytes to a uint8 C x H x W array: 1 channel for greyscale, else RGB (alpha and
    palettes flattened).

    Pillow, not torchvision.io: torchvision 0.29 deprecates its decoders, and they cannot
    read BMP."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(blob)) as img:
            if img.mode.startswith("I;16"):
                # Pillow clips 16-bit to 8-bit on convert("L"); keep the high byte instead.
                array = (np.asarray(img, dtype=np.uint16) >> 8).astype(np.uint8)
            else:
                array = np.asarray(img.convert("L" if img.mode in ("1", "L", "LA", "I") else "RGB"), dtype=np.uint8)
    except Exception as e:  # noqa: BLE001 - Pillow's format plugins raise many types for bad data
        raise SanitizerError(f"corrupt image {sample_id}: {e}") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def decode_all(blobs: Iterable[bytes], ids: list[str]) -> np.ndarray:
    """Decode to one uint8 N x C x H x W array; greyscale stays one channel only if every image
    is greyscale. `blobs` may be lazy (files read one at a time). Each image goes straight into
    the output array: a list of arrays stacked at the end would hold the dataset twice."""
    out = None
    bar = progress_bar("decoding images", len(ids)) if len(ids) > PROGRESS_MIN else contextlib.nullcontext(lambda: None)
    with bar as advance:
        for k, (blob, sid) in enumerate(zip(blobs, ids)):
            img = decode_image(blob, sid)
            if out is None:
                out = np.empty((len(ids), *img.shape), dtype=np.uint8)
            elif img.shape[1:] != out.shape[2:]:
                raise SanitizerError(f"image {sid} is {tuple(img.shape[1:])}, but {ids[0]} is {tuple(out.shape[2:])}: all images must share one size")
            if img.shape[0] > out.shape[1]:  # the first colour image after greyscale ones
                colour = np.empty((len(ids), img.shape[0], *out.shape[2:]), dtype=np.uint8)
                colour[:k] = out[:k]  # greyscale broadcasts to RGB
                out = colour
            out[k] = img
            advance()
    if out is None:
        raise SanitizerError("no images to decode")
    return out


def held_out(keys: Iterable[str], fraction: float) -> np.ndarray:
    """'test' for a hash-chosen `fraction` of keys: adding samples moves no other sample."""
    position = np.array([int(hashlib.sha1(k.encode()).hexdigest()[:8], 16) / 2**32 for k in keys])
    return np.where(position < fraction, "test", "train")


# ---------------------------------------------------------------- imagefolder


def _hidden(p: Path) -> bool:
    return p.name.startswith(".")


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _class_dirs(base: Path) -> list[Path]:
    """The class folders of one split root. What is left out is said, never dropped silently."""
    entries = sorted(base.iterdir())
    hidden = [p.name for p in entries if p.is_dir() and _hidden(p)]
    if hidden:
        log(f"imagefolder: ignored hidden folder(s) {_listing(hidden)} in {base}")
    loose = [p.name for p in entries if p.is_file() and not _hidden(p)]
    if loose:
        log(f"imagefolder: ignored {len(loose)} file(s) outside class folders in {base}: {_listing(loose)}")
    return [p for p in entries if p.is_dir() and not _hidden(p)]


def _image_files(class_dir: Path) -> list[Path]:
    files = [f for f in class_dir.rglob("*") if f.is_file() and not any(p.startswith(".") for p in f.relative_to(class_dir).parts)]
    images = sorted(f for f in files if f.suffix.lower() in IMAGE_SUFFIXES)
    others = sorted(f.relative_to(class_dir).as_posix() for f in files if f.suffix.lower() not in IMAGE_SUFFIXES)
    if others:
        log(f"imagefolder: ignored {len(others)} file(s) in {class_dir} that are not images ({', '.join(sorted(IMAGE_SUFFIXES))}): {_listing(others)}")
    return images


def _split_roots(root: Path, test_fraction: float) -> dict[str, Path]:
    """{split: folder}; the split is '' where test samples are to be held out by hash."""
    has_train, has_test = (root / "train").is_dir(), (root / "test").is_dir()
    if not has_train:
        if has_test:
            raise SanitizerError(f"{root} has test/ but no train/: add train/<class>/<image>, or put the class folders directly in {root}")
        return {"": root}
    stray = [p.name for p in sorted(root.iterdir()) if p.is_dir() and not _hidden(p) and p.name not in SPLITS]
    if stray:
        log(f"imagefolder: read train/ and test/ only; ignored folder(s) {_listing(stray)} in {root}")
    if not has_test:
        log(f"imagefolder: {root} has train/ but no test/; holding out data.test_fraction = {test_fraction} of train/ as the test split")
        return {"": root / "train"}
    return {split: root / split for split in SPLITS}


def _scan_imagefolder(root: Path, test_fraction: float) -> tuple[list[Path], list[int], list[str], list[str], Path]:
    """Files, labels, splits ('' where the folder has no split), class names, and the folder
    sample ids are relative to."""
    split_roots = _split_roots(root, test_fraction)
    class_root = split_roots.get("train", split_roots.get(""))
    classes = [d.name for d in _class_dirs(class_root)]
    if not classes:
        raise SanitizerError(f"no class folders in {class_root} (expected {root}/<class>/<image> or {root}/train/<class>/...)")
    index = {name: i for i, name in enumerate(classes)}
    files, labels, splits = [], [], []
    for split, base in split_roots.items():
        for class_dir in _class_dirs(base):
            if class_dir.name not in index:
                raise SanitizerError(f"unknown class {class_dir.name!r} in {base}: not among the train classes {classes}")
            found = _image_files(class_dir)
            if not found and split != "test":
                raise SanitizerError(f"class folder {class_dir} has no images ({', '.join(sorted(IMAGE_SUFFIXES))}): add some, or remove the folder")
            files += found
            labels += [index[class_dir.name]] * len(found)
            splits += [split] * len(found)
    return files, labels, splits, classes, root if "" not in split_roots else split_roots[""]


@SOURCES.register("imagefolder")
def imagefolder(cfg: DataConfig) -> RawDataset:
    """root/<class>/<image>, or root/train/<class>/... and root/test/<class>/..."""
    root = _required_path(cfg, "the image folder root")
    if not root.is_dir():
        raise SanitizerError(f"data.path {root} is not a folder: source imagefolder reads <path>/<class>/<image>")
    files, labels, splits, classes, id_root = _scan_imagefolder(root, cfg.test_fraction)
    ids = np.array([f.relative_to(id_root).as_posix() for f in files])
    split_arr = held_out(ids, cfg.test_fraction) if splits[0] == "" else np.array(splits)
    images = decode_all((f.read_bytes() for f in files), list(ids))
    return RawDataset(images, np.array(labels, np.int64), split_arr, ids, classes, "imagefolder")


# ---------------------------------------------------------------- parquet


def _read_table(path: Path, cfg: DataConfig):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.exists():
        raise SanitizerError(f"{path} not found: data.path must be a Parquet file or a folder with train.parquet and test.parquet")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise SanitizerError(f"{path} is not a readable Parquet file: {e}") from None
    for column in (cfg.image_column, cfg.label_column):
        if column not in table.column_names:
            raise SanitizerError(f"{path} has no column {column!r}; columns: {table.column_names}")
    if table.num_rows == 0:
        raise SanitizerError(f"{path} has no rows")
    return table


def _blobs(table, column: str, path: Path) -> list[bytes]:
    import pyarrow as pa
    import pyarrow.compute as pc

    values = table.column(column)
    if pa.types.is_struct(values.type) and values.type.get_field_index("bytes") >= 0:
        values = pc.struct_field(values, "bytes")  # Hugging Face's Image feature: {bytes, path}
    if not (pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type)):
        raise SanitizerError(f"{path}: column {column!r} must hold encoded image bytes, got {values.type}")
    return values.to_pylist()


def _labels(table, column: str, path: Path, ids: np.ndarray) -> np.ndarray:
    import pyarrow as pa

    values = table.column(column)
    if not pa.types.is_integer(values.type):
        raise SanitizerError(f"{path}: column {column!r} must hold integer labels, got {values.type}")
    if values.null_count:
        first = values.to_pylist().index(None)
        raise SanitizerError(f"{path}: sample {ids[first]} has no label (null in column {column!r})")
    return values.to_numpy().astype(np.int64)


def _table_rows(table, file_split: str | None, path: Path, cfg: DataConfig) -> tuple:
    """(images, labels, splits, sample_ids) of one table; images still encoded."""
    n = table.num_rows
    id_column = next((c for c in ("sample_id", "path") if c in table.column_names), None)
    ids = np.array([str(s) for s in table.column(id_column).to_pylist()]) if id_column else None
    if file_split:
        splits = np.full(n, file_split)
    elif "split" in table.column_names:
        splits = np.array([str(s) for s in table.column("split").to_pylist()])
        unknown = sorted(set(splits.tolist()) - set(SPLITS))
        if unknown:
            raise SanitizerError(f"{path}: column 'split' may hold only {list(SPLITS)}, found {unknown}")
    else:
        # Without ids the row number is the stable key (rows appended later move nothing).
        splits = held_out(ids if ids is not None else (f"{i:06d}" for i in range(n)), cfg.test_fraction)
    if ids is None:
        ids = np.array([f"{split}/{i:06d}" for i, split in enumerate(splits)])
    return _blobs(table, cfg.image_column, path), _labels(table, cfg.label_column, path, ids), splits, ids


def _class_list(text: str, path: Path) -> list[str]:
    """The `classes` file metadata: a JSON list, or comma-separated as in the shared CIFAR-10 table."""
    if text.lstrip().startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise SanitizerError(f"{path}: the 'classes' metadata is not a valid JSON list ({e})") from None
        if not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in value):
            raise SanitizerError(f"{path}: the 'classes' metadata must list class names, got {text[:80]!r}")
        classes = [str(c) for c in value]
    else:
        classes = [c.strip() for c in text.split(",")]
    if not classes or any(not c for c in classes):
        raise SanitizerError(f"{path}: the 'classes' metadata has an empty class name: {text[:80]!r}")
    repeated = sorted({c for c in classes if classes.count(c) > 1})
    if repeated:
        raise SanitizerError(f"{path}: the 'classes' metadata names {_listing(repeated)} more than once")
    return classes


def _named_classes(tables: list, labels: np.ndarray, path: Path) -> list[str]:
    """Class names from a class_name column: one name per label, for every label 0..K-1."""
    names = [name for t in tables for name in t.column("class_name").to_pylist()]
    if None in names:
        raise SanitizerError(f"{path}: column 'class_name' has a null at row {names.index(None)}")
    by_label: dict[int, str] = {}
    for label, name in zip(labels.tolist(), map(str, names)):
        if by_label.setdefault(label, name) != name:
            raise SanitizerError(f"{path}: label {label} is called both {by_label[label]!r} and {name!r} in column 'class_name'")
    _require_contiguous(labels, path, "so column 'class_name' cannot name those classes")
    classes = [by_label[i] for i in range(int(labels.max()) + 1)]  # a negative label fails later, named
    if len(set(classes)) != len(classes):
        raise SanitizerError(f"{path}: column 'class_name' gives one name to several labels ({_listing(sorted({c for c in classes if classes.count(c) > 1}))})")
    return classes


def _require_contiguous(labels: np.ndarray, path: Path, why: str) -> None:
    present = np.unique(labels)
    missing = sorted(set(range(int(present.max()) + 1)) - set(present.tolist()))
    if missing:
        raise SanitizerError(
            f"{path}: no sample has label(s) {_listing([str(m) for m in missing])} though labels go up to {int(present.max())}, "
            f"{why}; give the class names as the table's 'classes' metadata (a JSON list), so label k is the k-th name"
        )


def _parquet_classes(tables: list, labels: np.ndarray, paths: list[Path]) -> list[str]:
    lists = [(p, (t.schema.metadata or {}).get(b"classes")) for p, t in zip(paths, tables)]
    given = [(p, _class_list(text.decode(), p)) for p, text in lists if text is not None]
    if given:
        for p, classes in given[1:]:
            if classes != given[0][1]:
                raise SanitizerError(f"{given[0][0]} and {p} list different classes in their 'classes' metadata")
        return given[0][1]
    if all("class_name" in t.column_names for t in tables):
        return _named_classes(tables, labels, paths[0])
    _require_contiguous(labels, paths[0], "and there is no class list")
    return [str(i) for i in range(int(labels.max()) + 1)]


@SOURCES.register("parquet")
def parquet(cfg: DataConfig) -> RawDataset:
    return _parquet(cfg, "parquet")


def _parquet(cfg: DataConfig, name: str) -> RawDataset:
    """A table of encoded images and integer labels: one file, or train.parquet + test.parquet."""
    root = _required_path(cfg, "a Parquet file or a folder with train.parquet and test.parquet")
    files = {split: root / f"{split}.parquet" for split in SPLITS} if root.is_dir() else {None: root}
    tables = {split: (path, _read_table(path, cfg)) for split, path in files.items()}
    rows = [_table_rows(table, split, path, cfg) for split, (path, table) in tables.items()]
    blobs = [blob for part in rows for blob in part[0]]
    labels, splits, ids = (np.concatenate([part[k] for part in rows]) for k in (1, 2, 3))
    classes = _parquet_classes([table for _, table in tables.values()], labels, [path for path, _ in tables.values()])
    return RawDataset(decode_all(blobs, list(ids)), labels, splits, ids, classes, name)
