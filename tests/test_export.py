"""`sanitize export`: the sanitized training set as a team hands it on."""

import json

import numpy as np
import polars as pl
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image
from test_datasets import image_bytes, write_table

from sanitizer.cli import main
from sanitizer.config import config
from sanitizer.datasets import load_dataset
from sanitizer.layout import Paths
from sanitizer.manifest import write_manifest
from sanitizer.store import SampleStore

CLASSES = ["T-shirt/top", "cat", ".hidden"]
# Per train sample (in sample_id order): decision, new label.
DECISIONS = [("keep", 0), ("relabel", 2), ("drop", 1), ("keep", 1), ("relabel", 0), ("keep", 2)]


def ingest_tables(tmp_path, classes, labels, blobs, test_blobs, train_extra=None, test_extra=None):
    """train.parquet and test.parquet of encoded images, ingested as `data.source: parquet`
    with no attack; the data root."""
    meta = {"classes": json.dumps(classes)}
    write_table(tmp_path / "train.parquet", labels, blobs=blobs, extra=train_extra, metadata=meta)
    write_table(tmp_path / "test.parquet", list(range(len(test_blobs))), blobs=test_blobs, extra=test_extra, metadata=meta)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"source": "parquet", "path": str(tmp_path)}, "attack": {"name": "none"}}))
    data = tmp_path / "data"
    result = CliRunner().invoke(main, ["run", "ingest", "--params", str(params), "--data", str(data)])
    assert result.exit_code == 0, result.output
    return data


@pytest.fixture
def run(tmp_path):
    """An ingested store of 6 train (+ 2 test) samples and decisions for it, as relabel writes."""
    labels = [0, 1, 1, 1, 2, 2]
    blobs = [image_bytes(30 * i + 10, (3, 6, 6)) for i in range(6)]
    data = ingest_tables(tmp_path, CLASSES, labels, blobs, blobs[:2])
    paths = Paths(data)
    ids = SampleStore(paths.store).rows("train")["sample_id"].to_list()
    write_manifest(
        pl.DataFrame(
            {
                "sample_id": ids,
                "label": labels,
                "decision": [d for d, _ in DECISIONS],
                "new_label": [n for _, n in DECISIONS],
                "confidence": [0.9] * 6,
                "reason": ["r"] * 6,
                "source": ["method"] * 6,
            }
        ),
        paths.decisions,
        "relabel",
        {"classes": CLASSES},
    )
    (data / "relabel/timing.json").write_text((data / "ingest/timing.json").read_text())  # relabel ran on this store
    return data, ids


def export(data, out, *args):
    return CliRunner().invoke(main, ["export", "--data", str(data), "--out", str(out), *args])


def test_imagefolder_export_holds_kept_and_relabelled_samples_under_their_labels(run, tmp_path):
    data, ids = run
    out = tmp_path / "clean"
    result = export(data, out)
    assert result.exit_code == 0, result.output
    assert "wrote 5 samples" in result.output and "2 relabelled, 1 dropped" in result.output
    # Class names become safe folder names: no separator, no hidden folder.
    assert sorted(p.name for p in out.iterdir()) == ["T-shirt_top", "_.hidden", "cat", "changes.csv"]
    store = SampleStore(data / "ingest/store").split("train")
    per_folder = {"T-shirt_top": [], "cat": [], "_.hidden": []}
    for folder in per_folder:
        for f in sorted((out / folder).iterdir()):
            per_folder[folder].append(np.asarray(Image.open(f)).transpose(2, 0, 1))
    expected = {"T-shirt_top": [0, 4], "cat": [3], "_.hidden": [1, 5]}  # rows by exported label
    for folder, rows in expected.items():
        got = sorted(img.tobytes() for img in per_folder[folder])
        assert got == sorted(store.images[i].tobytes() for i in rows), folder
    changes = pl.read_csv(out / "changes.csv")
    assert changes["sample_id"].to_list() == [ids[1], ids[2], ids[4]]
    assert changes["decision"].to_list() == ["relabel", "drop", "relabel"]
    assert changes["given_label"].to_list() == ["cat", "cat", ".hidden"]
    assert changes["new_label"].to_list() == [".hidden", None, "T-shirt/top"]


def test_parquet_export_reads_back_as_a_dataset(run, tmp_path):
    data, ids = run
    out = tmp_path / "clean"
    assert export(data, out, "--format", "parquet").exit_code == 0
    raw = load_dataset(config("data", {"data": {"source": "parquet", "path": str(out / "train.parquet"), "test_fraction": 0.0}}))
    assert raw.classes == CLASSES
    keep = [i for i, (d, _) in enumerate(DECISIONS) if d != "drop"]
    assert list(raw.sample_ids) == [ids[i] for i in keep]
    assert raw.labels.tolist() == [DECISIONS[i][1] for i in keep]
    store = SampleStore(data / "ingest/store").split("train")
    assert raw.images.tobytes() == store.images[keep].tobytes()


def test_export_refuses_to_overwrite_unless_forced(run, tmp_path):
    data, _ = run
    out = tmp_path / "clean"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    result = export(data, out)
    assert result.exit_code == 1 and "already exists and is not empty" in result.output
    assert (out / "mine.txt").exists()
    assert export(data, out, "--force").exit_code == 0
    assert not (out / "mine.txt").exists() and (out / "changes.csv").exists()


def test_export_refuses_decisions_from_another_run(run, tmp_path):
    data, _ = run
    (data / "relabel/timing.json").write_text(json.dumps({"wall_seconds": 1.0, "store": "another"}))
    result = export(data, tmp_path / "clean")
    assert result.exit_code == 1 and "the outputs of relabel come from another run" in result.output
    assert not (tmp_path / "clean").exists()
