import numpy as np
import polars as pl
import pytest
import torch

from sanitizer.config import config
from sanitizer.methods.advrbd import partition
from sanitizer.errors import SanitizerError
from sanitizer.models import build_model
from sanitizer.purification import class_anomaly, purification_gap, purify
from sanitizer.training import fit


def _backdoor(amplitude, n=1500, poison_rate=0.1, seed=0, patch=0):
    """Two bold classes (bright left vs right half) and a dirty-label trigger: a checkerboard
    of the given amplitude (0..255) over the whole image turns class 0 into class 1, or with
    `patch`, a white square of that side in the bottom-right corner."""
    g = np.random.default_rng(seed)
    labels = g.integers(0, 2, n)
    images = g.normal(60, 20, (n, 1, 28, 28))
    images[labels == 0, :, :, :14] += 120
    images[labels == 1, :, :, 14:] += 120
    poison = np.zeros(n, bool)
    poison[g.choice(np.flatnonzero(labels == 0), int(poison_rate * n), replace=False)] = True
    if patch:
        images[np.ix_(poison, [0], range(28 - patch, 28), range(28 - patch, 28))] = 255
    else:
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
    with pytest.raises(SanitizerError, match="no sample may seed D_s.*partition.max_gap, partition.cluster_anomaly"):
        partition(np.zeros(10), np.arange(10.0), 0.2, by="loss", eligible=np.arange(10) < 8)


@pytest.mark.parametrize("key,value", [("eps", 1.5), ("fraction", 0.0), ("epochs", 0), ("steps", 0)])
def test_purify_config_rejects_bad_values(key, value):
    with pytest.raises(SanitizerError, match=rf"\[purify\]\.{key}"):
        config("purify", {"purify": {key: value}})


@pytest.mark.parametrize("key,value", [("max_gap", -0.5), ("target_gap", -1.0), ("min_anomaly", -1.0)])
def test_partition_config_rejects_bad_gap_values(key, value):
    with pytest.raises(SanitizerError, match=rf"\[partition\]\.{key}"):
        config("partition", {"partition": {key: value}})


def test_class_anomaly_is_the_mad_index_of_each_class_share_of_high_gaps():
    # 1,000 samples per class; per-class share with gap > 2: four classes at 1 %, four at 2 %,
    # a hard class at 8 % and the target at 30 %.
    shares = [0.01, 0.01, 0.01, 0.01, 0.02, 0.02, 0.02, 0.02, 0.08, 0.30]
    labels = np.repeat(np.arange(10), 1000)
    gap = np.concatenate([np.where(np.arange(1000) < s * 1000, 3.0, 0.5) for s in shares])
    anomaly = class_anomaly(gap, labels, 10, level=2.0)
    mad = 1.4826 * 0.01  # median share 2 %, median absolute deviation 1 %
    np.testing.assert_allclose(anomaly[[0, 8, 9]], np.array([-0.01, 0.06, 0.28]) / mad)
    assert anomaly[9] > 10 > anomaly[8]


def test_class_anomaly_of_a_stray_high_gap_stays_small():
    # Median share 0 and MAD 0: the binomial noise floor keeps the index finite and low.
    labels = np.repeat(np.arange(10), 1000)
    assert (class_anomaly(np.zeros(10000), labels, 10, level=2.0) == 0).all()
    gap = np.zeros(10000)
    gap[0] = 5.0
    np.testing.assert_allclose(class_anomaly(gap, labels, 10, level=2.0)[0], 1.0)


def _partition_project(tmp_path):
    """A store of 4 classes x 10 samples: class 3 (the target) has 6 high gaps, class 1 one."""
    from sanitizer.manifest import write_manifest
    from sanitizer.layout import Paths
    from sanitizer.store import RawDataset, write_store

    paths = Paths(tmp_path)
    ids = np.array([f"s{i:02d}" for i in range(40)])
    labels = np.repeat(np.arange(4), 10)
    raw = RawDataset(np.zeros((40, 1, 2, 2), np.uint8), labels, np.array(["train"] * 40), ids, ["a", "b", "c", "d"], "toy")
    write_store(paths.store, raw)
    gap = np.zeros(40)
    gap[30:36] = 3.0
    gap[10] = 3.0
    loss = np.arange(40.0)[::-1] % 10  # within each class, the first samples look most trusted
    write_manifest(pl.DataFrame({"sample_id": ids, "score": np.zeros(40), "loss": loss, "gap": gap}), paths.scores, "score")
    return paths


def test_partition_stage_bars_high_gap_samples_of_a_suspected_target_class(tmp_path):
    from sanitizer.layout import stage
    from sanitizer.manifest import meta_value, read_manifest
    from sanitizer.pipeline import StageParams
    from stages.partition import run

    paths = _partition_project(tmp_path)
    partition_stage = lambda params, paths: run(StageParams(stage("partition"), params), paths)  # noqa: E731
    # Anomaly index of class d: (0.6 - 0.05) / max(MAD 0.074, noise floor 0.1) = 5.5; class b: 0.5.
    # (no suspect model here: the activation-cluster filter is tested in test_baselines.py)
    gap_only = {"rate": 0.5, "by": "loss", "max_gap": 1.25, "min_anomaly": 3, "cluster_anomaly": None, "cluster_contrast": None, "cluster_valley": None}
    partition_stage({"partition": {**gap_only, "target_fit": None}}, paths)
    subset = read_manifest(paths.partition, ["subset"])["subset"].to_numpy()
    assert (subset[30:36] == "barred").all() and (subset != "barred").sum() == 34
    assert subset[10] == "seed"  # a high gap outside the suspected class is no reason to bar
    assert meta_value(paths.partition, "suspected_targets") == ["d"]
    # The seed is the top 20 by loss (5 per class); d's share comes from the middle of its 4
    # samples left (d is named by the gap alone), all 4 of them.
    assert (subset == "seed").sum() == 20 - 1 and (subset[36:40] == "seed").all()
    # target_fit: in d, every sample the suspect gives its label less than 0.5 (loss > ln 2) is
    # barred too; only s39 (loss 0) is fitted. Other classes' unfitted samples are not.
    partition_stage({"partition": {**gap_only, "target_fit": 0.5}}, paths)
    subset = read_manifest(paths.partition, ["subset"])["subset"].to_numpy()
    assert (subset[30:39] == "barred").all() and subset[39] != "barred" and (subset[:30] != "barred").all()
    partition_stage({"partition": {"rate": 0.5, "by": "loss", "max_gap": 1.25, "cluster_anomaly": None, "cluster_contrast": None, "cluster_valley": None}}, paths)  # min_anomaly 10: nothing flagged
    plain = read_manifest(paths.partition, ["subset"])["subset"].to_numpy()
    partition_stage({"partition": {"rate": 0.5, "by": "loss", "max_gap": None, "cluster_anomaly": None, "cluster_contrast": None, "cluster_valley": None}}, paths)  # no filter
    assert (plain == read_manifest(paths.partition, ["subset"])["subset"].to_numpy()).all()
    assert set(plain) == {"seed", "rest"} and meta_value(paths.partition, "suspected_targets") == []


def test_gap_from_a_given_suspect_loss_matches_the_computed_one(backdoored):
    from sanitizer.training import log_prob_at_label

    suspect, x, y, _ = backdoored
    cfg = config("purify", {"purify": {"fraction": 0.1, "epochs": 1}})
    given = purification_gap(suspect, x, y, cfg, suspect_loss=-log_prob_at_label(suspect, x, y))
    assert given.tobytes() == purification_gap(suspect, x, y, cfg).tobytes()
