import numpy as np
import polars as pl
import pytest
import torch

from sanitizer.config import config
from sanitizer.defenses.advrbd import partition
from sanitizer.errors import SanitizerError
from sanitizer.models import build_model
from sanitizer.purification import purification_gap, purify
from sanitizer.training import fit


def _backdoor(amplitude, n=1500, poison_rate=0.1, seed=0):
    """Two bold classes (bright left vs right half) and a dirty-label trigger: a checkerboard
    of the given amplitude (0..255) over the whole image turns class 0 into class 1."""
    g = np.random.default_rng(seed)
    labels = g.integers(0, 2, n)
    images = g.normal(60, 20, (n, 1, 28, 28))
    images[labels == 0, :, :, :14] += 120
    images[labels == 1, :, :, 14:] += 120
    poison = np.zeros(n, bool)
    poison[g.choice(np.flatnonzero(labels == 0), int(poison_rate * n), replace=False)] = True
    checker = (np.indices((28, 28)).sum(0) % 2) * 2 - 1
    images[poison] += amplitude * checker
    labels = labels.copy()
    labels[poison] = 1
    x = torch.from_numpy(np.clip(images, 0, 255).round().astype(np.uint8))
    return x, torch.from_numpy(labels), poison


def _suspect(x, y):
    torch.manual_seed(0)
    model = build_model("small_cnn", (1, 28, 28), 2)
    return fit(model, x, y, config("train", {"train": {"epochs": 6, "lr": 0.05}}))


def _backdoored(amplitude):
    x, y, poison = _backdoor(amplitude)
    suspect = _suspect(x, y)
    assert (suspect(x[poison].float() / 255).argmax(1) == 1).float().mean() > 0.9  # the backdoor took
    return suspect, x, y, poison


@pytest.fixture(scope="module")
def backdoored():
    return _backdoored(amplitude=16)


PURIFY = {"purify": {"fraction": 0.2, "epochs": 3}}


def test_gap_singles_out_faint_trigger_poisons(backdoored):
    suspect, x, y, poison = backdoored
    gap = purification_gap(suspect, x, y, config("purify", PURIFY))
    assert np.median(gap[poison]) > 1.25 > np.median(gap[~poison])
    assert np.mean(gap[poison] > 1.25) > 0.8 and np.mean(gap[~poison] > 1.25) < 0.1


def test_bold_trigger_survives_purification():
    # Why the gap only filters the loss-ranked seed instead of replacing it (BadNets, TaCT).
    suspect, x, y, poison = _backdoored(amplitude=100)
    gap = purification_gap(suspect, x, y, config("purify", PURIFY))
    assert np.mean(gap[poison] > 1.25) < 0.1


def test_purify_leaves_suspect_alone_and_is_deterministic(backdoored):
    suspect, x, y, _ = backdoored
    before = {k: v.clone() for k, v in suspect.state_dict().items()}
    cfg = config("purify", {"purify": {"fraction": 0.1, "epochs": 1}})
    a, b = purification_gap(suspect, x, y, cfg), purification_gap(suspect, x, y, cfg)
    assert a.tobytes() == b.tobytes()
    assert all(torch.equal(before[k], v) for k, v in suspect.state_dict().items())
    other = purify(suspect, x, y, config("purify", {"purify": {"fraction": 0.1, "epochs": 1, "seed": 1}}))
    assert any(not torch.equal(p, q) for p, q in zip(other.state_dict().values(), purify(suspect, x, y, cfg).state_dict().values()))


def test_partition_leaves_ineligible_samples_out_of_the_seed():
    loss = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    eligible = np.array([False, True, False, True, True, True, True, True, True, True])
    seed = partition(np.zeros(10), loss, 0.3, by="loss", eligible=eligible)
    np.testing.assert_array_equal(np.flatnonzero(seed), [1])  # the top 3 by loss, less the ineligible
    np.testing.assert_array_equal(partition(np.zeros(10), loss, 0.3, by="loss", eligible=np.ones(10, bool)), partition(np.zeros(10), loss, 0.3, by="loss"))


def test_partition_with_no_eligible_seed_is_a_clear_error():
    with pytest.raises(SanitizerError, match="no sample may seed D_s.*partition.max_gap"):
        partition(np.zeros(10), np.arange(10.0), 0.2, by="loss", eligible=np.arange(10) < 8)


@pytest.mark.parametrize("key,value", [("eps", 1.5), ("fraction", 0.0), ("epochs", 0), ("steps", 0)])
def test_purify_config_rejects_bad_values(key, value):
    with pytest.raises(SanitizerError, match=rf"\[purify\]\.{key}"):
        config("purify", {"purify": {key: value}})


def test_partition_stage_leaves_high_gap_samples_out_of_the_seed(tmp_path):
    from sanitizer.manifest import read_manifest, write_manifest
    from sanitizer.pipeline import Paths, partition as partition_stage

    paths = Paths(tmp_path)
    loss = np.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    gap = np.array([2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0])
    scores = pl.DataFrame({"sample_id": np.arange(10), "score": np.zeros(10), "loss": loss, "gap": gap})
    paths.scores.parent.mkdir(parents=True)
    write_manifest(scores, paths.scores, "score")
    partition_stage({"partition": {"rate": 0.3, "by": "loss", "max_gap": 1.25}}, paths)
    assert read_manifest(paths.partition, ["subset"])["subset"].to_list() == ["rest", "seed", "seed"] + ["rest"] * 7
    partition_stage({"partition": {"rate": 0.3, "by": "loss"}}, paths)  # max_gap null: no filter
    assert read_manifest(paths.partition, ["subset"])["subset"].to_list() == ["seed"] * 3 + ["rest"] * 7


def test_gap_from_a_given_suspect_loss_matches_the_computed_one(backdoored):
    from sanitizer.training import log_prob_at_label

    suspect, x, y, _ = backdoored
    cfg = config("purify", {"purify": {"fraction": 0.1, "epochs": 1}})
    given = purification_gap(suspect, x, y, cfg, suspect_loss=-log_prob_at_label(suspect, x, y))
    assert given.tobytes() == purification_gap(suspect, x, y, cfg).tobytes()
