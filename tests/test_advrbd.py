import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sanitizer.config import config
from sanitizer.decisions import decide
from sanitizer.methods.advrbd import Bar, bar_unfit, consistency, enhance_epochs, identify, middle_classes, partition, standout_classes
from sanitizer.models import build_model


def _brute_partition(score, rate):
    k = max(1, round(rate * len(score)))
    ranked = sorted(range(len(score)), key=lambda i: (-score[i], i))
    out = np.zeros(len(score), bool)
    out[ranked[:k]] = True
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("rate", [0.001, 0.1, 0.2, 0.37, 0.99])
def test_partition_top_k_ties_by_index(seed, rate):
    rng = np.random.default_rng(seed)
    score = rng.integers(0, 5, size=53).astype(float)  # heavy ties
    seed_mask = partition(score, np.zeros_like(score), rate, by="robustness")
    assert seed_mask.dtype == bool
    assert seed_mask.sum() == max(1, round(rate * 53))
    np.testing.assert_array_equal(seed_mask, _brute_partition(score, rate))
    # every chosen score is >= every unchosen one
    if (~seed_mask).any():
        assert score[seed_mask].min() >= score[~seed_mask].max()


def test_partition_all_equal_takes_first_indices():
    m = partition(np.zeros(10), np.zeros(10), 0.3, by="both")
    np.testing.assert_array_equal(np.flatnonzero(m), [0, 1, 2])


def test_partition_highest_scores():
    score = np.array([0.1, 5.0, -1.0, 3.0, 2.0])
    np.testing.assert_array_equal(partition(score, np.zeros(5), 0.4, by="robustness"), [False, True, False, True, False])
    np.testing.assert_array_equal(partition(np.zeros(5), score, 0.4, by="loss"), [False, True, False, True, False])


def test_partition_both_trusts_only_what_both_signals_trust():
    # Sample 0 is the most robust but the best fitted (lowest loss): "both" must not seed it.
    robustness = np.array([9.0, 5.0, 4.0, 0.0, 1.0])
    loss = np.array([0.0, 4.0, 5.0, 9.0, 1.0])
    np.testing.assert_array_equal(partition(robustness, loss, 0.4, by="both"), [False, True, True, False, False])
    np.testing.assert_array_equal(partition(robustness, loss, 0.2, by="robustness"), [True, False, False, False, False])


def test_partition_takes_a_middle_class_share_from_the_middle_of_its_order():
    # Class 1 is easy (low losses) but holds three half-learnt samples (poisons, loss 2-4):
    # the loss-ranked seed takes exactly those as class 1's share.
    labels = np.array([0] * 8 + [1] * 11)
    loss = np.concatenate([np.linspace(5, 6, 8), [4.0, 3.0, 2.0], np.linspace(0.1, 0.0, 8)])
    plain = partition(np.zeros(19), loss, 9 / 19, by="loss", labels=labels)
    np.testing.assert_array_equal(np.flatnonzero(plain & (labels == 1)), [8])
    seed = partition(np.zeros(19), loss, 9 / 19, by="loss", labels=labels, middle=[1])
    np.testing.assert_array_equal(seed & (labels == 0), plain & (labels == 0))  # other classes untouched
    # Class 1's share stays one sample: its median by loss (6th of 11, loss 0.0714), not a poison.
    np.testing.assert_array_equal(np.flatnonzero(seed & (labels == 1)), [13])
    # The middle of the eligible samples: barring two clean ones moves it, share kept.
    eligible = np.ones(19, bool)
    eligible[[17, 18]] = False
    seed = partition(np.zeros(19), loss, 9 / 19, by="loss", eligible=eligible, labels=labels, middle=[1])
    np.testing.assert_array_equal(np.flatnonzero(seed & (labels == 1)), [12])


def test_middle_classes_are_the_gap_targets_the_clusters_miss():
    def bar(targets):
        return Bar(np.zeros(1, bool), np.zeros(4), np.array(targets, dtype=np.int64), np.array(targets, dtype=np.int64))

    np.testing.assert_array_equal(middle_classes({"gap": bar([1, 3]), "clusters": bar([3, 2])}), [1])
    np.testing.assert_array_equal(middle_classes({"gap": bar([1, 3])}), [1, 3])
    assert len(middle_classes({"clusters": bar([2])})) == 0


def test_partition_makes_up_a_class_share_the_bars_took_from_the_middle_of_its_order():
    # Class 1's share of the seed is its three highest losses (8-10: half-learnt poisons and a
    # hard image); bar the two poisons and its share is made up from the middle of its
    # remaining samples (11-18 by loss, the median 14 or 15), not from its next most trusted (11).
    labels = np.array([0] * 8 + [1] * 11)
    loss = np.concatenate([np.linspace(5, 6, 8), [4.0, 3.0, 2.0], np.linspace(1.0, 0.0, 8)])
    plain = partition(np.zeros(19), loss, 11 / 19, by="loss", labels=labels)
    np.testing.assert_array_equal(np.flatnonzero(plain & (labels == 1)), [8, 9, 10])
    eligible = np.ones(19, bool)
    eligible[[8, 9]] = False
    seed = partition(np.zeros(19), loss, 11 / 19, by="loss", eligible=eligible, labels=labels)
    np.testing.assert_array_equal(seed & (labels == 0), plain & (labels == 0))  # other classes untouched
    assert (seed & (labels == 1)).sum() == 3 and seed[10] and not seed[11]
    # Without labels, barred samples are left out, not replaced.
    assert partition(np.zeros(19), loss, 11 / 19, by="loss", eligible=eligible).sum() == 9


def test_standout_classes_are_either_signals_outliers_not_its_contrast_only_targets():
    def bar(targets, outliers):
        return Bar(np.zeros(1, bool), np.zeros(4), np.array(targets, dtype=np.int64), np.array(outliers, dtype=np.int64))

    # The clusters single out class 1 alone (the gap's view of it inverted: CIFAR-10 BadNets).
    np.testing.assert_array_equal(standout_classes({"gap": bar([], []), "clusters": bar([1], [1])}), [1])
    np.testing.assert_array_equal(standout_classes({"gap": bar([3], [3]), "clusters": bar([1, 3], [1])}), [1, 3])
    # All-to-all: every class a target by its clusters' contrast, none standing out.
    assert len(standout_classes({"gap": bar([], []), "clusters": bar([0, 1, 2, 3], [])})) == 0
    assert len(standout_classes({})) == 0


@pytest.mark.parametrize("seed", range(3))
def test_partition_both_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    r, l = rng.integers(0, 4, 40).astype(float), rng.integers(0, 4, 40).astype(float)

    def rank(v):  # larger value ranks higher; among ties the earlier index ranks higher
        order = sorted(range(len(v)), key=lambda i: (v[i], -i))
        out = [0] * len(v)
        for position, i in enumerate(order):
            out[i] = position
        return out

    weaker = np.minimum(rank(r), rank(l))
    np.testing.assert_array_equal(partition(r, l, 0.25, by="both"), _brute_partition(weaker, 0.25))


def test_identify_threshold_strict_and_barred_samples_suspected():
    c = np.array([-1.0, 0.5, 0.69, 0.7, 3.0])
    none = np.zeros(5, dtype=bool)
    np.testing.assert_array_equal(identify(c, 0.69, none), [False, False, False, True, True])
    assert not identify(c, 10, none).any()
    # A sample partition barred from D_s is suspected whatever its consistency.
    barred = np.array([True, False, False, False, False])
    np.testing.assert_array_equal(identify(c, 0.69, barred), [True, False, False, True, True])


def test_identify_with_a_scope_flags_by_consistency_only_in_target_classes():
    c = np.array([3.0, 3.0, -1.0, 3.0])
    barred = np.array([False, False, False, True])
    in_target = np.array([True, False, True, False])
    # The second sample is inconsistent but outside every target; the fourth is barred.
    np.testing.assert_array_equal(identify(c, 1.25, barred, in_target), [True, False, False, True])
    np.testing.assert_array_equal(identify(c, 1.25, barred, None), [True, True, False, True])


def test_bar_unfit_bars_only_the_suspected_targets_samples_the_suspect_does_not_fit():
    labels = np.array([1, 1, 1, 2, 2, 0])
    p_label = np.array([0.9, 0.4, 0.5, 0.1, 0.9, 0.01])  # the suspect's probability of the given label
    loss = -np.log(p_label)
    np.testing.assert_array_equal(bar_unfit(loss, labels, [1], 0.5), [False, True, False, False, False, False])
    np.testing.assert_array_equal(bar_unfit(loss, labels, [1, 2], 0.5), [False, True, False, True, False, False])
    assert not bar_unfit(loss, labels, [], 0.5).any()  # no suspected target: nothing barred


def _logits_with(probs):
    return torch.log(torch.tensor(probs, dtype=torch.float64))


def test_decide_cases():
    # 3 classes; rows: (given label, clean probs, suspected)
    probs = [
        [0.9, 0.05, 0.05],  # 0: not suspected, agrees
        [0.1, 0.8, 0.1],  # 1: not suspected, disagrees -> still keep
        [0.05, 0.05, 0.9],  # 2: suspected, confidently agrees (label 2) -> false alarm, keep
        [0.7, 0.2, 0.1],  # 3: suspected, label 1, confident 0 -> relabel to 0
        [0.3, 0.3, 0.4],  # 4: suspected, label 0, unsure -> drop
        [0.2, 0.55, 0.25],  # 5: suspected, label 2, conf 0.55 >= 0.5 -> relabel to 1
        [0.35, 0.1, 0.55],  # 6: suspected, agrees (label 2) at 0.55 >= 0.5 -> false alarm, keep
        [0.3, 0.25, 0.45],  # 7: suspected, agrees (label 2) at 0.45 < 0.5 -> still its label, keep
        [0.45, 0.25, 0.3],  # 8: suspected, label 2, predicts 0 at 0.45 < 0.5, unsure -> drop
    ]
    labels = np.array([0, 0, 2, 1, 0, 2, 2, 2, 2])
    suspected = np.array([False, False, True, True, True, True, True, True, True])
    d = decide(_logits_with(probs), labels, suspected, min_confidence=0.5, relabel=True)
    assert d.decision.tolist() == ["keep", "keep", "keep", "relabel", "drop", "relabel", "keep", "keep", "drop"]
    assert d.new_label.tolist() == [0, 0, 2, 0, 0, 1, 2, 2, 2]
    np.testing.assert_allclose(d.confidence, [0.9, 0.8, 0.9, 0.7, 0.4, 0.55, 0.55, 0.45, 0.45], rtol=1e-5)
    assert d.reason[0] == d.reason[1] == "not suspected"
    assert "predicts the given label" in d.reason[2] and d.reason[2] == d.reason[6] == d.reason[7]
    assert d.reason[3] == d.reason[5] != d.reason[4]
    assert d.reason[4] == d.reason[8] == "suspected; clean model unsure"
    # the input labels are not modified
    assert labels.tolist() == [0, 0, 2, 1, 0, 2, 2, 2, 2]
    # Without relabelling, what would be relabelled is dropped, the clean model's label kept as
    # a reviewer's suggestion; every other decision is the same.
    off = decide(_logits_with(probs), labels, suspected, min_confidence=0.5, relabel=False)
    assert off.decision.tolist() == ["keep", "keep", "keep", "drop", "drop", "drop", "keep", "keep", "drop"]
    assert off.new_label.tolist() == d.new_label.tolist()
    assert "for a reviewer to accept" in off.reason[3] and off.reason[3] == off.reason[5] != off.reason[4]


def test_decide_confidence_boundaries():
    probs = [[0.5, 0.25, 0.25], [0.49, 0.26, 0.25]]
    # softmax runs in float32, so 0.5 may land a hair below 0.5: test just under it
    logits = _logits_with(probs)
    d = decide(logits, np.array([1, 1]), np.array([True, True]), min_confidence=0.495, relabel=True)
    assert d.decision.tolist() == ["relabel", "drop"]
    d = decide(logits, np.array([1, 1]), np.array([True, True]), min_confidence=0.0, relabel=True)
    assert d.decision.tolist() == ["relabel", "relabel"]
    assert d.new_label.tolist() == [0, 0]
    # the same samples under their predicted label: kept on either side of min_confidence
    d = decide(logits, np.array([0, 0]), np.array([True, True]), min_confidence=0.495, relabel=True)
    assert d.decision.tolist() == ["keep", "keep"]


def test_decide_random_against_rule():
    rng = np.random.default_rng(0)
    n, k = 400, 5
    logits = torch.tensor(rng.normal(size=(n, k)) * 3)
    labels = rng.integers(0, k, n)
    suspected = rng.random(n) < 0.5
    d = decide(logits, labels, suspected, min_confidence=0.45, relabel=True)
    p = torch.softmax(logits, 1).numpy()
    pred, conf = p.argmax(1), p.max(1)
    for i in range(n):
        if not suspected[i] or pred[i] == labels[i]:
            exp, new = "keep", labels[i]
        elif conf[i] >= 0.45:
            exp, new = "relabel", pred[i]
        else:
            exp, new = "drop", labels[i]
        assert d.decision[i] == exp, i
        assert d.new_label[i] == new, i
    assert {"keep", "relabel", "drop"} <= set(d.decision[suspected])


def test_decide_evidence_keeps_a_suspect_whose_label_is_close_behind():
    # label 0 throughout; the clean model's other class is 2x, 4x and 100x the given label
    probs = [[0.3, 0.6, 0.1], [0.2, 0.8, 0.0], [0.0099, 0.99, 0.0001]]
    labels, suspected = np.array([0, 0, 0]), np.array([True, True, True])
    at = lambda evidence: decide(_logits_with(probs), labels, suspected, 0.5, False, evidence).decision.tolist()  # noqa: E731
    assert at(0.0) == ["drop", "drop", "drop"]  # the argmax rule
    assert at(np.log(3.0)) == ["keep", "drop", "drop"]
    assert at(np.log(5.0)) == ["keep", "keep", "drop"]
    kept = decide(_logits_with(probs), labels, suspected, 0.5, False, np.log(5.0))
    assert "less than 5.00 times" in kept.reason[0] and kept.new_label.tolist() == [0, 0, 1]
    # not suspected: kept whatever the clean model says
    assert decide(_logits_with(probs), labels, ~suspected, 0.5, False, 0.0).decision.tolist() == ["keep"] * 3


def test_consistency_is_log_prob_difference():
    torch.manual_seed(0)
    a = build_model("small_cnn", (1, 8, 8), 3).eval()
    b = build_model("small_cnn", (1, 8, 8), 3).eval()
    images = torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 3, (12,))
    c = consistency(a, b, images, labels)
    with torch.no_grad():
        x = images.float() / 255
        la = F.log_softmax(a(x), 1)[torch.arange(12), labels]
        lb = F.log_softmax(b(x), 1)[torch.arange(12), labels]
    np.testing.assert_allclose(c, (la - lb).double().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(consistency(a, a, images, labels), 0, atol=1e-6)


def _per_sample_loss(model, images, labels):
    model.eval()
    with torch.no_grad():
        return F.cross_entropy(model(images.float() / 255), labels, reduction="none").numpy()


def _enhance_problem(seed, n=200):
    """Class 0 dark, class 1 bright (learnable from D_r); the 40 D_s samples also carry a
    3x3 square of the opposite brightness (a feature the ascent can use to unlearn them)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = torch.randint(0, 100, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    images += (labels * 155).to(torch.uint8).view(-1, 1, 1, 1)
    in_seed = np.zeros(n, bool)
    in_seed[np.random.default_rng(seed).choice(n, 40, replace=False)] = True
    s = torch.from_numpy(in_seed)
    patch = torch.where(labels[s] == 1, 0, 255).to(torch.uint8).view(-1, 1, 1, 1)
    images[s, :, 5:, 5:] = patch.expand(-1, 1, 3, 3)
    return images, labels, in_seed


@pytest.mark.parametrize("seed", range(2))
def test_enhance_epochs_ascends_on_seed_descends_on_rest(seed):
    torch.manual_seed(seed)
    images, labels, in_seed = _enhance_problem(seed)
    model = build_model("small_cnn", (1, 8, 8), 2)
    cfg = config("enhance", {"enhance": {"batch_size": 32}})
    before = _per_sample_loss(model, images, labels)
    enhance_epochs(model, images, labels, in_seed, cfg, "test")
    after = _per_sample_loss(model, images, labels)
    assert not model.training
    assert np.isfinite(after).all()
    assert after[in_seed].mean() > before[in_seed].mean()
    assert after[~in_seed].mean() < before[~in_seed].mean()


def test_enhance_epochs_without_ascent_lowers_seed_loss_too():
    # control: with ascent_weight 0 it is plain descent on D_r, and D_s (same classes) also improves
    torch.manual_seed(0)
    images, labels, in_seed = _enhance_problem(0)
    in_seed_plain = np.zeros_like(in_seed)
    in_seed_plain[np.flatnonzero(~in_seed)[:40]] = True  # D_s without the extra square
    model = build_model("small_cnn", (1, 8, 8), 2)
    cfg = config("enhance", {"enhance": {"batch_size": 32, "ascent_weight": 0.0}})
    before = _per_sample_loss(model, images, labels)
    enhance_epochs(model, images, labels, in_seed_plain, cfg, "test")
    after = _per_sample_loss(model, images, labels)
    assert after[in_seed_plain].mean() < before[in_seed_plain].mean()
    assert after[~in_seed_plain].mean() < before[~in_seed_plain].mean()


def test_enhance_never_grows_barred_samples_into_the_seed():
    from sanitizer.methods.advrbd import enhance

    images, labels, in_seed = _enhance_problem(0)
    factory = lambda: build_model("small_cnn", (1, 8, 8), 2)  # noqa: E731
    torch.manual_seed(0)
    suspect = factory()
    # Rounds 1 and 2 move 80 samples each: more than the 160 - 30 unbarred rest samples.
    cfg = config("enhance", {"enhance": {"rounds": 3, "rate": 0.4, "batch_size": 32, "clean_epochs": 1}})
    train_cfg = config("train", {"train": {"epochs": 1, "batch_size": 32}})
    barred = np.zeros(len(labels), bool)
    barred[np.flatnonzero(~in_seed)[:30]] = True
    joined = enhance(suspect, factory, images, labels, in_seed, cfg, train_cfg, barred=barred).joined_round
    assert (joined[barred] == -1).all()
    assert (joined[~barred] >= 0).all()
    unbarred = enhance(suspect, factory, images, labels, in_seed, cfg, train_cfg).joined_round
    assert (unbarred[barred] >= 0).any()  # without the bar some of them do join
