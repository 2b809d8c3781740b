import numpy as np
from PIL import Image
import pytest
import torch

from sanitizer.attacks import build_attack
from sanitizer.config import config
from sanitizer.errors import SanitizerError

SHAPE = (1, 8, 8)
K = 4


def _attack(shape=SHAPE, k=K, **kw):
    return build_attack(config("attack", {"attack": kw}), shape, k)


def _data(n=40, shape=SHAPE, k=K, seed=0):
    rng = np.random.default_rng(seed)
    # values < 255 so a stamped 255 is always a change
    images = rng.integers(0, 255, size=(n, *shape), dtype=np.uint8)
    labels = np.arange(n) % k
    return images, labels


POSITIONS = {
    # (rows, cols) slices of the expected square, for an 8x10 image and s=3
    "top-left": (slice(0, 3), slice(0, 3)),
    "top-right": (slice(0, 3), slice(7, 10)),
    "bottom-left": (slice(5, 8), slice(0, 3)),
    "bottom-right": (slice(5, 8), slice(7, 10)),
    "center": (slice(2, 5), slice(3, 6)),
}


@pytest.mark.parametrize("position", list(POSITIONS))
def test_badnets_square_only(position):
    shape = (3, 8, 10)
    images, _ = _data(n=5, shape=shape)
    out = _attack(shape=shape, name="badnets", trigger_size=3, position=position).trigger(images)
    rows, cols = POSITIONS[position]
    expected = images.copy()
    expected[:, :, rows, cols] = 255
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.uint8
    changed = (out != images).any(axis=(0, 1))
    assert changed.sum() == 9
    np.testing.assert_array_equal(images, _data(n=5, shape=shape)[0])  # input not mutated


def test_badnets_trigger_too_large():
    images, _ = _data(n=2)
    with pytest.raises(SanitizerError, match="trigger_size"):
        _attack(name="badnets", trigger_size=9).trigger(images)


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.1, 0.33, 0.5])
def test_poison_count_exact(rate):
    images, labels = _data(n=40)
    p = _attack(name="badnets", rate=rate, target=1).poison(images, labels)
    assert p.is_poison.sum() == round(rate * 40)


def test_all_to_one_labels_and_untouched():
    images, labels = _data(n=40)
    p = _attack(name="badnets", rate=0.25, target=2, trigger_size=2).poison(images, labels)
    v = p.is_poison
    assert v.sum() == 10
    assert (labels[v] != 2).all()  # drawn only from samples whose label changes
    assert (p.labels[v] == 2).all()
    np.testing.assert_array_equal(p.labels[~v], labels[~v])
    np.testing.assert_array_equal(p.images[~v], images[~v])
    assert (p.images[v][:, :, 6:, 6:] == 255).all()
    # stamped samples differ only in the trigger square
    diff = p.images[v] != images[v]
    assert not diff[:, :, :6, :].any() and not diff[:, :, :, :6].any()


def test_all_to_all_labels():
    images, labels = _data(n=40)
    p = _attack(name="badnets", rate=0.5, mode="all-to-all").poison(images, labels)
    v = p.is_poison
    assert v.sum() == 20
    np.testing.assert_array_equal(p.labels[v], (labels[v] + 1) % K)
    np.testing.assert_array_equal(p.labels[~v], labels[~v])


def test_all_to_all_two_classes_every_sample_candidate():
    images, labels = _data(n=10, k=2)
    p = _attack(k=2, name="badnets", rate=1.0, mode="all-to-all", target=0).poison(images, labels)
    assert p.is_poison.all()
    np.testing.assert_array_equal(p.labels, 1 - labels)


def test_seeded_determinism():
    images, labels = _data(n=200)
    a = _attack(name="badnets", rate=0.1, seed=5).poison(images, labels)
    b = _attack(name="badnets", rate=0.1, seed=5).poison(images, labels)
    c = _attack(name="badnets", rate=0.1, seed=6).poison(images, labels)
    np.testing.assert_array_equal(a.is_poison, b.is_poison)
    np.testing.assert_array_equal(a.images, b.images)
    assert (a.is_poison != c.is_poison).any()


def test_too_many_poisons_raises():
    images, labels = _data(n=40)  # 10 per class -> 30 candidates for target 1
    p = _attack(name="badnets", rate=0.75, target=1).poison(images, labels)
    assert p.is_poison.sum() == 30
    with pytest.raises(SanitizerError, match="poison"):
        _attack(name="badnets", rate=0.8, target=1).poison(images, labels)


def test_target_out_of_range():
    with pytest.raises(SanitizerError, match="target"):
        _attack(name="badnets", target=K)
    with pytest.raises(SanitizerError, match="target"):
        _attack(name="blend", target=-1)


def test_unknown_attack_name():
    with pytest.raises(SanitizerError, match="wanet"):
        _attack(name="wanet")


@pytest.mark.parametrize("alpha", [0.2, 0.4, 1.0, 0.0])
def test_blend_formula(alpha):
    shape = (3, 6, 6)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(20, *shape), dtype=np.uint8)
    images[0] = 255
    images[1] = 0
    atk = _attack(shape=shape, name="blend", alpha=alpha)
    out = atk.trigger(images)
    pattern = np.asarray(atk.pattern, dtype=np.float64)
    assert pattern.shape == shape
    assert pattern.min() >= 0 and pattern.max() <= 255
    expected = np.rint((1 - alpha) * images.astype(np.float64) + alpha * pattern)
    assert out.dtype == np.uint8
    assert expected.min() >= 0 and expected.max() <= 255
    np.testing.assert_array_equal(out, expected.astype(np.uint8))


def test_blend_default_pattern_fixed():
    a = _attack(shape=(1, 5, 5), name="blend", seed=1).pattern
    b = _attack(shape=(1, 5, 5), name="blend", seed=2).pattern
    np.testing.assert_array_equal(a, b)
    assert np.unique(a).size > 1


def test_blend_pattern_file_gray(tmp_path):
    img = np.zeros((16, 16), dtype=np.uint8)
    img[:, 8:] = 200  # left half 0, right half 200
    path = tmp_path / "p.png"
    Image.fromarray(img).save(path)
    atk = _attack(name="blend", alpha=0.4, pattern=str(path))
    assert atk.pattern.shape == SHAPE
    # resized 16 -> 8: columns far from the edge keep their value
    np.testing.assert_allclose(atk.pattern[:, :, :2], 0, atol=1e-4)
    np.testing.assert_allclose(atk.pattern[:, :, 6:], 200, atol=1e-4)
    images = np.full((3, *SHAPE), 100, dtype=np.uint8)
    out = atk.trigger(images)
    assert (out[:, :, :, :2] == 60).all()  # 0.6 * 100 + 0.4 * 0
    assert (out[:, :, :, 6:] == 140).all()  # 0.6 * 100 + 0.4 * 200


def test_blend_pattern_file_rgb(tmp_path):
    img = np.empty((10, 10, 3), dtype=np.uint8)
    for c, v in enumerate((10, 120, 250)):
        img[:, :, c] = v
    path = tmp_path / "rgb.png"
    Image.fromarray(img).save(path)
    atk = _attack(shape=(3, 5, 7), name="blend", alpha=0.2, pattern=str(path))
    assert atk.pattern.shape == (3, 5, 7)
    for c, v in enumerate((10, 120, 250)):
        np.testing.assert_allclose(atk.pattern[c], v, atol=1e-4)


def test_blend_pattern_missing_or_bad(tmp_path):
    with pytest.raises(SanitizerError, match="not found"):
        _attack(name="blend", pattern=str(tmp_path / "nope.png"))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(SanitizerError):
        _attack(name="blend", pattern=str(bad))


def test_none_changes_nothing():
    images, labels = _data(n=30)
    atk = _attack(name="none", rate=0.5)
    p = atk.poison(images, labels)
    np.testing.assert_array_equal(p.images, images)
    np.testing.assert_array_equal(p.labels, labels)
    assert not p.is_poison.any()
    assert not atk.asr_mask(labels).any()
    np.testing.assert_array_equal(atk.trigger_test(images), images)


def test_asr_mask_excludes_target_class():
    _, labels = _data(n=20)
    mask = _attack(name="badnets", target=3).asr_mask(labels)
    np.testing.assert_array_equal(mask, labels != 3)
    mask = _attack(name="blend", mode="all-to-all").asr_mask(labels)
    assert mask.all()


def test_trigger_test_equals_trigger():
    images, _ = _data(n=4)
    atk = _attack(name="badnets")
    np.testing.assert_array_equal(atk.trigger_test(images), atk.trigger(images))
