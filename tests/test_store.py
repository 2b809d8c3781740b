import numpy as np
import pytest

import sanitizer.store as store_mod
from sanitizer.errors import SanitizerError
from sanitizer.store import RawDataset, SampleStore, write_store


def _raw(n=10, shape=(1, 4, 4), k=3, seed=0, ids=None, splits=None, **over):
    rng = np.random.default_rng(seed)
    kw = dict(
        images=rng.integers(0, 256, size=(n, *shape), dtype=np.uint8),
        labels=rng.integers(0, k, size=n),
        splits=np.array(splits if splits is not None else ["train" if i % 3 else "test" for i in range(n)]),
        sample_ids=np.array(ids if ids is not None else [f"s{i:03d}" for i in range(n)]),
        classes=[f"c{j}" for j in range(k)],
        name="toy",
    )
    kw.update(over)
    return RawDataset(**kw)


def test_label_out_of_range():
    raw = _raw()
    labels = raw.labels.copy()
    labels[4] = 3
    with pytest.raises(SanitizerError, match="out of range"):
        _raw(labels=labels)
    labels[4] = -1
    with pytest.raises(SanitizerError, match="out of range"):
        _raw(labels=labels)


def test_non_uint8_rejected():
    raw = _raw()
    with pytest.raises(SanitizerError, match="uint8"):
        _raw(images=raw.images.astype(np.float32))
    with pytest.raises(SanitizerError, match="uint8"):
        _raw(images=raw.images[:, 0])  # 3-d


def test_duplicate_ids_rejected():
    ids = [f"s{i}" for i in range(10)]
    ids[7] = "s2"
    with pytest.raises(SanitizerError, match="unique"):
        _raw(ids=ids)


def test_length_mismatch_rejected():
    raw = _raw()
    with pytest.raises(SanitizerError, match="labels"):
        _raw(labels=raw.labels[:-1])
    with pytest.raises(SanitizerError, match="sample_ids"):
        _raw(ids=[f"s{i}" for i in range(9)])


def test_unknown_split_rejected():
    splits = ["train"] * 10
    splits[3] = "val"
    with pytest.raises(SanitizerError, match="val"):
        _raw(splits=splits)


def test_empty_rejected():
    with pytest.raises(SanitizerError):
        _raw(n=0, splits=[], ids=[])


def _check_split(split, raw, name):
    idx = raw.split(name)
    by_id = {str(raw.sample_ids[i]): i for i in idx}
    assert sorted(split.sample_ids.tolist()) == split.sample_ids.tolist()
    assert set(split.sample_ids.tolist()) == set(by_id)
    for j, sid in enumerate(split.sample_ids):
        i = by_id[sid]
        assert split.labels[j] == raw.labels[i]
        np.testing.assert_array_equal(split.images[j], raw.images[i])
    assert split.images.dtype == np.uint8
    assert split.images.shape == (len(idx), *raw.images.shape[1:])


def test_round_trip_unsorted_input(tmp_path):
    n = 12
    perm = np.random.default_rng(1).permutation(n)
    raw = _raw(n=n, shape=(3, 5, 6), k=4, ids=[f"id{p:02d}" for p in perm])
    write_store(tmp_path / "store", raw)
    st = SampleStore(tmp_path / "store")
    assert st.classes == raw.classes
    assert st.image_shape == (3, 5, 6)
    for name in ("train", "test"):
        sp = st.split(name)
        _check_split(sp, raw, name)
        assert sp.num_classes == 4
        assert len(sp) == len(raw.split(name))
    assert len(st.split("train")) + len(st.split("test")) == n


def test_round_trip_integer_ids(tmp_path):
    # ids of different digit counts: numeric and string order differ; rows must still match
    ids = [10, 2, 33, 1, 100, 7]
    raw = _raw(n=6, ids=ids, splits=["train"] * 6)
    write_store(tmp_path / "store", raw)
    _check_split(SampleStore(tmp_path / "store").split("train"), raw, "train")


def test_shards_are_written_in_chunks_and_read_memory_mapped(tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "CHUNK", 4)  # 11 images: chunks of 4, 4 and 3 in the train shard
    n = 11
    perm = np.random.default_rng(2).permutation(n)
    raw = _raw(n=n, ids=[f"x{p:02d}" for p in perm], splits=["train"] * 8 + ["test"] * 3)
    write_store(tmp_path / "store", raw)
    order = np.argsort(raw.sample_ids.astype(str), kind="stable")
    for name in ("train", "test"):
        shard = tmp_path / "store" / "shards" / f"{name}.npy"
        np.save(tmp_path / "reference.npy", raw.images[order[raw.splits[order] == name]])
        assert shard.read_bytes() == (tmp_path / "reference.npy").read_bytes()
    st = SampleStore(tmp_path / "store")
    split = st.split("train")
    assert isinstance(split.images, np.memmap)
    split.images[0] = 0  # copy-on-write: a stage's edit never reaches the store
    assert np.array_equal(SampleStore(tmp_path / "store").split("train").images, raw.images[order[raw.splits[order] == "train"]])
    for name in ("train", "test"):
        _check_split(st.split(name), raw, name)


def test_fingerprint_does_not_depend_on_the_chunk_size(tmp_path, monkeypatch):
    raw = _raw(n=11, ids=[f"x{p:02d}" for p in range(11)])
    order = np.arange(11)
    whole = store_mod.fingerprint(raw, order)
    monkeypatch.setattr(store_mod, "CHUNK", 3)
    assert store_mod.fingerprint(raw, order) == whole


def test_missing_store_raises(tmp_path):
    with pytest.raises(SanitizerError):
        SampleStore(tmp_path / "nothing")
