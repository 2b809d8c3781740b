"""The baseline methods of the grid (spectral signatures, activation clustering, confident
learning): their rules on planted data, and each through the detect stage on a real suspect."""

import numpy as np
import polars as pl
import pytest
import torch
from conftest import needs_fashion_mnist, write_params

from sanitizer.layout import Paths
from sanitizer.config import config
from sanitizer.methods.advrbd import bar_by_clusters
from sanitizer.methods.clustering import cluster_scores, gaussian_separation, separation, split
from sanitizer.methods.confident import fold_of
from sanitizer.methods.spectral import class_scores, top_per_class
from sanitizer.metrics import mad_anomaly
from sanitizer.pipeline import run_stage


def planted(n_clean=90, n_poison=10, dims=16, shift=6.0, seed=0):
    """Class 0: clean samples plus poisons shifted along one direction; class 1: clean only."""
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(dims, generator=g)
    direction /= direction.norm()
    clean0 = torch.randn(n_clean, dims, generator=g)
    poison = torch.randn(n_poison, dims, generator=g) + shift * direction
    clean1 = torch.randn(n_clean + n_poison, dims, generator=g) + 3.0
    features = torch.cat([clean0, poison, clean1])
    labels = np.array([0] * (n_clean + n_poison) + [1] * (n_clean + n_poison))
    is_poison = np.array([False] * n_clean + [True] * n_poison + [False] * (n_clean + n_poison))
    return features, labels, is_poison


def test_spectral_scores_put_the_planted_poisons_on_top_of_their_class():
    features, labels, is_poison = planted()
    scores = class_scores(features, labels)
    for k in (0, 1):
        assert scores[labels == k].mean() == pytest.approx(1.0)
    flagged = top_per_class(scores, labels, 0.1)
    assert flagged[labels == 0].sum() == 10 and flagged[labels == 1].sum() == 10
    assert (flagged & is_poison).sum() == 10  # in class 0 the top tenth is exactly the poisons


def test_clustering_splits_the_poisoned_class_and_leaves_a_clean_one_whole():
    features, labels, is_poison = planted()
    margin, small, share = cluster_scores(features, labels, dims=10)
    flagged = small & (share <= 0.35)
    assert np.array_equal(flagged, is_poison)
    # The clean class splits near the middle, which the size rule does not call a backdoor.
    assert share[labels == 1][0] > 0.35
    assert margin[is_poison].min() > margin[(labels == 0) & ~is_poison].max()


def test_separation_singles_out_the_class_that_holds_two_populations():
    # Five classes of one Gaussian each; class 3 also holds a far population (the poisons).
    g = torch.Generator().manual_seed(1)
    blobs = [torch.randn(120, 8, generator=g) + 4 * k for k in range(5)]
    far = torch.randn(40, 8, generator=g) + 4 * 3 + torch.tensor([9.0] + [0.0] * 7)
    features = torch.cat([*blobs, far])
    labels = np.array([k for k in range(5) for _ in range(120)] + [3] * 40)
    sep, small, _ = separation(features, labels, 6, dims=4)  # class 5 has no sample
    assert sep[5] == 0 and np.argmax(sep) == 3
    anomaly = mad_anomaly(sep[:5], 1e-12)
    assert anomaly[3] > 3.5 and (np.delete(anomaly, 3) < 3.5).all()
    # Judged against a reference instead: its median and spread, not the values' own.
    assert np.allclose(mad_anomaly(np.array([2.0, 9.0]), 1e-12, np.array([0.0, 1.0, 2.0, 3.0, 4.0])), [0.0, 7 / 1.4826])
    assert np.array_equal(np.flatnonzero(small & (labels == 3)), np.arange(600, 640))  # exactly the far ones
    # A clean class splits into two halves, not into a far minority.
    assert all(0.3 < small[labels == k].mean() <= 0.5 for k in (0, 1, 2, 4))
    # The split, and so the verdict, is the same on every run.
    sep2, small2, _ = separation(features, labels, 6, dims=4)
    assert np.array_equal(sep, sep2) and np.array_equal(small, small2)


def test_a_far_minority_off_the_first_component_is_split_off():
    """A class longest along its first component (std 4) holds a far minority along another
    direction: 2-means started on the first component halves the class, and only a start on a
    later component finds the minority; its separation is then judged against a Gaussian's
    split in the same direction, not across the first component."""
    g = torch.Generator().manual_seed(3)
    clean = torch.randn(600, 8, generator=g) * torch.tensor([4.0] + [1.0] * 7)
    far = torch.randn(30, 8, generator=g) + torch.tensor([0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    features, labels = torch.cat([clean, far]), np.zeros(630, dtype=int)
    first, _, _ = split(features, 4)
    assert first[600:].sum() < 5 and first.sum() > 200  # the first start halves the class
    sep, small, gaussian = separation(features, labels, 1, dims=4)
    assert np.array_equal(np.flatnonzero(small), np.arange(600, 630))
    assert sep[0] / gaussian[0] > 3
    sep, small, gaussian = separation(clean, labels[:600], 1, dims=4)
    assert sep[0] / gaussian[0] < 1.5 and 0.3 < small.mean() <= 0.5


def test_a_far_cluster_lumped_with_part_of_its_class_is_found_one_level_down():
    """A class with a second mode of its own (100 samples off along its long axis) and a tight
    far cluster of poisons beside that mode: 2-means on the whole class splits off mode and
    poisons together, unconvincingly; inside that side, the poisons come apart and, against the
    rest of the class, stand out clearly (Fashion-MNIST Blend all-to-all's Trouser)."""
    g = torch.Generator().manual_seed(4)
    main = torch.randn(900, 8, generator=g) * torch.tensor([2.0] + [1.0] * 7)
    mode = torch.randn(100, 8, generator=g) + torch.tensor([6.0] + [0.0] * 7)
    poisons = torch.randn(100, 8, generator=g) * 0.3 + torch.tensor([6.0, 7.5] + [0.0] * 6)
    features, labels = torch.cat([main, mode, poisons]), np.zeros(1100, dtype=int)
    is_poison = np.arange(1100) >= 1000
    sep, small, gaussian = separation(features, labels, 1, dims=4)
    assert sep[0] / gaussian[0] < 3 and small.sum() > 200 and small[is_poison].all()  # lumped, unconvincing
    cfg = config("partition", {"partition": {"cluster_dims": 4, "cluster_anomaly": None}})
    bar = bar_by_clusters(features, labels, 1, cfg)
    assert bar.targets.tolist() == [0] and bar.contrast[0] > 3 and np.array_equal(bar.barred, is_poison)
    # Without the poisons, neither level finds anything.
    clean = bar_by_clusters(features[:1000], labels[:1000], 1, cfg)
    assert len(clean.targets) == 0 and clean.contrast[0] < 2


def _elongated_classes(seed: int, n: int, step: float, poisons: int, shift: float):
    """Ten Gaussian classes of `n` samples, class k stretched 1 + k * `step` along its first
    direction, and `poisons` more in class 4, `shift` off along its second: features, labels,
    which are poisons, and the generator (to draw more from it)."""
    g = torch.Generator().manual_seed(seed)
    classes = [torch.randn(n, 8, generator=g) * torch.tensor([1.0 + step * k] + [1.0] * 7) for k in range(10)]
    far = torch.randn(poisons, 8, generator=g) + torch.tensor([0.0, shift] + [0.0] * 6)
    labels = np.concatenate([np.repeat(np.arange(10), n), np.full(poisons, 4)])
    return torch.cat([*classes, far]), labels, np.arange(len(labels)) >= 10 * n, g


def test_a_target_half_filled_with_poisons_stands_out_along_its_clusters_axis():
    """Ten classes of different elongation; the poisons are 49 % of class 4 (BadNets 10 % into
    one Fashion-MNIST class). With half the class theirs, the class's own variance along the
    split is mostly the gap between the two populations: in all dimensions its clusters lie
    neither unusually far apart for the class's shape nor for the other classes; along their
    axis alone they do, by both."""
    from sanitizer.methods.clustering import axis_contrast

    features, labels, is_poison, _ = _elongated_classes(5, 600, 0.3, 580, 6.0)
    cfg = config("partition", {"partition": {"cluster_dims": 4}})
    sep, small, gaussian = separation(features, labels, 10, dims=4)
    assert np.array_equal(small[labels == 4], is_poison[labels == 4])  # 2-means finds them; but is it a target?
    assert mad_anomaly(sep, 1e-12)[4] < cfg.cluster_anomaly and sep[4] / gaussian[4] < cfg.cluster_contrast
    axis = axis_contrast(features, labels, small, 10, dims=4)
    assert axis[4] > cfg.cluster_contrast and np.delete(axis, 4).max() < 1.5
    bar = bar_by_clusters(features, labels, 10, cfg)
    assert bar.targets.tolist() == [4] and bar.outliers.tolist() == [4] and np.array_equal(bar.barred, is_poison)
    clean = bar_by_clusters(features[:6000], labels[:6000], 10, cfg)
    assert len(clean.targets) == 0 and not clean.barred.any()


def test_a_half_learnt_population_stands_out_by_its_contrast_and_its_valley_together():
    """Ten classes of different elongation; class 4 holds a third of its samples as a second
    population only 4 standard deviations off (CIFAR-10 WaNet's half-learnt poisons in
    automobile). Its split is neither far apart in the raw, nor for its own shape, nor along its
    axis, nor empty between; but for its own shape it stands out from the other classes' splits
    both in its contrast and in how much emptier its valley is. A class of another shape (flat
    along one direction) stands out in its contrast alone and is no target."""
    from sanitizer.methods.clustering import axis_contrast, valleys

    features, labels, is_poison, g = _elongated_classes(0, 3000, 0.25, 1500, 4.0)
    classes = list(features[~is_poison].split(3000))
    cfg = config("partition", {"partition": {"cluster_dims": 4}})
    sep, small, gaussian = separation(features, labels, 10, dims=4)
    contrast, valley = sep / gaussian, valleys(features, labels, small, 10, 4)
    assert mad_anomaly(sep, 1e-12)[4] < cfg.cluster_anomaly and contrast[4] < cfg.cluster_contrast
    assert axis_contrast(features, labels, small, 10, dims=4)[4] < cfg.cluster_contrast and valley[4] > cfg.cluster_valley
    assert mad_anomaly(contrast, 1e-12)[4] > cfg.cluster_anomaly and mad_anomaly(-valley, 1e-12)[4] > cfg.cluster_anomaly
    bar = bar_by_clusters(features, labels, 10, cfg)
    assert bar.targets.tolist() == [4] and bar.outliers.tolist() == [4]
    assert bar.barred[is_poison].mean() > 0.95 and bar.barred[~is_poison].sum() < 100
    assert len(bar_by_clusters(features[~is_poison], labels[~is_poison], 10, cfg).targets) == 0
    flat = classes[4].clone()
    flat[:, 0] = (torch.rand(3000, generator=g) - 0.5) * 8
    features = torch.cat([*classes[:4], flat, *classes[5:]])
    sep, small, gaussian = separation(features, labels[:30000], 10, dims=4)
    assert mad_anomaly(sep / gaussian, 1e-12)[4] > cfg.cluster_anomaly
    assert mad_anomaly(-valleys(features, labels[:30000], small, 10, 4), 1e-12)[4] < cfg.cluster_anomaly
    assert len(bar_by_clusters(features, labels[:30000], 10, cfg).targets) == 0


def test_a_separate_population_out_along_the_class_long_axis_is_found_by_its_valley():
    """A class longest along its first component (std 2.5) holds 80 tight poisons 3.6 of its
    standard deviations out along that axis: a Gaussian of the class's own shape splits nearly
    as far apart there, so the contrast stays under its bar, but no sample lies in the space
    between the poisons and the class (Fashion-MNIST Blend all-to-all's Bag)."""
    from sanitizer.methods.clustering import valley

    g = torch.Generator().manual_seed(7)
    clean = torch.randn(1000, 8, generator=g) * torch.tensor([2.5] + [1.0] * 7)
    poisons = torch.randn(80, 8, generator=g) * 0.5 + torch.tensor([9.0] + [0.0] * 7)
    features, labels = torch.cat([clean, poisons]), np.zeros(1080, dtype=int)
    cfg = config("partition", {"partition": {"cluster_dims": 4}})
    bar = bar_by_clusters(features, labels, 1, cfg)
    assert bar.contrast[0] < cfg.cluster_contrast and bar.valley[0] < cfg.cluster_valley
    assert bar.targets.tolist() == [0] and bar.barred[1000:].all() and bar.barred[:1000].sum() < 20
    assert bar_by_clusters(features, labels, 1, config("partition", {"partition": {"cluster_dims": 4, "cluster_valley": None}})).targets.tolist() == []
    # The class alone, cut in two, has no valley: it is densest toward its mode.
    alone = bar_by_clusters(clean, labels[:1000], 1, cfg)
    assert alone.valley[0] > 0.3 and len(alone.targets) == 0
    # Two halves of one Gaussian: the emptiest stretch between their centres is about as full as the lower peak.
    halves = torch.randn(4000, 2, generator=g)
    assert valley(halves, (halves[:, 0] > 0).numpy()) > 0.8
    # A few far outliers are no population: fewer than a 4-dimensional Gaussian's 14 parameters.
    from sanitizer.methods.clustering import valleys

    outliers = torch.cat([clean, torch.full((5, 8), 20.0)])
    assert valleys(outliers, np.zeros(1005, dtype=int), np.arange(1005) >= 1000, 1, 4)[0] == 1.0


def test_gaussian_separation_across_a_principal_direction_is_the_closed_form():
    variances = np.array([4.0, 2.0, 1.0, 1.0])
    across_first = (8 * 4.0 / np.pi) / (8.0 - 2 * 4.0 / np.pi)
    assert gaussian_separation(variances) == pytest.approx(across_first)
    assert gaussian_separation(variances, np.array([-3.0, 0.0, 0.0, 0.0])) == pytest.approx(across_first)
    assert gaussian_separation(variances, np.array([0.0, 1.0, 0.0, 0.0])) == pytest.approx((8 * 2.0 / np.pi) / (8.0 - 2 * 2.0 / np.pi))


def test_gaussian_separation_matches_two_means_on_a_large_gaussian_sample():
    # Principal variances 4, 2, 1, 1: 2-means cuts across the first component.
    variances = np.array([4.0, 2.0, 1.0, 1.0])
    g = torch.Generator().manual_seed(0)
    points = torch.randn(40000, 4, generator=g, dtype=torch.float64) * torch.from_numpy(np.sqrt(variances))
    sep, _, gaussian = separation(points.float(), np.zeros(40000, dtype=int), 1, dims=4)
    assert gaussian_separation(variances) == pytest.approx(sep[0], rel=0.03)
    assert gaussian[0] == pytest.approx(sep[0], rel=0.03)  # from the sample's own variances


def test_cluster_contrast_finds_every_target_of_an_all_to_all_attack():
    # Every class holds a far minority (all-to-all): no class stands out from the others, so
    # only the contrast with a Gaussian of the class's own shape can find them. Class 3's
    # trigger moves it furthest, and its own images vary more across the other dimensions:
    # along its clusters' axis it stands out (Fashion-MNIST BadNets all-to-all: Pullover), yet
    # the contrast already names it, so it is no outlier whose unfitted samples are barred.
    g = torch.Generator().manual_seed(2)
    blocks, labels, poison = [], [], []
    for k, shift in enumerate([10.0, 14.0, 12.0, 40.0, 11.0]):  # each class's trigger moves it differently
        centre, far, scale = torch.zeros(8), torch.zeros(8), torch.full((8,), 3.0 if k == 3 else 1.0)
        centre[k], far[7], scale[7] = 30.0, shift, 1.0
        blocks += [torch.randn(200, 8, generator=g) * scale + centre, torch.randn(12, 8, generator=g) * scale + centre + far]
        labels += [k] * 212
        poison += [False] * 200 + [True] * 12
    features, labels, poison = torch.cat(blocks), np.array(labels), np.array(poison)
    cfg = config("partition", {"partition": {"cluster_contrast": None}})
    assert len(bar_by_clusters(features, labels, 5, cfg).targets) == 0
    bar = bar_by_clusters(features, labels, 5, config("partition", {}))
    assert bar.targets.tolist() == [0, 1, 2, 3, 4] and (bar.contrast > 3).all()
    assert mad_anomaly(bar.axis, 1e-12)[3] > 3.5 and len(bar.outliers) == 0  # no unfitted-sample bar
    assert np.array_equal(bar.barred, poison)
    # A clean class (one Gaussian each) stays near 1 and is never suspected.
    clean = bar_by_clusters(features[~poison], labels[~poison], 5, config("partition", {}))
    assert len(clean.targets) == 0 and (clean.contrast < 1.5).all()


def test_folds_are_even_seeded_and_cover_every_sample():
    fold = fold_of(103, 4, seed=0)
    assert sorted(np.bincount(fold).tolist()) == [25, 26, 26, 26]
    assert np.array_equal(fold, fold_of(103, 4, seed=0)) and not np.array_equal(fold, fold_of(103, 4, seed=1))


@needs_fashion_mnist
@pytest.mark.parametrize("method, summary_key", [("spectral", "removed_per_class"), ("clustering", "split_classes"), ("confident", "label_issues")])
def test_a_baseline_runs_as_the_detect_stage(tmp_path, method, summary_key):
    params = tmp_path / "params.yaml"
    write_params(params, {"data": {"limit": 400}, "train": {"epochs": 1}, "method": {"name": method}})
    root = tmp_path / "data"
    for name in ("ingest", "train_suspect", "score", "partition", "enhance", "identify", "detect"):
        run_stage(name, params, root)
    suspicion = pl.read_parquet(Paths(root).suspicion)
    assert suspicion.columns == ["sample_id", "suspicion", "suspected", "trigger"] and len(suspicion) == 400
    assert not suspicion["trigger"].any()  # no baseline looks for a trigger in the images
    assert np.isfinite(suspicion["suspicion"].to_numpy()).all()
    from sanitizer.manifest import meta_value

    assert meta_value(Paths(root).suspicion, "method") == method
    assert summary_key in meta_value(Paths(root).suspicion, "summary")
    if method == "spectral":
        assert suspicion["suspected"].sum() == pytest.approx(0.15 * 400, abs=10)  # 15 % of every class, rounded per class


def test_a_class_whose_own_shape_is_long_is_no_outlier_by_its_clusters():
    """Ten one-Gaussian classes, class 6 two and a half times as long along one direction
    (Fashion-MNIST's Sandal): 2-means cuts it furthest apart of all, an outlier among the
    classes' separations, yet no further apart than a Gaussian of its own shape. It stands out
    only by its shape, so it is no target (WaNet 2 % into Dress: Sandal was named, and 1,412 of
    its clean images were dropped)."""
    g = torch.Generator().manual_seed(3)
    classes = [torch.randn(600, 8, generator=g) * torch.tensor([2.5 if k == 6 else 1.0 + 0.05 * k] + [1.0] * 7) for k in range(10)]
    features, labels = torch.cat(classes), np.repeat(np.arange(10), 600)
    cfg = config("partition", {"partition": {"cluster_dims": 4}})
    sep, _, gaussian = separation(features, labels, 10, dims=4)
    assert mad_anomaly(sep, 1e-12)[6] > cfg.cluster_anomaly and sep[6] / gaussian[6] < 1.1
    bar = bar_by_clusters(features, labels, 10, cfg)
    assert len(bar.targets) == 0 and not bar.barred.any()


def covered(cover_classes=(0, 1, 2), seed=8):
    """Ten classes in 16 dimensions; a trigger moves a sample's activations 6 units along `u`
    toward the target class 3, whose own samples lie 8 units out along it. Covers (the trigger
    on 60 images of each cover class, labels kept) split off in their classes; class 3's 300
    poisons, 1.5 units further along `u` than its own images, do not (an adaptive attack)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.zeros(16)
    u[0] = 1.0
    centres = torch.randn(10, 16, generator=g) * 3
    centres[:, 0] = 0.0
    centres[3, 0] = 8.0
    features = torch.cat([torch.randn(600, 16, generator=g) + centres[k] for k in range(10)])
    labels = np.repeat(np.arange(10), 600)
    cover = np.zeros(6000, dtype=bool)
    for k in cover_classes:
        cover[600 * k : 600 * k + 60] = True
    features[torch.from_numpy(cover)] += 6.0 * u
    poison = (labels == 3) & (np.arange(6000) % 2 == 0)
    features[torch.from_numpy(poison)] += 1.5 * u
    return features, labels, cover, poison


def test_the_class_the_cover_classes_clusters_point_toward_is_named_and_seeded_away_from_it_and_they_are_not():
    from sanitizer.methods.advrbd import bar_by_shift, partition

    features, labels, cover, poison = covered()
    cfg = config("partition", {"partition": {"cluster_dims": 4}})
    clusters = bar_by_clusters(features, labels, 10, cfg)
    assert clusters.targets.tolist() == [0, 1, 2] and clusters.barred[cover].all() and (clusters.barred & ~cover).sum() <= 3  # the covers, not the target
    shift = bar_by_shift(features, labels, 10, clusters, cfg)
    assert shift.targets.tolist() == [3] and shift.anomaly[3] > cfg.cluster_anomaly and np.delete(shift.anomaly, 3).max() < 2
    assert not shift.barred.any() and len(shift.outliers) == 0 and shift.seeded.tolist() == [3] and shift.covers.tolist() == [0, 1, 2]
    # Class 3's share of the seed by loss (here random) holds half poisons; taken from its
    # samples least far along the shift, few.
    loss = np.random.default_rng(0).random(6000)
    seed = partition(np.zeros(6000), loss, 0.2, "loss", ~clusters.barred, labels, own={3: shift.trust})
    plain = partition(np.zeros(6000), loss, 0.2, "loss", ~clusters.barred, labels)
    assert (seed & (labels == 3)).sum() == (plain & (labels == 3)).sum() > 50
    assert (plain & poison).sum() > 0.3 * (plain & (labels == 3)).sum() and (seed & poison).sum() < 0.1 * (seed & (labels == 3)).sum()
    # A target a filter named already is not named again, but is seeded the same way.
    named = bar_by_clusters(features, labels, 10, cfg)
    named.targets = np.array([0, 1, 2, 3])
    again = bar_by_shift(features, labels, 10, named, cfg)
    assert again.targets.tolist() == [] and again.seeded.tolist() == [3] and again.covers.tolist() == [0, 1, 2]
    # Every class named (all-to-all): their splits are poisons, however alike.
    named.targets = np.arange(10)
    assert bar_by_shift(features, labels, 10, named, cfg) is None
    # No shift when only one named class has covers.
    features, labels, cover, poison = covered(cover_classes=(0,))
    one = bar_by_clusters(features, labels, 10, cfg)
    assert one.targets.tolist() == [0] and bar_by_shift(features, labels, 10, one, cfg) is None


def test_named_classes_that_split_their_own_ways_share_no_shift():
    from sanitizer.methods.clustering import shared_shift

    g = torch.Generator().manual_seed(9)
    features = torch.randn(3000, 16, generator=g).double().numpy()
    labels = np.repeat(np.arange(3), 1000)
    small = np.zeros(3000, dtype=bool)
    for k in range(3):  # each class's far cluster out along its own axis
        small[1000 * k : 1000 * k + 100] = True
        features[1000 * k : 1000 * k + 100, k] += 6.0
    assert shared_shift(features, labels, small, [0, 1, 2], 0.5) is None
    features[1000:1100, 1] -= 6.0
    features[1000:1100, 0] += 6.0  # class 1's far cluster now out along class 0's axis
    shift = shared_shift(features, labels, small, [0, 1, 2], 0.5)
    assert shift is not None and shift[0][0] > 0.99 and shift[1].tolist() == [0, 1]
