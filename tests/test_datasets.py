import gzip
import io
import json
import sys
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import CIFAR10
from sanitizer import datasets
from sanitizer.config import config
from sanitizer.datasets import IDX_IMAGES, IDX_LABELS, SOURCES, decode_image, held_out, load_dataset, read_idx
from sanitizer.errors import SanitizerError

REPO = Path(__file__).resolve().parents[1]
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CIFAR = CIFAR10
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def data_cfg(**values):
    return config("data", {"data": values})


def test_every_source_is_registered():
    assert SOURCES.names() == ["cifar10", "fashion-mnist", "imagefolder", "parquet"]


# ---------------------------------------------------------------- IDX / fashion-mnist


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    magic = magic or (IDX_IMAGES if array.ndim == 3 else IDX_LABELS)
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def fake_fashion_mnist(root: Path, train_labels, test_labels) -> dict:
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, labels in (("train", np.asarray(train_labels)), ("t10k", np.asarray(test_labels))):
        images = rng.integers(0, 256, (len(labels), 28, 28))
        arrays[prefix] = (images, labels)
        (root / f"{prefix}-images-idx3-ubyte.gz").write_bytes(idx_bytes(images))
        (root / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(idx_bytes(labels))
    return arrays


def test_fashion_mnist_from_idx_files(tmp_path):
    arrays = fake_fashion_mnist(tmp_path, np.arange(30) % 10, np.arange(10)[::-1])
    raw = load_dataset(data_cfg(source="fashion-mnist", path=str(tmp_path)))
    assert raw.name == "fashion-mnist"
    assert raw.images.shape == (40, 1, 28, 28) and raw.images.dtype == np.uint8
    assert raw.labels.dtype == np.int64
    train, test = raw.split("train"), raw.split("test")
    assert len(train) == 30 and len(test) == 10
    np.testing.assert_array_equal(raw.images[train][:, 0], arrays["train"][0])
    np.testing.assert_array_equal(raw.images[test][:, 0], arrays["t10k"][0])
    np.testing.assert_array_equal(raw.labels[test], arrays["t10k"][1])
    assert list(raw.sample_ids[[0, 29, 30, 39]]) == ["train/00000", "train/00029", "test/00000", "test/00009"]
    assert raw.classes == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def test_idx_errors_name_the_file(tmp_path):
    labels_file = tmp_path / "labels.gz"
    labels_file.write_bytes(idx_bytes(np.arange(5)))
    np.testing.assert_array_equal(read_idx(labels_file, IDX_LABELS), np.arange(5))
    with pytest.raises(SanitizerError, match="labels.gz: bad IDX magic number 2049; expected 2051"):
        read_idx(labels_file, IDX_IMAGES)

    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress((2049).to_bytes(4, "big") + (10).to_bytes(4, "big") + bytes(3)))
    with pytest.raises(SanitizerError, match=r"short.gz: truncated or oversized IDX file \(header says \[10\], 3 data bytes\)"):
        read_idx(short, IDX_LABELS)

    cut = tmp_path / "cut.gz"
    cut.write_bytes(idx_bytes(np.zeros((4, 28, 28)))[:-20])  # a download broken off mid-stream
    with pytest.raises(SanitizerError, match="cut.gz is not a readable gzip IDX file"):
        read_idx(cut, IDX_IMAGES)

    plain = tmp_path / "plain.gz"
    plain.write_bytes(b"not gzip at all")
    with pytest.raises(SanitizerError, match="plain.gz is not a readable gzip IDX file"):
        read_idx(plain, IDX_IMAGES)


def test_fashion_mnist_folder_with_a_bad_or_missing_file(tmp_path):
    fake_fashion_mnist(tmp_path, np.arange(10), np.arange(10))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(idx_bytes(np.arange(9)))
    with pytest.raises(SanitizerError, match="10 test images but 9 labels"):
        load_dataset(data_cfg(source="fashion-mnist", path=str(tmp_path)))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(SanitizerError, match="t10k-labels-idx1-ubyte.gz not found"):
        load_dataset(data_cfg(source="fashion-mnist", path=str(tmp_path)))


def failing_download(*args, **kwargs):
    raise RuntimeError("Error downloading: no network")


def fake_torchvision(monkeypatch, **dataset_classes) -> None:
    """Stand in for torchvision (slow to import, and would go to the network)."""
    monkeypatch.setitem(sys.modules, "torchvision", SimpleNamespace(datasets=SimpleNamespace(**dataset_classes)))


def test_fashion_mnist_without_local_copy_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", tmp_path / "absent")
    monkeypatch.setattr(datasets, "CACHE", tmp_path / "cache")
    fake_torchvision(monkeypatch, FashionMNIST=failing_download)
    with pytest.raises(SanitizerError, match=r"could not download FashionMNIST .*no network.*apt-get install dataset-fashion-mnist.*data.path"):
        load_dataset(data_cfg(source="fashion-mnist"))


def test_cifar10_without_path_or_network_says_to_set_a_path(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "CACHE", tmp_path / "cache")
    fake_torchvision(monkeypatch, CIFAR10=failing_download)
    with pytest.raises(SanitizerError, match="could not download CIFAR10 .*set data.path to CIFAR-10 as Parquet"):
        load_dataset(data_cfg(source="cifar10"))


def test_torchvision_download_is_used_when_it_works(tmp_path, monkeypatch):
    class FakeCIFAR10:
        classes = ["a", "b"]

        def __init__(self, root, train, download):
            assert root == tmp_path and download
            n = 4 if train else 2
            self.data = np.full((n, 32, 32, 3), 7, np.uint8)  # N x H x W x C, as torchvision has it
            self.targets = [i % 2 for i in range(n)]

    monkeypatch.setattr(datasets, "CACHE", tmp_path)
    fake_torchvision(monkeypatch, CIFAR10=FakeCIFAR10)
    raw = load_dataset(data_cfg(source="cifar10"))
    assert raw.images.shape == (6, 3, 32, 32) and raw.images.flags.c_contiguous
    assert raw.classes == ["a", "b"] and raw.name == "cifar10"
    assert list(raw.sample_ids) == ["train/00000", "train/00001", "train/00002", "train/00003", "test/00000", "test/00001"]


# ---------------------------------------------------------------- load_dataset


def test_unknown_source_and_missing_path():
    with pytest.raises(SanitizerError, match=r"\[data\].source must be one of .*got 'mnist3d'"):
        load_dataset(data_cfg(source="mnist3d"))
    with pytest.raises(SanitizerError, match="data.path /no/such/folder not found"):
        load_dataset(data_cfg(source="imagefolder", path="/no/such/folder"))
    with pytest.raises(SanitizerError, match="data.path must name the image folder root for source imagefolder"):
        load_dataset(data_cfg(source="imagefolder"))
    with pytest.raises(SanitizerError, match="data.path must name a Parquet file"):
        load_dataset(data_cfg(source="parquet"))


def test_limit_is_stratified_exact_and_deterministic(tmp_path):
    # Imbalanced on purpose: class c has c + 1 shares of the train set.
    train_labels = np.repeat(np.arange(10), (np.arange(10) + 1) * 20)  # 1100 samples
    fake_fashion_mnist(tmp_path, train_labels, np.repeat(np.arange(10), 30))
    full = load_dataset(data_cfg(source="fashion-mnist", path=str(tmp_path)))
    a = load_dataset(data_cfg(source="fashion-mnist", path=str(tmp_path), limit=200))
    b = load_dataset(data_cfg(source="fashion-mnist", path=str(tmp_path), limit=200))
    other_seed = load_dataset(data_cfg(source="fashion-mnist", path=str(tmp_path), limit=200, seed=1))

    np.testing.assert_array_equal(a.sample_ids, b.sample_ids)
    assert not np.array_equal(a.sample_ids, other_seed.sample_ids)
    train, test = a.split("train"), a.split("test")
    assert len(train) == 200 and len(test) == 40
    expected = 200 * np.bincount(train_labels) / len(train_labels)
    assert np.abs(np.bincount(a.labels[train], minlength=10) - expected).max() < 1
    assert np.bincount(a.labels[test]).tolist() == [4] * 10
    # Subset samples keep their ids, labels and images.
    index = {s: i for i, s in enumerate(full.sample_ids)}
    rows = [index[s] for s in a.sample_ids]
    np.testing.assert_array_equal(a.images, full.images[rows])
    np.testing.assert_array_equal(a.labels, full.labels[rows])
    assert a.classes == full.classes


def test_limit_above_the_dataset_size_keeps_everything(tmp_path):
    fake_fashion_mnist(tmp_path, np.arange(20) % 10, np.arange(10))
    raw = load_dataset(data_cfg(source="fashion-mnist", path=str(tmp_path), limit=100))
    assert len(raw.split("train")) == 20 and len(raw.split("test")) == 10
    tiny = load_dataset(data_cfg(source="fashion-mnist", path=str(tmp_path), limit=3))
    assert len(tiny.split("train")) == 3 and len(tiny.split("test")) == 1


# ---------------------------------------------------------------- decoding


def image_bytes(value: int, shape=(3, 8, 8), fmt="PNG", dtype=np.uint8) -> bytes:
    c, h, w = shape
    array = np.full((h, w, c), value, dtype=dtype)
    buf = io.BytesIO()
    Image.fromarray(array[:, :, 0] if c == 1 else array).save(buf, format=fmt)
    return buf.getvalue()


def write_image(path: Path, value: int, shape=(3, 8, 8), fmt="PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(value, shape, fmt))


def test_decode_image_modes():
    assert decode_image(image_bytes(9, (1, 5, 7)), "g").shape == (1, 5, 7)
    rgb = decode_image(image_bytes(9, (3, 5, 7), fmt="BMP"), "c")
    assert rgb.shape == (3, 5, 7) and rgb.dtype == np.uint8 and (rgb == 9).all()
    rgba = decode_image(image_bytes(9, (4, 5, 7)), "a")
    assert rgba.shape == (3, 5, 7)  # alpha dropped
    deep = decode_image(image_bytes(0x1234, (1, 2, 2), dtype=np.uint16), "16-bit")
    assert deep.shape == (1, 2, 2) and (deep == 0x12).all()  # high byte kept, not clipped to 255
    with pytest.raises(SanitizerError, match="corrupt image broken/1"):
        decode_image(image_bytes(1)[:40], "broken/1")


def test_held_out_is_a_stable_hash_split():
    keys = [f"k{i}" for i in range(2000)]
    splits = held_out(keys, 0.2)
    assert 0.17 < (splits == "test").mean() < 0.23
    np.testing.assert_array_equal(held_out(keys[:100], 0.2), splits[:100])
    assert (held_out(keys, 0.0) == "train").all()


# ---------------------------------------------------------------- imagefolder


def test_imagefolder_with_train_test_split(tmp_path):
    for split in ("train", "test"):
        for c, cls in enumerate(("cat", "dog")):
            for i in range(3):
                write_image(tmp_path / split / cls / f"{i}.png", 10 * c + i)
    raw = load_dataset(data_cfg(source="imagefolder", path=str(tmp_path)))
    assert raw.name == "imagefolder" and raw.classes == ["cat", "dog"]
    assert raw.images.shape == (12, 3, 8, 8) and raw.images.dtype == np.uint8
    k = list(raw.sample_ids).index("train/dog/2.png")
    assert raw.labels[k] == 1 and raw.splits[k] == "train" and (raw.images[k] == 12).all()
    k = list(raw.sample_ids).index("test/cat/1.png")
    assert raw.labels[k] == 0 and raw.splits[k] == "test" and (raw.images[k] == 1).all()
    assert (raw.splits == "test").sum() == 6


def test_imagefolder_without_split_holds_out_stably(tmp_path):
    for i in range(60):
        write_image(tmp_path / ("a" if i % 2 else "b") / f"{i}.png", i, shape=(1, 4, 4))
    cfg = data_cfg(source="imagefolder", path=str(tmp_path), test_fraction=0.3)
    first = load_dataset(cfg)
    assert first.images.shape == (60, 1, 4, 4)  # every image greyscale: one channel kept
    assert all("/" in s and not s.startswith(("train/", "test/")) for s in first.sample_ids)
    np.testing.assert_array_equal(first.splits, held_out(first.sample_ids, 0.3))
    assert 5 < (first.splits == "test").sum() < 35
    for i in range(60, 80):
        write_image(tmp_path / "a" / f"{i}.png", 1, shape=(1, 4, 4))
    second = load_dataset(cfg)
    before = dict(zip(first.sample_ids, first.splits))
    assert len(second.sample_ids) == 80
    assert all(before[s] == sp for s, sp in zip(second.sample_ids, second.splits) if s in before)


def test_imagefolder_picks_images_by_extension_and_skips_hidden_files(tmp_path):
    write_image(tmp_path / "cat" / "1.png", 1, shape=(1, 4, 4))
    write_image(tmp_path / "cat" / "2.JPG", 2, shape=(3, 4, 4), fmt="JPEG")
    write_image(tmp_path / "dog" / "sub" / "3.bmp", 3, shape=(3, 4, 4), fmt="BMP")
    write_image(tmp_path / "dog" / ".4.png", 4, shape=(1, 9, 9))
    write_image(tmp_path / "dog" / ".cache" / "5.png", 5, shape=(1, 9, 9))
    write_image(tmp_path / ".hidden" / "6.png", 6, shape=(1, 9, 9))
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    raw = load_dataset(data_cfg(source="imagefolder", path=str(tmp_path), test_fraction=0.0))
    assert sorted(raw.sample_ids) == ["cat/1.png", "cat/2.JPG", "dog/sub/3.bmp"]
    assert raw.classes == ["cat", "dog"]
    # One colour image makes every image RGB; the greyscale one is repeated over channels.
    assert raw.images.shape == (3, 3, 4, 4)
    assert (raw.images[list(raw.sample_ids).index("cat/1.png")] == 1).all()


def test_imagefolder_errors_name_the_problem(tmp_path):
    write_image(tmp_path / "ok" / "cat" / "1.png", 1)
    (tmp_path / "ok" / "cat" / "2.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(SanitizerError, match="corrupt image cat/2.png"):
        load_dataset(data_cfg(source="imagefolder", path=str(tmp_path / "ok")))

    write_image(tmp_path / "sizes" / "cat" / "1.png", 1)
    write_image(tmp_path / "sizes" / "dog" / "1.png", 1, shape=(3, 9, 8))
    with pytest.raises(SanitizerError, match=r"image dog/1.png is \(9, 8\), but cat/1.png is \(8, 8\): all images must share one size"):
        load_dataset(data_cfg(source="imagefolder", path=str(tmp_path / "sizes")))

    for split, cls in (("train", "cat"), ("test", "cat"), ("test", "zebra")):
        write_image(tmp_path / "cls" / split / cls / "1.png", 1)
    with pytest.raises(SanitizerError, match=r"unknown class 'zebra' in .*test: not among the train classes \['cat'\]"):
        load_dataset(data_cfg(source="imagefolder", path=str(tmp_path / "cls")))

    (tmp_path / "flat").mkdir()
    write_image(tmp_path / "flat" / "1.png", 1)
    with pytest.raises(SanitizerError, match="no class folders in"):
        load_dataset(data_cfg(source="imagefolder", path=str(tmp_path / "flat")))

    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(SanitizerError, match="no images"):
        load_dataset(data_cfg(source="imagefolder", path=str(tmp_path / "empty")))


# ---------------------------------------------------------------- parquet


def write_table(path: Path, labels, blobs=None, extra=None, metadata=None, image_column="image", label_column="label") -> None:
    blobs = blobs or [image_bytes(i, (1, 4, 4)) for i in range(len(labels))]
    table = pa.table({image_column: pa.array(blobs, pa.binary()), label_column: labels, **(extra or {})})
    if metadata:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)


def test_parquet_single_file_holds_out_by_hash(tmp_path):
    f = tmp_path / "data.parquet"
    write_table(f, [0, 1, 2, 1] * 25, metadata={"classes": json.dumps(["a", "b", "c"])})
    cfg = data_cfg(source="parquet", path=str(f), test_fraction=0.25)
    raw = load_dataset(cfg)
    assert raw.name == "parquet" and raw.classes == ["a", "b", "c"]
    assert raw.images.shape == (100, 1, 4, 4) and (raw.images[3] == 3).all()
    assert raw.labels.tolist() == [0, 1, 2, 1] * 25
    # Ids are <split>/<row>; the split is drawn by a hash of the row, so it is reproducible.
    assert [s.split("/") for s in raw.sample_ids] == [[sp, f"{i:06d}"] for i, sp in enumerate(raw.splits)]
    assert 10 < (raw.splits == "test").sum() < 40
    np.testing.assert_array_equal(load_dataset(cfg).splits, raw.splits)


def test_parquet_single_file_with_split_and_sample_id_columns(tmp_path):
    f = tmp_path / "data.parquet"
    extra = {
        "split": ["train", "test", "train", "test"],
        "sample_id": ["s0", "s1", "s2", "s3"],
        "path": ["p0", "p1", "p2", "p3"],
        "class_name": ["x", "y", "x", "y"],
    }
    write_table(f, [0, 1, 0, 1], extra=extra)
    raw = load_dataset(data_cfg(source="parquet", path=str(f)))
    assert list(raw.splits) == extra["split"]
    assert list(raw.sample_ids) == extra["sample_id"]  # sample_id wins over path
    assert raw.classes == ["x", "y"]

    write_table(f, [0, 1], extra={"split": ["train", "valid"]})
    with pytest.raises(SanitizerError, match=r"data.parquet: column 'split' may hold only \['train', 'test'\], found \['valid'\]"):
        load_dataset(data_cfg(source="parquet", path=str(f)))


def test_parquet_folder_uses_path_ids_and_class_name_column(tmp_path):
    for split in ("train", "test"):
        extra = {"path": [f"{split}/dog/y.png", f"{split}/cat/x.png"], "class_name": ["dog", "cat"]}
        write_table(tmp_path / f"{split}.parquet", pa.array([1, 0], pa.int16()), extra=extra)
    raw = load_dataset(data_cfg(source="parquet", path=str(tmp_path)))
    assert list(raw.sample_ids) == ["train/dog/y.png", "train/cat/x.png", "test/dog/y.png", "test/cat/x.png"]
    assert raw.classes == ["cat", "dog"] and list(raw.splits) == ["train", "train", "test", "test"]
    assert raw.labels.dtype == np.int64 and raw.labels.tolist() == [1, 0, 1, 0]


def test_parquet_custom_columns_and_numbered_classes(tmp_path):
    f = tmp_path / "t.parquet"
    write_table(f, [0, 2, 1], image_column="img", label_column="y")
    raw = load_dataset(data_cfg(source="parquet", path=str(f), image_column="img", label_column="y", test_fraction=0.0))
    assert raw.classes == ["0", "1", "2"]
    assert list(raw.sample_ids) == ["train/000000", "train/000001", "train/000002"]


def test_parquet_labels_with_gaps_and_no_class_list_are_refused(tmp_path):
    # Label 3 alone must not make four classes, two of them empty.
    f = tmp_path / "t.parquet"
    write_table(f, [0, 3, 3])
    with pytest.raises(SanitizerError, match=r"no sample has label\(s\) 1, 2 though labels go up to 3"):
        load_dataset(data_cfg(source="parquet", path=str(f), test_fraction=0.0))


def test_cifar10_source_reads_a_parquet_folder(tmp_path):
    for split in ("train", "test"):
        blobs = [image_bytes(50 * i, (3, 32, 32), fmt="JPEG") for i in range(3)]
        write_table(tmp_path / f"{split}.parquet", [0, 1, 2], blobs=blobs, metadata={"classes": "plane,car,bird"})
    raw = load_dataset(data_cfg(source="cifar10", path=str(tmp_path)))
    assert raw.name == "cifar10" and raw.classes == ["plane", "car", "bird"]
    assert raw.images.shape == (6, 3, 32, 32)
    assert abs(int(raw.images[2].mean()) - 100) <= 2  # JPEG is lossy, but not by much on a flat image


def test_parquet_hugging_face_image_struct(tmp_path):
    f = tmp_path / "hf.parquet"
    images = pa.array([{"bytes": image_bytes(i, (1, 4, 4)), "path": None} for i in range(2)])
    pq.write_table(pa.table({"image": images, "label": [0, 1]}), f)
    raw = load_dataset(data_cfg(source="parquet", path=str(f), test_fraction=0.0))
    assert raw.images.shape == (2, 1, 4, 4) and (raw.images[1] == 1).all()


def test_parquet_errors_name_the_problem(tmp_path):
    f = tmp_path / "t.parquet"
    write_table(f, [0, 1])
    with pytest.raises(SanitizerError, match=r"t.parquet has no column 'target'; columns: \['image', 'label'\]"):
        load_dataset(data_cfg(source="parquet", path=str(f), label_column="target"))

    write_table(f, [0, 1], blobs=[image_bytes(1, (1, 4, 4)), b"garbage"], extra={"sample_id": ["ok", "bad-one"]})
    with pytest.raises(SanitizerError, match="corrupt image bad-one"):
        load_dataset(data_cfg(source="parquet", path=str(f)))

    write_table(f, [0, 5], extra={"sample_id": ["a", "b"]}, metadata={"classes": json.dumps(["a", "b"])})
    with pytest.raises(SanitizerError, match=r"label 5 of sample b is out of range 0..1 \(2 classes\)"):
        load_dataset(data_cfg(source="parquet", path=str(f)))

    write_table(f, [0, -1], extra={"sample_id": ["a", "b"]})
    with pytest.raises(SanitizerError, match="label -1 of sample b is out of range"):
        load_dataset(data_cfg(source="parquet", path=str(f)))

    write_table(f, [0, None], extra={"sample_id": ["a", "b"]})
    with pytest.raises(SanitizerError, match=r"sample b has no label \(null in column 'label'\)"):
        load_dataset(data_cfg(source="parquet", path=str(f)))

    write_table(f, ["cat", "dog"])
    with pytest.raises(SanitizerError, match="column 'label' must hold integer labels, got string"):
        load_dataset(data_cfg(source="parquet", path=str(f)))

    pq.write_table(pa.table({"image": ["a.png"], "label": [0]}), f)
    with pytest.raises(SanitizerError, match="column 'image' must hold encoded image bytes, got string"):
        load_dataset(data_cfg(source="parquet", path=str(f)))

    f.write_bytes(b"not parquet")
    with pytest.raises(SanitizerError, match="t.parquet is not a readable Parquet file"):
        load_dataset(data_cfg(source="parquet", path=str(f)))

    folder = tmp_path / "folder"
    folder.mkdir()
    write_table(folder / "train.parquet", [0])
    with pytest.raises(SanitizerError, match="test.parquet not found: data.path must be a Parquet file or a folder"):
        load_dataset(data_cfg(source="parquet", path=str(folder)))


# ---------------------------------------------------------------- real data


@pytest.mark.slow
@pytest.mark.skipif(not FASHION_MNIST.exists(), reason="apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist():
    raw = load_dataset(data_cfg(source="fashion-mnist"))
    train, test = raw.split("train"), raw.split("test")
    assert len(train) == 60000 and len(test) == 10000
    assert raw.images.shape == (70000, 1, 28, 28) and len(raw.classes) == 10
    np.testing.assert_array_equal(raw.labels[test], read_idx(FASHION_MNIST / "t10k-labels-idx1-ubyte.gz", IDX_LABELS))
    np.testing.assert_array_equal(raw.images[train[:100], 0], read_idx(FASHION_MNIST / "train-images-idx3-ubyte.gz", IDX_IMAGES)[:100])
    assert np.bincount(raw.labels[train]).tolist() == [6000] * 10
    # The well-known first training sample is an ankle boot.
    assert raw.sample_ids[0] == "train/00000" and raw.classes[raw.labels[0]] == "Ankle boot"

    small = load_dataset(data_cfg(source="fashion-mnist", limit=2000))
    assert len(small.split("train")) == 2000 and np.bincount(small.labels[small.split("train")]).tolist() == [200] * 10
    assert len(small.split("test")) == 400


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR.exists(), reason=f"{CIFAR} not present")
def test_real_cifar10_parquet():
    raw = load_dataset(data_cfg(source="cifar10", path=str(CIFAR)))
    assert raw.images.shape == (60000, 3, 32, 32) and raw.images.dtype == np.uint8
    assert len(raw.split("train")) == 50000 and len(raw.split("test")) == 10000
    assert raw.classes == CIFAR_CLASSES
    assert np.bincount(raw.labels[raw.split("test")]).tolist() == [1000] * 10
    table = pq.read_table(CIFAR / "test.parquet").slice(0, 5).to_pylist()
    index = {s: i for i, s in enumerate(raw.sample_ids)}
    for row in table:
        k = index[row["path"]]
        assert raw.splits[k] == "test" and raw.labels[k] == row["label"] and raw.classes[raw.labels[k]] == row["class_name"]
        expected = np.asarray(Image.open(io.BytesIO(row["image"])).convert("RGB")).transpose(2, 0, 1)
        np.testing.assert_array_equal(raw.images[k], expected)
    k = index["train/cat/0001.jpg"]
    assert raw.labels[k] == 3 and raw.splits[k] == "train"
