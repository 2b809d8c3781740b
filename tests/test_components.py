"""The pixel-pattern filter: a trigger added to part of a class's images is found by the
flattest independent component of that class's pixels, and nothing is found without one."""

import numpy as np
import pytest

from sanitizer.decisions import decide
from sanitizer.components import UNIFORM_KURTOSIS, excess_kurtosis, pattern_carriers

from test_persistence import _logits_with


def test_excess_kurtosis_of_known_distributions():
    rng = np.random.default_rng(0)
    z = np.stack([rng.normal(size=200_000), rng.uniform(size=200_000), rng.integers(0, 2, 200_000)], 1).astype(np.float64)
    assert excess_kurtosis(z) == pytest.approx([0.0, -1.2, -2.0], abs=0.03)


def _classes(rng, per_class=400, num_classes=4, side=12):
    """Each class a smooth random shape of its own plus pixel noise: one population per class."""
    shapes = rng.uniform(40, 200, size=(num_classes, 1, side, side))
    labels = np.repeat(np.arange(num_classes), per_class)
    images = shapes[labels] + rng.normal(0, 25, size=(len(labels), 1, side, side))
    return images, labels


def _sinusoid(side=12, amplitude=30.0):
    return amplitude * np.sin(2 * np.pi * np.arange(side) * 3 / side)


def test_a_pattern_on_half_a_class_is_found_and_only_its_carriers_flagged():
    rng = np.random.default_rng(1)
    images, labels = _classes(rng)
    carrier = (labels == 1) & (rng.random(len(labels)) < 0.5)
    images[carrier] += _sinusoid()  # clean label: the carriers keep their class
    images = np.clip(images, 0, 255).round().astype(np.uint8)
    kurtosis, flagged = pattern_carriers(images, labels, 4, dims=10)
    assert kurtosis[1] < UNIFORM_KURTOSIS and (np.delete(kurtosis, 1) > UNIFORM_KURTOSIS).all()
    assert flagged[carrier].mean() > 0.97 and flagged[~carrier].mean() < 0.01


def test_clean_classes_hold_one_population_and_nothing_is_flagged():
    images, labels = _classes(np.random.default_rng(2))
    kurtosis, flagged = pattern_carriers(np.clip(images, 0, 255).round().astype(np.uint8), labels, 4, dims=10)
    assert (kurtosis > UNIFORM_KURTOSIS).all() and not flagged.any()


def test_few_samples_are_not_searched_in_more_directions_than_they_can_bear():
    """Gaussian noise, 200 samples a class: in 50 directions FastICA finds components flatter
    than -1.2 by chance; the filter searches 2 and finds none."""
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(3), 200)
    images = np.clip(128 + 40 * rng.normal(size=(600, 1, 10, 10)), 0, 255).round().astype(np.uint8)
    kurtosis, flagged = pattern_carriers(images, labels, 3, dims=50)
    assert (kurtosis > UNIFORM_KURTOSIS).all() and not flagged.any()


def test_the_other_classes_decide_which_population_carries_the_pattern():
    """The population the other classes' images lack, whichever way the pattern moves it: here
    it is subtracted from half the class."""
    rng = np.random.default_rng(3)
    images, labels = _classes(rng)
    carrier = (labels == 2) & (rng.random(len(labels)) < 0.5)
    images[carrier] -= _sinusoid()
    _, flagged = pattern_carriers(np.clip(images, 0, 255).round().astype(np.uint8), labels, 4, dims=10)
    assert flagged[carrier].mean() > 0.97 and flagged[~carrier].mean() < 0.01


def test_decide_drops_a_carrier_the_clean_model_confirms():
    probs = [[0.1, 0.9], [0.1, 0.9], [0.1, 0.9]]
    labels = np.array([1, 1, 1])
    suspected = np.array([True, True, False])
    carries = np.array([True, False, True])  # a carrier not suspected is not the method's verdict
    d = decide(_logits_with(probs), labels, suspected, 0.5, False, 0.0, None, carries)
    assert d.decision.tolist() == ["drop", "keep", "keep"]
    assert "whatever its label" in d.reason[0] and "predicts the given label" in d.reason[1]
