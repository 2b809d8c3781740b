import gzip
import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sanitizer.config import config
from sanitizer.datasets import load_dataset, read_idx
from sanitizer.errors import SanitizerError

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CIFAR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cifar10-jpeg"


def data_cfg(**values):
    return config("data", {"data": values})


# ---------------------------------------------------------------- IDX / fashion-mnist


def write_idx(path: Path, array: np.ndarray) -> None:
    magic = 2051 if array.ndim == 3 else 2049
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def fake_fashion_mnist(root: Path, n_train=30, n_test=10) -> dict:
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        arrays[prefix] = (rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n))
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", arrays[prefix][0])
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", arrays[prefix][1])
    return arrays


def test_fashion_mnist_from_idx_files(tmp_path):
    arrays = fake_fashion_mnist(tmp_path)
    raw = load_dataset(data_cfg(source="fashion-mnist", path=str(tmp_path)))
    assert raw.images.shape == (40, 1, 28, 28) and raw.images.dtype == np.uint8
    train = raw.split("train")
    np.testing.assert_array_equal(raw.images[train][:, 0], arrays["train"][0])
    np.testing.assert_array_equal(raw.labels[raw.split("test")], arrays["t10k"][1])
    assert raw.sample_ids[0] == "train/00000" and raw.sample_ids[-1] == "test/00009"
    assert raw.classes[1] == "Trouser" and len(raw.classes) == 10


def test_idx_wrong_magic_and_truncation_are_named(tmp_path):
    bad = tmp_path / "bad.gz"
    bad.write_bytes(gzip.compress((1234).to_bytes(4, "big") + bytes(8)))
    with pytest.raises(SanitizerError, match="bad.gz: bad IDX magic number 1234"):
        read_idx(bad)
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress((2049).to_bytes(4, "big") + (10).to_bytes(4, "big") + bytes(3)))
    with pytest.raises(SanitizerError, match="short.gz: truncated"):
        read_idx(short)
    notgz = tmp_path / "plain.gz"
    notgz.write_bytes(b"not gzip at all")
    with pytest.raises(SanitizerError, match="plain.gz is not a readable gzip"):
        read_idx(notgz)


def test_limit_is_stratified_and_deterministic(tmp_path):
    fake_fashion_mnist(tmp_path, n_train=1000, n_test=200)
    a = load_dataset(data_cfg(source="fashion-mnist", path=str(tmp_path), limit=200))
    b = load_dataset(data_cfg(source="fashion-mnist", path=str(tmp_path), limit=200))
    full = load_dataset(data_cfg(source="fashion-mnist", path=str(tmp_path)))
    np.testing.assert_array_equal(a.sample_ids, b.sample_ids)
    train = a.split("train")
    assert abs(len(train) - 200) <= 10 and len(a.split("test")) == pytest.approx(40, abs=10)
    full_share = np.bincount(full.labels[full.split("train")], minlength=10) / len(full.split("train"))
    sub_share = np.bincount(a.labels[train], minlength=10) / len(train)
    assert np.abs(full_share - sub_share).max() < 0.02
    # Subset samples keep their ids and images.
    index = {s: i for i, s in enumerate(full.sample_ids)}
    for k in train[:5]:
        np.testing.assert_array_equal(a.images[k], full.images[index[a.sample_ids[k]]])


def test_unknown_source_and_missing_path():
    with pytest.raises(SanitizerError, match="unknown dataset source 'mnist3d'"):
        load_dataset(data_cfg(source="mnist3d"))
    with pytest.raises(SanitizerError, match="data.path /no/such/folder not found"):
        load_dataset(data_cfg(source="imagefolder", path="/no/such/folder"))


# ---------------------------------------------------------------- imagefolder


def png_bytes(value: int, shape=(3, 8, 8)) -> bytes:
    c, h, w = shape
    array = np.full((h, w, c), value, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(array[:, :, 0] if c == 1 else array).save(buf, format="PNG")
    return buf.getvalue()


def png(path: Path, value: int, shape=(3, 8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(value, shape))


def test_imagefolder_with_train_test_split(tmp_path):
    for split in ("train", "test"):
        for c, cls in enumerate(("cat", "dog")):
            for i in range(3):
                png(tmp_path / split / cls / f"{i}.png", 10 * c + i)
    raw = load_dataset(data_cfg(source="imagefolder", path=str(tmp_path)))
    assert raw.classes == ["cat", "dog"]
    assert raw.images.shape == (12, 3, 8, 8)
    k = list(raw.sample_ids).index("train/dog/2.png")
    assert raw.labels[k] == 1 and raw.splits[k] == "train" and raw.images[k].max() == 12
    assert (raw.splits == "test").sum() == 6


def test_imagefolder_without_split_holds_out_stably(tmp_path):
    for i in range(40):
        png(tmp_path / ("a" if i % 2 else "b") / f"{i}.png", i, shape=(1, 4, 4))
    cfg = data_cfg(source="imagefolder", path=str(tmp_path), test_fraction=0.3)
    first = load_dataset(cfg)
    assert first.images.shape[1] == 1  # every image greyscale: one channel kept
    png(tmp_path / "a" / "extra.png", 1, shape=(1, 4, 4))
    second = load_dataset(cfg)
    before = dict(zip(first.sample_ids, first.splits))
    assert all(before[s] == sp for s, sp in zip(second.sample_ids, second.splits) if s in before)
    assert 0 < (first.splits == "test").sum() < 40


def test_imagefolder_errors_name_the_problem(tmp_path):
    png(tmp_path / "ok" / "cat" / "1.png", 1)
    (tmp_path / "ok" / "cat" / "2.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(SanitizerError, match="corrupt image cat/2.png"):
        load_dataset(data_cfg(source="imagefolder", path=str(tmp_path / "ok")))

    png(tmp_path / "sizes" / "cat" / "1.png", 1)
    png(tmp_path / "sizes" / "dog" / "1.png", 1, shape=(3, 9, 8))
    with pytest.raises(SanitizerError, match=r"image dog/1.png is \(9, 8\).*all images must share one size"):
        load_dataset(data_cfg(source="imagefolder", path=str(tmp_path / "sizes")))

    for split, cls in (("train", "cat"), ("test", "cat"), ("test", "zebra")):
        png(tmp_path / "cls" / split / cls / "1.png", 1)
    with pytest.raises(SanitizerError, match="unknown class 'zebra'"):
        load_dataset(data_cfg(source="imagefolder", path=str(tmp_path / "cls")))


# ---------------------------------------------------------------- parquet


def parquet_table(path: Path, labels, blobs=None, extra=None, metadata=None) -> None:
    blobs = blobs or [png_bytes(i, (1, 4, 4)) for i in range(len(labels))]
    table = pa.table({"image": blobs, "label": labels, **(extra or {})})
    if metadata:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)


def test_parquet_single_file_with_class_metadata(tmp_path):
    f = tmp_path / "data.parquet"
    parquet_table(f, [0, 1, 2, 1] * 5, metadata={"classes": json.dumps(["a", "b", "c"])})
    raw = load_dataset(data_cfg(source="parquet", path=str(f), test_fraction=0.25))
    assert raw.classes == ["a", "b", "c"]
    assert raw.sample_ids[3] == "train/000003"
    assert raw.images.shape == (20, 1, 4, 4) and raw.images[3].max() == 3
    assert set(raw.splits) <= {"train", "test"}


def test_parquet_folder_uses_path_ids_and_class_name_column(tmp_path):
    for split in ("train", "test"):
        parquet_table(tmp_path / f"{split}.parquet", [0, 1], extra={"path": [f"{split}/x.png", f"{split}/y.png"], "class_name": ["cat", "dog"]})
    raw = load_dataset(data_cfg(source="parquet", path=str(tmp_path)))
    assert list(raw.sample_ids) == ["train/x.png", "train/y.png", "test/x.png", "test/y.png"]
    assert raw.classes == ["cat", "dog"] and list(raw.splits) == ["train", "train", "test", "test"]


def test_parquet_errors_name_the_problem(tmp_path):
    f = tmp_path / "t.parquet"
    parquet_table(f, [0, 1])
    with pytest.raises(SanitizerError, match=r"has no column 'target'; columns: \['image', 'label'\]"):
        load_dataset(data_cfg(source="parquet", path=str(f), label_column="target"))

    parquet_table(f, [0, 1], blobs=[b"garbage", b"garbage"])
    with pytest.raises(SanitizerError, match="corrupt image train/000000"):
        load_dataset(data_cfg(source="parquet", path=str(f)))

    parquet_table(f, [0, 5], metadata={"classes": json.dumps(["a", "b"])})
    with pytest.raises(SanitizerError, match="label 5 of sample train/000001 is out of range 0..1"):
        load_dataset(data_cfg(source="parquet", path=str(f)))


# ---------------------------------------------------------------- real data


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist():
    raw = load_dataset(data_cfg(source="fashion-mnist"))
    assert len(raw.split("train")) == 60000 and len(raw.split("test")) == 10000
    labels = read_idx(FASHION_MNIST / "t10k-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(raw.labels[raw.split("test")], labels)
    assert np.bincount(raw.labels[raw.split("train")]).tolist() == [6000] * 10


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR.exists(), reason="../shared/datasets/cifar10-jpeg not present")
def test_real_cifar10_parquet():
    raw = load_dataset(data_cfg(source="cifar10", path=str(CIFAR)))
    assert raw.images.shape == (60000, 3, 32, 32)
    assert raw.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert np.bincount(raw.labels[raw.split("test")]).tolist() == [1000] * 10
    k = list(raw.sample_ids).index("train/cat/0001.jpg")
    assert raw.labels[k] == 3 and raw.splits[k] == "train"
