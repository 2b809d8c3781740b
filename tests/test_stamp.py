"""The stamp a target class's barred samples share, and who else carries it."""

import numpy as np

from sanitizer.config import config
from sanitizer.methods.advrbd import bar_by_stamp, image_bars
from sanitizer.stamp import count_valley, split_stamps, stamps


def images_of(n_per_class: int, seed: int = 0):
    """Four classes of 6x6 grey images, each class a smooth blob of its own brightness with
    noise; the bottom-right 2x2 corner is dark background in every class."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), n_per_class)
    yy, xx = np.mgrid[:6, :6]
    blob = np.exp(-((yy - 2.5) ** 2 + (xx - 2.5) ** 2) / 4)
    images = (blob * (60 + 40 * labels)[:, None, None] + rng.normal(0, 12, (len(labels), 6, 6))).clip(0, 255)
    images[:, 4:, 4:] = rng.integers(0, 30, (len(labels), 2, 2))
    return images.astype(np.uint8)[:, None], labels


def test_the_barred_populations_stamp_finds_the_carriers_partition_let_through():
    images, labels = images_of(400)
    target = 2
    poisons = np.flatnonzero(labels == 0)[:150]  # class 0 images, labelled target, patched
    labels[poisons] = target
    images[poisons, 0, 4:, 4:] = 250
    half = np.flatnonzero(labels == 1)[:5]  # two of the four patch pixels, as Adaptive-Patch pastes part
    labels[half] = target
    images[half, 0, 5, 4:] = 250
    barred = np.zeros(len(labels), dtype=bool)
    barred[poisons[:140]] = True  # partition caught most of them
    barred[np.flatnonzero(labels == target)[:10]] = True  # and some clean samples
    found = stamps(images, labels, barred, [target], 4)[target]
    assert sorted(found.pixels.tolist()) == [28, 29, 34, 35] and found.median_count == 4
    assert found.carriers[poisons].all() and found.carriers[half].all()
    clean = np.ones(len(labels), dtype=bool)
    clean[poisons], clean[half] = False, False
    assert not found.carriers[clean].any()


def test_no_stamp_in_a_population_of_a_class_s_own_images():
    images, labels = images_of(400, seed=1)
    barred = np.zeros(len(labels), dtype=bool)
    barred[np.flatnonzero(labels == 3)[:150]] = True  # 150 of a class's own images
    barred[np.flatnonzero(labels == 1)[:50]] = True  # and 50 of another's, given its label: poisons with no trigger
    labels[np.flatnonzero(labels == 1)[:50]] = 3
    found = stamps(images, labels, barred, [3], 4)[3]
    assert not found.found and len(found.pixels) == 0


def test_no_target_or_nothing_barred_finds_nothing():
    images, labels = images_of(50)
    assert stamps(images, labels, np.zeros(len(labels), dtype=bool), [], 4) == {}
    assert not stamps(images, labels, np.zeros(len(labels), dtype=bool), [1], 4)[1].found


def test_count_valley_is_empty_for_a_stamp_held_whole_or_not_at_all_and_full_for_one_held_in_degrees():
    rng = np.random.default_rng(0)
    whole = np.r_[rng.integers(0, 3, 900), np.full(300, 48)]  # a few cells by chance, or all 48
    assert count_valley(whole, 48) == 0.0
    degrees = rng.binomial(9, 0.5, 1200)  # each image holds each cell by a coin toss
    assert count_valley(degrees, 9) == 1.0
    few = np.r_[np.zeros(900, dtype=int), np.full(15, 9)]  # 15 images apart: chance, not a population
    assert count_valley(few, 9) == 1.0
    assert count_valley(np.zeros(50, dtype=int), 1) == 1.0  # one cell: no stretch between


def test_a_cluster_s_pasted_patch_names_its_class_a_kind_of_image_held_in_degrees_does_not():
    images, labels = images_of(400, seed=2)
    rng = np.random.default_rng(3)
    poisons = np.flatnonzero(labels == 0)[:150]  # class 0 images with a 2x2 patch, labelled 2
    labels[poisons] = 2
    images[poisons, 0, 4:, 4:] = 250
    kind = np.flatnonzero(labels == 3)[:150]  # a kind of class 3 image: bright corner pixels, each on its own
    corner = images[kind, 0, :2, :2]
    images[kind, 0, :2, :2] = np.where(rng.random(corner.shape) < 0.5, 250, corner)
    split = np.zeros(len(labels), dtype=bool)
    split[poisons], split[kind] = True, True
    split[np.flatnonzero(labels == 2)[:10]] = True  # the cluster holds a few of the class's own images too
    cfg = config("partition", {})
    bar = bar_by_stamp(images, labels, split, [1, 2, 3], 4, cfg)
    assert bar.targets.tolist() == [2] and np.flatnonzero(bar.barred).tolist() == sorted(poisons.tolist())
    found = split_stamps(images, labels, split, [3], 4)[3]
    assert found.found and found.valley >= cfg.stamp_valley  # content passes the lift, not the valley
    no_clusters = {"cluster_anomaly": None, "cluster_contrast": None, "cluster_valley": None, "pattern_kurtosis": None}
    assert "stamp" not in image_bars(None, images, labels, 4, config("partition", {"partition": no_clusters}))  # it needs their split
