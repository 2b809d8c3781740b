"""Ingest under attacks whose ASR set or test-time trigger differ from plain BadNets: the
ground truth counts poisons and covers, and ingest/asr holds exactly the test images the attack
targets, triggered, with the labels the attacker wants."""

import numpy as np
import polars as pl
import pytest
import yaml

from conftest import needs_fashion_mnist, write_params
from sanitizer.config import config
from sanitizer.datasets import load_dataset
from sanitizer.pipeline import run_stage

pytestmark = needs_fashion_mnist
N_TRAIN = 1000


def ingest(tmp_path, attack: dict):
    params = tmp_path / "params.yaml"
    write_params(params, {"data": {"limit": N_TRAIN}, "attack": attack})
    run_stage("ingest", params, tmp_path / "data")
    raw = load_dataset(config("data", yaml.safe_load(params.read_text())))
    test = raw.split("test")
    test = test[np.argsort(raw.sample_ids[test], kind="stable")]
    asr = tmp_path / "data/ingest/asr"
    truth = pl.read_parquet(tmp_path / "data/ingest/truth.parquet")
    return truth, raw.images[test], raw.labels[test], np.load(asr / "images.npy"), np.load(asr / "targets.npy")


def test_tact_counts_covers_and_measures_asr_on_the_source_class_only(tmp_path):
    truth, clean, labels, triggered, targets = ingest(tmp_path, {"name": "tact", "source": 0, "target": 1})
    assert truth["is_poison"].sum() == 50 and truth["is_cover"].sum() == 10  # rate 5 %, cover 1 %
    assert not (truth["is_poison"] & truth["is_cover"]).any()
    assert (truth.filter(pl.col("is_poison"))["original_label"] == 0).all()
    source = clean[labels == 0]
    assert len(triggered) == len(source) > 0 and (targets == 1).all()
    changed = (triggered != source).any(axis=1)
    assert changed[:, -8:, -8:].any() and not changed[:, :-8, :].any() and not changed[:, :, :-8].any()


def test_adaptive_blend_test_images_carry_the_full_trigger(tmp_path):
    truth, clean, labels, triggered, targets = ingest(tmp_path, {"name": "adaptive_blend"})
    assert truth["is_poison"].sum() == 50 and truth["is_cover"].sum() == 10
    assert len(triggered) == (labels != 1).sum() and (targets == 1).all()
    # Train-time poisons carry half the pieces; the test-time trigger covers the whole image.
    changed = (triggered != clean[labels != 1]).any(axis=1).mean(axis=0)
    assert (changed > 0).mean() > 0.9


@pytest.mark.parametrize("name", ["badnets", "blend"])
def test_all_to_all_targets_the_next_class(tmp_path, name):
    truth, clean, labels, triggered, targets = ingest(tmp_path, {"name": name, "mode": "all-to-all"})
    assert len(triggered) == len(labels) and (targets == (labels + 1) % 10).all()
    poisons = truth.filter(pl.col("is_poison"))
    assert len(poisons) == 50 and truth["is_cover"].sum() == 0
