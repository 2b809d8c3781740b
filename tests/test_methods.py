"""The method contract, and each algorithmic piece of PBE and PUD on tiny tensors."""

import math
import shutil

import numpy as np
import polars as pl
import pytest
import torch
from torch import nn

from conftest import CIFAR10, make_project, needs_cifar10, needs_fashion_mnist, run, write_params
from sanitizer import steps
from sanitizer.config import SECTIONS, config, section
from sanitizer.layout import Paths
from sanitizer.methods import METHODS, Detection, Method, load_all, module_names
from sanitizer.methods.pbe import adversarial_batches, agreement, purified_flags, random_subset, top_share
from sanitizer.methods.pud import feature_filter, feature_target, landing_target, pud_score, que_scores, robust_estimate
from sanitizer.pipeline import run_stage


def test_each_method_module_registers_the_method_it_is_named_after():
    load_all()
    assert module_names() == METHODS.names() == ["advrbd", "clustering", "confident", "loss", "pbe", "pud", "spectral"]
    for name in METHODS.names():
        method = METHODS.get(name)
        assert method.name == name and method.suspicion and (method.section is None or method.section in SECTIONS)


# --- the training steps every method shares ---


def test_adversarial_stays_in_the_budget_and_raises_the_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).train()
    x, y = torch.rand(64, 1, 3, 4), torch.randint(0, 3, (64,))
    eps = 0.05
    x_adv = steps.adversarial(model, x, y, eps, 7, torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    ce = nn.functional.cross_entropy
    assert ce(model(x_adv), y) > ce(model(x), y)
    assert model.training and all(p.grad is None for p in model.parameters())  # mode restored, weights untouched


def test_adversarial_steps_are_a_fifth_of_eps():
    """With 1 step from a random start the move from the start is exactly eps/5 per pixel
    (unless clamped by the ball or the image range)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    x, y = torch.full((8, 1, 2, 2), 0.5), torch.zeros(8, dtype=torch.long)
    eps = 0.1
    start = 0.5 + (torch.rand(x.shape, generator=torch.Generator().manual_seed(3)) * 2 - 1) * eps
    x_adv = steps.adversarial(model, x, y, eps, 1, torch.Generator().manual_seed(3))
    moved = (x_adv - start).abs()
    inside = (start - 0.5).abs() < eps - eps / 5
    assert torch.allclose(moved[inside], torch.full_like(moved[inside], eps / 5), atol=1e-6)


def test_ascent_is_minus_the_loss_up_to_its_floor():
    model = nn.Linear(2, 2)
    x, y = torch.randn(5, 2), torch.randint(0, 2, (5,))
    ce = nn.functional.cross_entropy(model(x), y)
    assert torch.isclose(steps.ascent(model, x, y, floor=100.0), -ce)
    assert steps.ascent(model, x, y, floor=1e-3).item() == pytest.approx(-1e-3)


def test_ema_update_moves_the_teacher_a_share_toward_the_student():
    teacher, student = nn.Linear(3, 1), nn.Linear(3, 1)
    before = teacher.weight.detach().clone()
    steps.ema_update(teacher, student, 0.99)
    assert torch.allclose(teacher.weight, 0.99 * before + 0.01 * student.weight.detach())
    steps.ema_update(teacher, student, 0.0)
    assert torch.equal(teacher.weight, student.weight)


# --- PBE ---


def test_agreement_is_one_for_the_same_direction_and_zero_for_opposite():
    a = torch.tensor([[1.0, 2.0, 3.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    b = torch.tensor([[2.0, 4.0, 6.0], [-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(agreement(a, b), [1.0, 0.0, 0.5], atol=1e-12)


def test_subset_schedule():
    score = np.array([0.1, 0.9, 0.5, 0.9, -np.inf, 0.3])
    # The top half: ties go to the earlier sample; -inf is never taken.
    assert top_share(score, 0.5).tolist() == [1, 2, 3]
    assert top_share(score, 1.0).tolist() == [0, 1, 2, 3, 5]
    picked = random_subset(100, 0.05, torch.Generator().manual_seed(0), eligible=np.arange(100) >= 50)
    assert len(picked) == 5 and (picked >= 50).all() and torch.equal(picked, picked.sort().values)
    assert adversarial_batches(0, 0.1, 1000, 100) == math.inf
    assert adversarial_batches(1, 0.1, 1000, 100) == 1  # a tenth of the first epoch's 10 batches


def test_suspected_when_purification_removes_the_fit():
    labels = torch.tensor([0, 0, 1, 1])
    suspect = torch.tensor([[5.0, 0], [5.0, 0], [0, 5.0], [5.0, 0]])
    purified = torch.tensor([[5.0, 0], [0, 5.0], [0, 5.0], [0, 5.0]])
    # Sample 1: suspect fits label 0, purified says 1. Sample 3: the suspect never fitted it.
    assert purified_flags(suspect, purified, labels).tolist() == [False, True, False, False]


# --- PUD ---


def test_pud_score_subtracts_half_where_labels_differ():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.2]])
    b = torch.tensor([[1.0, 0.0], [0.2, 1.0]])
    expected = agreement(a, b) - np.array([0.0, 0.5])
    np.testing.assert_allclose(pud_score(a, b), expected)


def test_landing_target_finds_a_dominant_class_and_none_when_even():
    even = np.full(10, 0.1)
    target, anomaly = landing_target(even, 1000, 3.5)
    assert target is None and np.allclose(anomaly, 0)
    skewed = np.array([0.05] * 9 + [0.55])
    target, anomaly = landing_target(skewed / skewed.sum(), 1000, 3.5)
    assert target == 9 and anomaly[9] > 3.5


def blobs(minorities: dict, n=400, seed=3):
    """Six classes, one Gaussian each far apart in 12 dimensions; class k also holds a far
    population of `minorities[k]` of its samples (poisons, or covers), each out its own way."""
    g = torch.Generator().manual_seed(seed)
    features, labels = [], []
    for k in range(6):
        centre = torch.zeros(12)
        centre[k] = 40.0
        x = torch.randn(n, 12, generator=g) + centre
        far = int(minorities.get(k, 0) * n)
        x[:far, 6 + k] += 12.0
        features.append(x)
        labels += [k] * n
    return torch.cat(features), np.array(labels)


NO_PATTERN = {"pattern_kurtosis": None, "cluster_dims": 4}


def test_pud_names_the_class_whose_second_population_is_largest_and_none_for_clean_or_all_to_all():
    part = config("partition", {"partition": NO_PATTERN})
    images = np.zeros((2400, 1, 2, 2), dtype=np.uint8)  # no pattern test here
    features, labels = blobs({2: 0.3, 4: 0.03})  # a target's poisons; another class's covers
    target, named, by = feature_target(features, images, labels, 6, part)
    assert named == [2, 4] and target == 2 and by == "activation clusters"
    clean, clean_labels = blobs({})
    assert feature_target(clean, images, clean_labels, 6, part) == (None, [], "")
    features, labels = blobs({k: 0.1 for k in range(6)})  # all-to-all: no one target
    target, named, _ = feature_target(features, images, labels, 6, part)
    assert target is None and len(named) > 3


def test_pud_takes_the_class_the_cover_classes_point_toward_as_the_target():
    from test_baselines import covered

    features, labels, _, _ = covered()
    part = config("partition", {"partition": NO_PATTERN})
    assert feature_target(features, np.zeros((6000, 1, 2, 2), dtype=np.uint8), labels, 10, part) == (3, [3], "shift")


def test_robust_estimate_ignores_a_far_cluster_of_a_third():
    g = torch.Generator().manual_seed(0)
    clean = torch.randn(200, 3, generator=g, dtype=torch.float64)
    poison = torch.randn(100, 3, generator=g, dtype=torch.float64) * 0.1 + 8
    mu, cov, keep = robust_estimate(torch.cat([clean, poison]))
    assert mu.abs().max() < 0.5 and (keep < 200).all()
    assert torch.linalg.eigvalsh(cov).max() < 3


def test_que_scores_match_a_brute_force_reference():
    g = torch.Generator().manual_seed(1)
    features = torch.cat([torch.randn(60, 5, generator=g), torch.randn(20, 5, generator=g) * 0.2 + torch.tensor([4.0, 0, 0, 0, 0])])
    alpha = 4.0
    tau, keep = que_scores(features, dims=5, alpha=alpha)
    # Reference: the same projection and robust fit, then Q by the matrix exponential, one sample at a time.
    x = features.double() - features.double().mean(0)
    _, _, vt = torch.linalg.svd(x, full_matrices=False)
    proj = x @ vt.T
    mu, cov, _ = robust_estimate(proj)
    w = torch.linalg.inv(torch.linalg.cholesky(cov)).T  # any whitening works up to rotation, which QUE ignores
    z = (proj - mu) @ w
    s = z.T @ z / len(z)
    norm = torch.linalg.matrix_norm(s, ord=2)
    q = torch.linalg.matrix_exp(alpha * (s - torch.eye(5, dtype=s.dtype)) / (norm - 1))
    ref = [float(z[i] @ q @ z[i] / torch.trace(q)) for i in range(len(z))]
    np.testing.assert_allclose(tau, ref, rtol=1e-6)
    assert tau[60:].min() > np.quantile(tau[keep], 0.99)  # the off-cluster rows score highest


def test_feature_filter_bars_the_targets_far_population_and_nothing_outside_the_target():
    features, labels = blobs({2: 0.1, 4: 0.1})  # poisons in the target 2; class 4 is not looked at
    cfg = config("pud", {"pud": {"feature_dims": 12}})
    score, barred = feature_filter(features, torch.from_numpy(labels), 2, cfg)
    poisons = np.zeros(len(labels), dtype=bool)
    poisons[800:840] = True  # class 2's first 10 %, the far population
    assert barred[poisons].all()
    assert not barred[labels != 2].any() and (score[labels != 2] == 0).all()
    # The robust half's 99th percentile lies inside the clean tail: a few percent of the clean part go too.
    assert barred[(labels == 2) & ~poisons].mean() < 0.1


def test_unlearning_raises_the_loss_of_the_forgotten_samples():
    from sanitizer.methods.pud import unlearning

    torch.manual_seed(0)
    images = (torch.rand(32, 1, 2, 2) * 255).to(torch.uint8)
    labels = torch.randint(0, 2, (32,))
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    anchor = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    anchor.load_state_dict(model.state_dict())

    class Cfg:
        batch_size, unlearn_weight, unlearn_floor, l1 = 32, 1.0, 10.0, 0.0

    forget = torch.arange(32)
    extra = unlearning(anchor, images, labels, forget, Cfg, torch.Generator().manual_seed(0))
    x = images.float() / 255
    before = nn.functional.cross_entropy(model(x), labels)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(5):
        steps.step(opt, extra(model))
    assert nn.functional.cross_entropy(model(x), labels) > before


# --- the contract: a method is one file plus its params section ---


@section("tiny_loss")
class TinyLossConfig:
    share: float = 0.05


class TinyLoss(Method):
    """A small method, defined here and nowhere in the project: flag the lowest-loss share."""

    name = "tiny_loss"
    section = "tiny_loss"
    suspicion = "log p(y|x) under the suspect"
    signals = {"margin": "top-1 minus top-2 logit of the suspect"}

    def detect(self, inputs):
        from sanitizer.training import log_prob_at_label, predict

        fit = log_prob_at_label(inputs.suspect, inputs.data.x, inputs.data.y)
        top2 = predict(inputs.suspect, inputs.data.x).topk(2, 1).values
        flagged = np.zeros(len(fit), bool)
        flagged[np.argsort(-fit, kind="stable")[: round(inputs.cfg.share * len(fit))]] = True
        return Detection(fit, flagged, {"margin": (top2[:, 0] - top2[:, 1]).double().numpy()}, {"share": inputs.cfg.share})


DEFENSE = ["train_suspect", "score", "partition", "enhance", "identify", "detect", "train_clean", "relabel"]


def run_pipeline(root, params, hide_truth: bool = True):
    """Every stage in-process; with `hide_truth`, the defense stages run with the ground truth
    moved away, so reading it would fail."""
    run_stage("ingest", params, root)
    paths = Paths(root)
    hidden = root.parent / f"{root.name}-hidden"
    if hide_truth:
        hidden.mkdir()
        for name in ("truth", "asr"):
            shutil.move(getattr(paths, name), hidden / name)
    for name in DEFENSE:
        run_stage(name, params, root)
    if hide_truth:
        for name in ("truth", "asr"):
            shutil.move(hidden / name, getattr(paths, name))
    run_stage("train_oracle", params, root)
    run_stage("evaluate", params, root)


TINY = {"data": {"limit": 600}, "train": {"epochs": 2}, "relabel": {"epochs": 1}, "evaluate": {"robust_samples": 100}}


@needs_fashion_mnist
def test_a_method_registered_from_outside_runs_the_whole_pipeline(tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS._items, "tiny_loss", TinyLoss)
    params = tmp_path / "params.yaml"
    write_params(params, {**TINY, "method": {"name": "tiny_loss"}})
    with params.open("a") as f:
        f.write("tiny_loss:\n  share: 0.1\n")
    run_pipeline(tmp_path / "data", params, hide_truth=False)
    paths = Paths(tmp_path / "data")
    suspicion = pl.read_parquet(paths.suspicion)
    assert suspicion.columns == ["sample_id", "suspicion", "suspected", "trigger", "margin"]
    assert not suspicion["trigger"].any()  # a method that finds no trigger in images flags none
    assert suspicion["suspected"].sum() == 60
    import json

    metrics = json.loads(paths.metrics.read_text())
    assert metrics["method"] == {"name": "tiny_loss", "share": 0.1}
    assert set(metrics["detection"]["auroc"]) == {"suspicion", "margin", "loss_baseline"}
    # The method's suspicion is the loss baseline itself, so their AUROCs agree.
    assert metrics["detection"]["auroc"]["suspicion"] == pytest.approx(metrics["detection"]["auroc"]["loss_baseline"], abs=1e-9)
    decisions = pl.read_parquet(paths.decisions)
    assert (decisions.filter(~suspicion["suspected"])["decision"] == "keep").all()


def test_a_method_may_leave_out_a_declared_signal_but_not_return_an_undeclared_one(tmp_path):
    """AdvrBD's Eq. 3 signal exists only when the score stage computed R; the manifest then
    declares only what the method returned."""
    from sanitizer.manifest import meta_value
    from sanitizer.methods.base import check_detection, signal_names, write_suspicion

    n = 4
    det = Detection(suspicion=np.arange(n, dtype=float), suspected=np.zeros(n, bool))  # no margin
    write_suspicion(det, TinyLoss, np.arange(n), tmp_path / "suspicion.parquet")
    assert signal_names(tmp_path / "suspicion.parquet") == ["suspicion"]
    assert meta_value(tmp_path / "suspicion.parquet", "signals") == {"suspicion": TinyLoss.suspicion}
    det.signals["c"] = np.ones(n)
    with pytest.raises(ValueError, match=r"returned signals \['c'\] but declares only \['margin'\]"):
        check_detection(det, TinyLoss, n)


def test_an_unknown_method_fails_before_any_work(tmp_path):
    from sanitizer.errors import SanitizerError

    params = tmp_path / "params.yaml"
    write_params(params, {"method": {"name": "pbee"}})
    with pytest.raises(SanitizerError, match=r"\[method\].name must be one of \['advrbd', 'clustering', 'confident', 'loss', 'pbe', 'pud', 'spectral'\], got 'pbee'"):
        run_stage("ingest", params, tmp_path / "data")
    assert not (tmp_path / "data").exists()


TINY_METHODS = {
    "pbe": {"pbe": {"epochs": 1, "schedule": [0.3]}},
    "pud": {"pud": {"epochs": 1, "schedule": [0.3], "target_samples": 200, "teacher_epochs": 1}},
}
DATASETS = {
    "fashion-mnist": pytest.param({}, marks=needs_fashion_mnist),
    # Minutes on two cores: in the slow suite.
    "cifar10": pytest.param({"data": {"source": "cifar10", "path": str(CIFAR10)}, "model": {"arch": "small_cnn"}}, marks=[needs_cifar10, pytest.mark.slow]),
}


@pytest.mark.parametrize("dataset", DATASETS.values(), ids=DATASETS.keys())
@pytest.mark.parametrize("method", sorted(TINY_METHODS))
def test_pbe_and_pud_through_dvc_and_again_without_the_ground_truth_give_the_same_bytes(tmp_path, method, dataset):
    """`dvc repro` with the method picked, then a second run from scratch stage by stage with
    the ground truth moved away: every manifest and the purified model are byte-identical."""
    overrides = {**TINY, **TINY_METHODS[method], "method": {"name": method}}
    for section, values in dataset.items():
        overrides[section] = {**overrides.get(section, {}), **values}
    proj = make_project(tmp_path / "proj", overrides)
    run(["dvc", "repro"], proj)
    root = tmp_path / "by_hand" / "data"
    run_pipeline(root, proj / "params.yaml")
    first, second = Paths(proj / "data"), Paths(root)
    for artefact in ("scores", "suspicion", "decisions"):
        assert getattr(first, artefact).read_bytes() == getattr(second, artefact).read_bytes(), artefact
    assert (first.method_models / "purified.pt").read_bytes() == (second.method_models / "purified.pt").read_bytes()
    import json

    metrics = json.loads(first.metrics.read_text())
    assert metrics["method"]["name"] == method and set(metrics["purified"]) == {"acc", "asr", "robust_acc"}
    if method == "pud":
        from sanitizer.store import SampleStore

        classes = SampleStore(first.store).classes
        assert metrics["method"]["target"] in ["none", *classes] and set(metrics["method"]["landing_share"]) == set(classes)


def test_a_placeholder_read_as_an_artefact_names_the_method_it_belongs_to(tmp_path):
    """With another method picked, AdvrBD's stages leave placeholders; reading one (a stage run
    by hand after switching back) says so instead of calling the file damaged."""
    from sanitizer.errors import SanitizerError
    from sanitizer.layout import stage
    from sanitizer.manifest import read_manifest
    from sanitizer.pipeline import _placeholders
    from sanitizer.training import load_model

    paths = Paths(tmp_path)
    _placeholders(stage("enhance"), "pbe")(None, paths)
    said = r"was not computed: stage enhance belongs to method advrbd, and params.yaml \[method\].name is pbe; pick that method and re-run"
    with pytest.raises(SanitizerError, match=r"rounds.parquet " + said):
        read_manifest(paths.rounds)
    with pytest.raises(SanitizerError, match=r"enhanced.pt " + said):
        load_model(paths.enhanced, "small_cnn", (1, 28, 28), 10)
