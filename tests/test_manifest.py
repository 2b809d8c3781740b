import os

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sanitizer.errors import SanitizerError
from sanitizer.io import atomic_outputs, atomic_path, read_json, write_json
from sanitizer.manifest import SCHEMA_VERSION, meta_value, read_manifest, read_meta, write_manifest


def _frame():
    return pl.DataFrame({"sample_id": [5, 2, 9, 0, 7], "score": [0.5, 0.2, 0.9, 0.0, 0.7], "tag": list("abcde")})


def test_written_manifest_sorted_by_sample_id(tmp_path):
    p = tmp_path / "m.parquet"
    df = _frame()
    write_manifest(df, p, stage="score")
    out = read_manifest(p)
    assert out["sample_id"].to_list() == sorted(df["sample_id"].to_list())
    # rows move with their sample_id
    expected = dict(zip(df["sample_id"].to_list(), df["tag"].to_list()))
    assert dict(zip(out["sample_id"].to_list(), out["tag"].to_list())) == expected
    assert dict(zip(out["sample_id"].to_list(), out["score"].to_list())) == dict(
        zip(df["sample_id"].to_list(), df["score"].to_list())
    )


def test_metadata(tmp_path):
    p = tmp_path / "m.parquet"
    write_manifest(_frame(), p, stage="partition", meta={"rate": 0.2, "info": {"a": [1, 2]}})
    meta = read_meta(p)
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert meta["stage"] == "partition"
    assert meta_value(p, "rate") == 0.2
    assert meta_value(p, "info") == {"a": [1, 2]}
    assert not any(k.startswith("ARROW") for k in meta)


def test_deterministic_bytes(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    write_manifest(_frame(), a, stage="s", meta={"x": 1})
    write_manifest(_frame(), b, stage="s", meta={"x": 1})
    assert a.read_bytes() == b.read_bytes()
    # a shuffled input gives the same sorted bytes
    c = tmp_path / "c.parquet"
    write_manifest(_frame().sample(fraction=1.0, shuffle=True, seed=3), c, stage="s", meta={"x": 1})
    assert c.read_bytes() == a.read_bytes()


def test_duplicate_sample_ids_raise(tmp_path):
    p = tmp_path / "m.parquet"
    with pytest.raises(SanitizerError, match="duplicate"):
        write_manifest(pl.DataFrame({"sample_id": [1, 2, 1]}), p, stage="s")
    assert not p.exists()


def test_missing_sample_id_column_raises(tmp_path):
    p = tmp_path / "m.parquet"
    with pytest.raises(SanitizerError, match="sample_id"):
        write_manifest(pl.DataFrame({"id": [1, 2]}), p, stage="s")
    assert not p.exists()


def test_read_missing_file_raises(tmp_path):
    with pytest.raises(SanitizerError, match="missing"):
        read_manifest(tmp_path / "absent.parquet")


def test_read_missing_columns_raises(tmp_path):
    p = tmp_path / "m.parquet"
    write_manifest(_frame(), p, stage="s")
    assert read_manifest(p, columns=["score"]).columns == ["sample_id", "score", "tag"]
    with pytest.raises(SanitizerError, match="nothere"):
        read_manifest(p, columns=["score", "nothere"])


def test_read_wrong_schema_version_raises(tmp_path):
    p = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"sample_id": [1, 2]}), p)
    with pytest.raises(SanitizerError, match="schema_version"):
        read_manifest(p)


def test_atomic_path_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp != target
        tmp.write_text("hello")
        assert not target.exists()
    assert target.read_text() == "hello"
    assert sorted(os.listdir(target.parent)) == ["out.txt"]


def test_atomic_path_replaces_directory(tmp_path):
    target = tmp_path / "d"
    target.mkdir()
    (target / "old").write_text("x")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("y")
    assert sorted(os.listdir(target)) == ["new"]
    assert sorted(os.listdir(tmp_path)) == ["d"]


def test_atomic_path_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_atomic_path_failure_keeps_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("new")
            raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_write_json_roundtrip(tmp_path):
    p = tmp_path / "x.json"
    write_json(p, {"b": 1, "a": [1, 2]})
    assert read_json(p) == {"a": [1, 2], "b": 1}
    assert p.read_text().index('"a"') < p.read_text().index('"b"')


def test_atomic_outputs_removes_stale(tmp_path):
    f = tmp_path / "f.txt"
    d = tmp_path / "d"
    f.write_text("stale")
    d.mkdir()
    (d / "x").write_text("stale")
    with atomic_outputs(f, d, tmp_path / "never"):
        assert not f.exists() and not d.exists()
        f.write_text("fresh")
    assert f.read_text() == "fresh"


def test_atomic_outputs_removes_on_failure(tmp_path):
    f = tmp_path / "f.txt"
    d = tmp_path / "d"
    with pytest.raises(ValueError):
        with atomic_outputs(f, d):
            f.write_text("half")
            d.mkdir()
            (d / "x").write_text("half")
            raise ValueError("fail")
    assert not f.exists() and not d.exists()
