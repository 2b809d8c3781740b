import numpy as np
from PIL import Image
import pytest

from sanitizer.attacks import ATTACKS, build_attack
from sanitizer.attacks.patterns import noise_pattern
from sanitizer.config import config
from sanitizer.errors import SanitizerError

SHAPE = (1, 8, 8)
K = 4
N = 40  # labels are arange(N) % K: 10 samples per class


def _attack(shape=SHAPE, k=K, **kw):
    return build_attack(config("attack", {"attack": kw}), shape, k)


def _data(n=N, shape=SHAPE, k=K, seed=0):
    rng = np.random.default_rng(seed)
    # values < 255 so a stamped 255 is always a change
    images = rng.integers(0, 255, size=(n, *shape), dtype=np.uint8)
    labels = np.arange(n) % k
    return images, labels


def _changed(a, b):
    """Per sample: does any pixel differ?"""
    return (a != b).reshape(len(a), -1).any(axis=1)


# Every attack (and the all-to-all modes) as params.yaml would name it; the default target is 1
# and TaCT's default source is 0.
VARIANTS = {
    "none": {"name": "none"},
    "badnets": {"name": "badnets"},
    "badnets-all-to-all": {"name": "badnets", "mode": "all-to-all"},
    "blend": {"name": "blend"},
    "blend-all-to-all": {"name": "blend", "mode": "all-to-all"},
    "sig": {"name": "sig"},
    "wanet": {"name": "wanet"},
    "physical_ba": {"name": "physical_ba"},
    "tact": {"name": "tact"},
    "adaptive_blend": {"name": "adaptive_blend"},
    "adaptive_patch": {"name": "adaptive_patch"},
}
POISONING = [v for v in VARIANTS if v != "none"]
ATTACK_NAMES = sorted({kw["name"] for kw in VARIANTS.values()} - {"none"})
NO_ALL_TO_ALL = ["sig", "wanet", "physical_ba", "tact", "adaptive_blend", "adaptive_patch"]


def _expected_labels(kw, labels):
    """The label each poison must end up with."""
    if kw["name"] == "sig":
        return labels  # clean label
    if kw.get("mode") == "all-to-all":
        return (labels + 1) % K
    return np.full_like(labels, kw.get("target", 1))


def _candidates(kw, labels):
    """Samples a poison may be drawn from."""
    if kw["name"] == "tact":
        return labels == kw.get("source", 0)
    if kw["name"] == "sig":
        return labels == kw.get("target", 1)
    return _expected_labels(kw, labels) != labels


def _cover_rate(variant, rate):
    """SIG is clean-label and takes no cover samples."""
    return 0.0 if VARIANTS[variant]["name"] == "sig" else rate


# ---------------------------------------------------------------- every attack


def test_registry_has_every_attack():
    assert set(ATTACK_NAMES) | {"none"} <= set(ATTACKS.names())


def test_unknown_attack_name():
    with pytest.raises(SanitizerError, match=r"\[attack\]\.name must be one of \[.*'badnets'.*\], got 'nosuch'"):
        _attack(name="nosuch")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_seeded_determinism(variant):
    images, labels = _data()
    kw = {**VARIANTS[variant], "rate": 0.1, "cover_rate": _cover_rate(variant, 0.1)}
    a = _attack(seed=5, **kw).poison(images, labels)
    b = _attack(seed=5, **kw).poison(images, labels)
    for field in ("images", "labels", "is_poison", "is_cover"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    np.testing.assert_array_equal(_attack(seed=5, **kw).trigger_test(images), _attack(seed=5, **kw).trigger_test(images))
    if variant != "none":
        c = _attack(seed=6, **kw).poison(images, labels)
        assert (a.is_poison != c.is_poison).any()
        assert a.is_poison.any()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_poison_and_cover_counts_exact(variant):
    images, labels = _data()
    p = _attack(**VARIANTS[variant], rate=0.1, cover_rate=_cover_rate(variant, 0.15)).poison(images, labels)
    covers = round(_cover_rate(variant, 0.15) * 40)
    expected = (0, 0) if variant == "none" else (4, covers)  # round(0.1 * 40) poisons
    assert (p.is_poison.sum(), p.is_cover.sum()) == expected
    assert not (p.is_poison & p.is_cover).any()
    assert p.is_poison.dtype == bool and p.is_cover.dtype == bool
    assert p.images.shape == images.shape and p.labels.shape == labels.shape


@pytest.mark.parametrize(
    "name, covers",
    # default cover_rate of 200 samples: wanet 0.05, tact and adaptive_* 0.01, the rest 0
    [("badnets", 0), ("blend", 0), ("sig", 0), ("physical_ba", 0), ("wanet", 10), ("tact", 2), ("adaptive_blend", 2), ("adaptive_patch", 2)],
)
def test_default_cover_count(name, covers):
    images, labels = _data(n=200)
    p = _attack(name=name, rate=0.05).poison(images, labels)
    assert p.is_poison.sum() == 10
    assert p.is_cover.sum() == covers


def test_explicit_knobs_override_defaults():
    images, labels = _data(n=200)
    assert not _attack(name="wanet", cover_rate=0.0).poison(images, labels).is_cover.any()
    atk = _attack(name="tact", trigger_size=5, alpha=0.0)
    assert (atk.cfg.trigger_size, atk.cfg.alpha, atk.cfg.cover_rate) == (5, 0.0, 0.01)
    defaults = {name: _attack(name=name).cfg for name in ("badnets", "tact", "adaptive_patch", "wanet", "blend")}
    assert [defaults[n].trigger_size for n in ("badnets", "tact", "adaptive_patch")] == [3, 8, 4]
    assert defaults["blend"].alpha == 0.2 and defaults["blend"].cover_rate == 0.0


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_labels_changed_only_where_attack_changes_them(variant):
    images, labels = _data()
    kw = VARIANTS[variant]
    p = _attack(**kw, rate=0.2, cover_rate=_cover_rate(variant, 0.1)).poison(images, labels)
    v = p.is_poison
    np.testing.assert_array_equal(p.labels[~v], labels[~v])  # clean and cover samples keep theirs
    if variant == "none":
        assert not v.any()
        return
    assert v.sum() == 8
    assert _candidates(kw, labels)[v].all()
    np.testing.assert_array_equal(p.labels[v], _expected_labels(kw, labels)[v])
    if kw["name"] == "sig":
        np.testing.assert_array_equal(p.labels, labels)
    else:
        assert (p.labels[v] != labels[v]).all()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_only_poisons_and_covers_touched(variant):
    images, labels = _data()
    p = _attack(**VARIANTS[variant], rate=0.1, cover_rate=_cover_rate(variant, 0.1)).poison(images, labels)
    touched = p.is_poison | p.is_cover
    np.testing.assert_array_equal(p.images[~touched], images[~touched])
    # every poison and cover sample really carries a trigger
    np.testing.assert_array_equal(_changed(p.images, images), touched)
    assert touched.sum() == (0 if variant == "none" else 4 + round(_cover_rate(variant, 0.1) * 40))


def test_clean_label_sig_touches_only_target_class():
    images, labels = _data()
    p = _attack(name="sig", target=2, rate=0.2).poison(images, labels)
    assert p.is_poison.sum() == 8 and not p.is_cover.any()
    assert (labels[p.is_poison] == 2).all()
    np.testing.assert_array_equal(p.labels, labels)
    changed = _changed(p.images, images)
    np.testing.assert_array_equal(changed, p.is_poison)
    np.testing.assert_array_equal(p.images[labels != 2], images[labels != 2])


def _extremes(n=12, shape=SHAPE):
    images, _ = _data(n=n, shape=shape)
    images[: n // 3] = 0
    images[n // 3 : 2 * n // 3] = 255
    return images


def _outputs(atk, images):
    """Every image-producing entry point, with the same randomness on every call."""
    return {
        "trigger": atk.trigger(images, np.random.default_rng(0)),
        "cover": atk.cover(images, np.random.default_rng(0)),
        "trigger_test": atk.trigger_test(images),
    }


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pixel_range_kept(variant):
    atk = _attack(**VARIANTS[variant], rate=0.25, cover_rate=_cover_rate(variant, 0.25))
    x = _extremes()
    p = atk.poison(x, np.arange(len(x)) % K)
    assert p.images.dtype == np.uint8
    low, high = _outputs(atk, np.zeros_like(x)), _outputs(atk, np.full_like(x, 255))
    for what, out in _outputs(atk, x).items():
        assert out.dtype == np.uint8 and out.shape == x.shape, what
        if variant != "physical_ba":  # its contrast jitter is not monotone; see its own test
            # every other trigger is monotone in the pixel values, so a value that overflowed
            # instead of saturating shows up as a brighter image getting a darker pixel
            assert (low[what] <= out).all() and (out <= high[what]).all(), what


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_inputs_never_mutated(variant):
    images, labels = _data()
    before = images.copy(), labels.copy()
    atk = _attack(**VARIANTS[variant], rate=0.25, cover_rate=_cover_rate(variant, 0.25))
    atk.poison(images, labels)
    _outputs(atk, images)
    np.testing.assert_array_equal(images, before[0])
    np.testing.assert_array_equal(labels, before[1])


# ---------------------------------------------------------------- invalid params


@pytest.mark.parametrize("name", ATTACK_NAMES)
@pytest.mark.parametrize("target", [K, -1])
def test_target_out_of_range(name, target):
    # A negative target fails with the params (its range), one past the classes with the attack.
    message = r"\[attack\]\.target must be in \[0, " if target < 0 else rf"\[attack\]\.target {target} is not a class index \(0\.\.{K - 1}\)"
    with pytest.raises(SanitizerError, match=message):
        _attack(name=name, target=target)


@pytest.mark.parametrize("name", NO_ALL_TO_ALL)
def test_all_to_all_unsupported(name):
    with pytest.raises(SanitizerError, match=f"attack '{name}' has no all-to-all mode"):
        _attack(name=name, mode="all-to-all")


@pytest.mark.parametrize("name", ["badnets", "physical_ba", "tact", "adaptive_patch"])
def test_trigger_too_large(name):
    with pytest.raises(SanitizerError, match="trigger_size 9 is larger than the 8x8 images"):
        _attack(name=name, trigger_size=9)
    _attack(name=name, trigger_size=8)  # exactly the image fits


@pytest.mark.parametrize("name", ["blend", "sig", "wanet", "adaptive_blend"])
def test_trigger_size_ignored_by_whole_image_attacks(name):
    # one params.yaml serves every attack: a patch size too big for these images must not stop
    # an attack that has no patch
    images, labels = _data(n=8)
    p = _attack(name=name, trigger_size=9, rate=0.25).poison(images, labels)
    assert p.is_poison.sum() == 2


def test_default_trigger_size_checked_too():
    with pytest.raises(SanitizerError, match="trigger_size 8 is larger than the 6x6 images"):
        _attack(shape=(1, 6, 6), name="tact")


@pytest.mark.parametrize(
    "kw, ok_rate, bad_rate, qualify",
    [
        ({"name": "badnets"}, 0.75, 0.8, 30),  # labels != target
        ({"name": "blend", "target": 3}, 0.75, 0.8, 30),
        ({"name": "sig"}, 0.25, 0.3, 10),  # target class only
        ({"name": "tact"}, 0.25, 0.3, 10),  # source class only
    ],
)
def test_too_many_poisons(kw, ok_rate, bad_rate, qualify):
    images, labels = _data()
    p = _attack(**kw, rate=ok_rate, cover_rate=0.0).poison(images, labels)
    np.testing.assert_array_equal(p.is_poison, _candidates(kw, labels))  # every candidate taken
    asked = round(bad_rate * N)
    with pytest.raises(SanitizerError, match=rf"\[attack\]\.rate {bad_rate} asks for {asked} poisons but only {qualify} samples qualify"):
        _attack(**kw, rate=bad_rate).poison(images, labels)


def test_too_many_covers():
    images, labels = _data()
    # TaCT covers come only from classes other than source and target: 20 samples
    assert _attack(name="tact", rate=0.1, cover_rate=0.5).poison(images, labels).is_cover.sum() == 20
    with pytest.raises(SanitizerError, match=r"\[attack\]\.cover_rate 0.55 asks for 22 cover samples but only 20 samples qualify"):
        _attack(name="tact", rate=0.1, cover_rate=0.55).poison(images, labels)
    # elsewhere covers are drawn from whatever the poisons left
    with pytest.raises(SanitizerError, match=r"cover_rate 0.6 asks for 24 cover samples but only 20 samples qualify"):
        _attack(name="badnets", mode="all-to-all", rate=0.5, cover_rate=0.6).poison(images, labels)


@pytest.mark.parametrize("pieces", [15, 2, 1, 0, -4, 81])
def test_adaptive_blend_pieces_invalid(pieces):
    # not a square, a single block (half of it is nothing), or more blocks per side than pixels
    message = rf"\[attack\]\.pieces must be in \[1, 4096\], got {pieces}" if pieces < 1 else rf"\[attack\]\.pieces must be a square number .*got {pieces}"
    with pytest.raises(SanitizerError, match=message):
        _attack(name="adaptive_blend", pieces=pieces)


@pytest.mark.parametrize("kw", [{"patches_per_sample": 5}, {"patches_per_sample": 0}, {"patch_alphas": [0.5] * 6}, {"patch_alphas": []}])
def test_adaptive_patch_params_invalid(kw):
    message = r"\[attack\]\.patches_per_sample must be in \[1, 64\]" if kw.get("patches_per_sample") == 0 else r"adaptive_patch needs 1..5 patch_alphas and 1..len\(patch_alphas\) patches_per_sample"
    with pytest.raises(SanitizerError, match=message):
        _attack(name="adaptive_patch", **kw)


@pytest.mark.parametrize("source", [1, K, -1])
def test_tact_source_invalid(source):
    # the default target is 1, so source 1 is the target itself
    message = r"\[attack\]\.source must be in \[0, " if source < 0 else rf"\[attack\]\.source {source} must be a class index other than the target"
    with pytest.raises(SanitizerError, match=message):
        _attack(name="tact", source=source)


# ---------------------------------------------------------------- badnets


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


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.1, 0.33, 0.5])
def test_poison_count_exact(rate):
    images, labels = _data()
    p = _attack(name="badnets", rate=rate, target=1).poison(images, labels)
    assert p.is_poison.sum() == round(rate * N)


def test_all_to_one_labels_and_untouched():
    images, labels = _data()
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
    images, labels = _data()
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


def test_trigger_test_equals_trigger():
    images, _ = _data(n=4)
    atk = _attack(name="badnets")
    np.testing.assert_array_equal(atk.trigger_test(images), atk.trigger(images))
    assert _changed(atk.trigger_test(images), images).all()


def test_asr_mask():
    _, labels = _data(n=20)
    np.testing.assert_array_equal(_attack(name="badnets", target=3).asr_mask(labels), labels != 3)
    assert _attack(name="blend", mode="all-to-all").asr_mask(labels).all()
    np.testing.assert_array_equal(_attack(name="sig", target=2).asr_mask(labels), labels != 2)
    np.testing.assert_array_equal(_attack(name="tact", source=2, target=0).asr_mask(labels), labels == 2)
    assert not _attack(name="none").asr_mask(labels).any()


# ---------------------------------------------------------------- blend


@pytest.mark.parametrize("alpha", [0.2, 0.4, 1.0, 0.0])
def test_blend_formula(alpha):
    shape = (3, 6, 6)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(20, *shape), dtype=np.uint8)
    images[0] = 255
    images[1] = 0
    atk = _attack(shape=shape, name="blend", alpha=alpha)
    out = atk.trigger(images)
    pattern = noise_pattern(shape).astype(np.float64)
    expected = np.rint((1 - alpha) * images.astype(np.float64) + alpha * pattern)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected.astype(np.uint8))
    np.testing.assert_array_equal(atk.trigger_test(images), out)


def test_blend_default_pattern_fixed():
    a = _attack(shape=(1, 5, 5), name="blend", seed=1).pattern
    b = _attack(shape=(1, 5, 5), name="blend", seed=2).pattern
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1, 5, 5) and 0 <= a.min() and a.max() <= 255
    assert np.unique(a).size > 1


def test_blend_all_to_all_poisons_any_class():
    images, labels = _data()
    atk = _attack(name="blend", mode="all-to-all", rate=1.0, alpha=0.4)
    p = atk.poison(images, labels)
    assert p.is_poison.all()  # the target class is no exception in all-to-all
    np.testing.assert_array_equal(p.labels, (labels + 1) % K)
    expected = np.rint(0.6 * images + 0.4 * noise_pattern(SHAPE).astype(np.float64)).astype(np.uint8)
    np.testing.assert_array_equal(p.images, expected)


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
    with pytest.raises(SanitizerError, match="not a readable image"):
        _attack(name="blend", pattern=str(bad))


# ---------------------------------------------------------------- sig


def test_sig_train_and_test_signal():
    shape = (2, 3, 16)
    rng = np.random.default_rng(3)
    images = rng.integers(50, 200, size=(5, *shape), dtype=np.uint8)  # nowhere near saturation
    atk = _attack(shape=shape, name="sig", delta=20.0, delta_test=40.0, frequency=3)
    wave = np.sin(2 * np.pi * np.arange(16) * 3 / 16)  # the same along rows and channels
    x = images.astype(np.float64)
    train, test = atk.trigger(images).astype(np.float64), atk.trigger_test(images).astype(np.float64)
    np.testing.assert_allclose(train, np.rint(x + 20 * wave), atol=1)
    np.testing.assert_allclose(test, np.rint(x + 40 * wave), atol=1)
    # the test-time signal is the stronger one, with the same sign
    assert (np.abs(test - x) >= np.abs(train - x)).all()
    assert np.abs(test - x).max() >= 39 and np.abs(train - x).max() <= 20
    assert (np.sign(test - x) * np.sign(train - x) >= 0).all()


def test_sig_saturates():
    shape = (1, 2, 8)
    white, black = np.full((1, *shape), 255, np.uint8), np.zeros((1, *shape), np.uint8)
    atk = _attack(shape=shape, name="sig", delta=20.0, frequency=1)
    wave = 20 * np.sin(2 * np.pi * np.arange(8) / 8)  # positive on columns 1-3, negative on 5-7
    np.testing.assert_array_equal(atk.trigger(white)[0, 0, 0], np.rint(np.minimum(255, 255 + wave)))
    np.testing.assert_array_equal(atk.trigger(black)[0, 0, 0], np.rint(np.maximum(0, wave)))


def test_sig_candidates_are_target_class_only():
    images, labels = _data()
    for seed in range(3):
        p = _attack(name="sig", target=3, rate=0.1, seed=seed).poison(images, labels)
        assert p.is_poison.sum() == 4 and (labels[p.is_poison] == 3).all()
    # a rate that asks for the whole target class takes exactly it
    p = _attack(name="sig", target=3, rate=0.25).poison(images, labels)
    np.testing.assert_array_equal(p.is_poison, labels == 3)


def test_sig_rejects_cover_samples():
    with pytest.raises(SanitizerError, match="clean-label.*cover_rate must be 0"):
        _attack(name="sig", cover_rate=0.01)


# ---------------------------------------------------------------- wanet


def test_wanet_poisons_all_get_the_fixed_warp():
    images, labels = _data()
    atk = _attack(name="wanet", rate=0.2, cover_rate=0.1)
    p = atk.poison(images, labels)
    v, c = p.is_poison, p.is_cover
    warped = atk.trigger(images)
    # the trigger is one fixed field: rng plays no part and another instance draws the same one
    np.testing.assert_array_equal(warped, atk.trigger(images, np.random.default_rng(123)))
    np.testing.assert_array_equal(warped, _attack(name="wanet").trigger(images))
    assert _changed(warped, images).all()
    np.testing.assert_array_equal(p.images[v], warped[v])
    # cover ("noise mode") samples get the field plus jitter: never exactly the poison warp
    assert c.sum() == 4
    assert _changed(p.images[c], warped[c]).all()
    np.testing.assert_array_equal(p.labels[c], labels[c])


def test_wanet_field_follows_seed_and_keeps_flat_images():
    images, _ = _data(n=6)
    assert _changed(_attack(name="wanet", seed=0).trigger(images), _attack(name="wanet", seed=1).trigger(images)).all()
    # a warp only moves pixels around: a flat image stays flat (no black creeping in at the border)
    flat = np.full((2, *SHAPE), 123, np.uint8)
    np.testing.assert_array_equal(_attack(name="wanet", warp_s=1.0).trigger(flat), flat)


# ---------------------------------------------------------------- physical_ba


def _plain_stamp(images, size=3):
    out = images.copy()
    out[:, :, -size:, -size:] = 255
    return out


def test_physical_ba_train_transformed_test_plain():
    images, labels = _data()
    atk = _attack(name="physical_ba", rate=0.25)
    p = atk.poison(images, labels)
    v = p.is_poison
    assert v.sum() == 10
    # train poisons went through the random flip / jitter / warp: not the plain BadNets stamp
    assert _changed(p.images[v], _plain_stamp(images[v])).all()
    np.testing.assert_array_equal(p.labels[v], 1)
    # the test-time trigger is exactly the plain stamp, as BadNets would give
    np.testing.assert_array_equal(atk.trigger_test(images), _plain_stamp(images))
    np.testing.assert_array_equal(atk.trigger_test(images), _attack(name="badnets").trigger(images))


def test_physical_ba_transform_varies_per_sample():
    same = np.repeat(_data(n=1)[0], 8, axis=0)
    out = _attack(name="physical_ba").trigger(same, np.random.default_rng(0))
    assert len(np.unique(out.reshape(8, -1), axis=0)) == 8


def test_physical_ba_saturates():
    white = np.full((30, *SHAPE), 255, np.uint8)
    out = _attack(name="physical_ba").trigger(white, np.random.default_rng(0))
    centre = out[:, 0, 3:5, 3:5].reshape(30, -1)
    # the centre stays inside the image under every warp; brightness x0.8..1.2 and contrast
    # x0.8..1.2 keep it >= ~190, and above 255 it must saturate, not wrap round to a dark value
    assert centre.min() >= 180
    assert (centre == 255).all(axis=1).sum() >= 5


# ---------------------------------------------------------------- tact


def test_tact_poisons_source_covers_others():
    images, labels = _data()
    atk = _attack(name="tact", source=2, target=0, rate=0.2, cover_rate=0.25, trigger_size=4)
    p = atk.poison(images, labels)
    v, c = p.is_poison, p.is_cover
    assert (v.sum(), c.sum()) == (8, 10)
    assert (labels[v] == 2).all()
    np.testing.assert_array_equal(p.labels[v], 0)
    assert set(labels[c]) <= {1, 3}  # never the source nor the target class
    np.testing.assert_array_equal(p.labels[c], labels[c])
    # poisons and covers carry the same trojan square at the bottom-right, nothing else changes
    stamped = atk.trigger(images)
    np.testing.assert_array_equal(p.images[v | c], stamped[v | c])
    square = np.full((4, 4), 255)
    square[1:3, 1:3] = 0  # white ring, black core
    assert (stamped[:, 0, 4:, 4:] == square).all()
    np.testing.assert_array_equal(stamped[:, :, :4], images[:, :, :4])
    np.testing.assert_array_equal(stamped[:, :, :, :4], images[:, :, :, :4])
    np.testing.assert_array_equal(atk.trigger_test(images), stamped)


def test_tact_asr_mask_source_only():
    _, labels = _data()
    np.testing.assert_array_equal(_attack(name="tact", source=3, target=1).asr_mask(labels), labels == 3)


# ---------------------------------------------------------------- adaptive_blend


def _pieces_changed(changed, side):
    """N x H x W changed-pixel masks -> N x side x side changed-piece masks; every piece must be
    changed entirely or not at all."""
    n, h, w = changed.shape
    blocks = changed.reshape(n, side, h // side, side, w // side)
    assert (blocks.all(axis=(2, 4)) == blocks.any(axis=(2, 4))).all(), "a piece changed only in part"
    return blocks.any(axis=(2, 4))


def test_adaptive_blend_train_half_pieces(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(path)
    black = np.zeros((20, *SHAPE), np.uint8)  # differs from the pattern at every pixel
    atk = _attack(name="adaptive_blend", pattern=str(path), pieces=16, train_alpha=0.15)
    out = atk.trigger(black, np.random.default_rng(0))
    assert set(np.unique(out)) == {0, 30}  # 0.15 * 200 wherever a chosen piece is
    pieces = _pieces_changed(out[:, 0] > 0, side=4)  # 16 pieces of 2x2
    assert (pieces.sum(axis=(1, 2)) == 8).all()  # exactly half, every sample
    assert len(np.unique(pieces.reshape(20, -1), axis=0)) > 10  # a different half per sample
    # poisons and covers from poison() follow the same rule
    atk = _attack(name="adaptive_blend", pattern=str(path), rate=0.1, cover_rate=0.1)
    p = atk.poison(np.zeros((N, *SHAPE), np.uint8), np.arange(N) % K)
    touched = p.is_poison | p.is_cover
    assert touched.sum() == 8
    assert (_pieces_changed(p.images[touched, 0] > 0, side=4).sum(axis=(1, 2)) == 8).all()


def test_adaptive_blend_test_is_full_blend():
    images, labels = _data()
    atk = _attack(name="adaptive_blend", alpha=0.25, rate=0.25)
    test = atk.trigger_test(images)
    expected = np.rint(0.75 * images + 0.25 * noise_pattern(SHAPE).astype(np.float64)).astype(np.uint8)
    np.testing.assert_array_equal(test, expected)
    p = atk.poison(images, labels)
    v = p.is_poison
    # train poisons carry the weaker, partial trigger: never the test image
    assert _changed(p.images[v], test[v]).all()
    assert (np.abs(p.images[v].astype(int) - images[v]) <= np.abs(test[v].astype(int) - images[v]) + 1).all()


# ---------------------------------------------------------------- adaptive_patch


def _spot_states(out, images, pasted, alphas, size=4):
    """Per sample and patch spot (top-left, top-right, bottom-left, bottom-right of an 8x8
    image): 0 if untouched, 1 if the patch is there at its train alpha; anything else fails."""
    spots = [(slice(0, size), slice(0, size)), (slice(0, size), slice(8 - size, 8)), (slice(8 - size, 8), slice(0, size)), (slice(8 - size, 8), slice(8 - size, 8))]
    states = np.zeros((len(out), len(alphas)), dtype=int)
    for i, ((rows, cols), alpha) in enumerate(zip(spots, alphas)):
        region, clean, patch = out[:, :, rows, cols], images[:, :, rows, cols], pasted[:, :, rows, cols].astype(np.float64)
        partial = np.rint((1 - alpha) * clean + alpha * patch).astype(np.uint8)
        untouched = (region == clean).all(axis=(1, 2, 3))
        stamped = (region == partial).all(axis=(1, 2, 3))
        assert (untouched ^ stamped).all(), f"spot {i} neither clean nor the patch at alpha {alpha}"
        states[:, i] = stamped
    return states


@pytest.mark.parametrize("per_sample", [1, 2, 3])
def test_adaptive_patch_train_partial_test_all(per_sample):
    grey = np.full((12, *SHAPE), 100, np.uint8)  # every patch pixel (0 or 255) differs from it
    alphas = (0.5, 0.2, 0.5, 0.3)
    atk = _attack(name="adaptive_patch", patch_alphas=list(alphas), patches_per_sample=per_sample)
    pasted = atk.trigger_test(grey)
    # test time: all four 4x4 patches pasted in full, covering the whole 8x8 image
    assert set(np.unique(pasted)) == {0, 255}
    assert (pasted == pasted[0]).all()
    out = atk.trigger(grey, np.random.default_rng(0))
    states = _spot_states(out, grey, pasted, alphas)
    assert (states.sum(axis=1) == per_sample).all()
    if per_sample < 4:
        assert len(np.unique(states, axis=0)) > 1  # which patches varies per sample


def test_adaptive_patch_poisons_and_covers():
    grey = np.full((N, *SHAPE), 100, np.uint8)
    labels = np.arange(N) % K
    atk = _attack(name="adaptive_patch", rate=0.1, cover_rate=0.1)
    p = atk.poison(grey, labels)
    touched = p.is_poison | p.is_cover
    assert (p.is_poison.sum(), p.is_cover.sum()) == (4, 4)
    states = _spot_states(p.images[touched], grey[touched], atk.trigger_test(grey[touched]), (0.5, 0.2, 0.5, 0.3))
    assert (states.sum(axis=1) == 2).all()
    np.testing.assert_array_equal(p.labels[p.is_cover], labels[p.is_cover])


def test_adaptive_patch_fewer_patches_leave_spots_alone():
    images, _ = _data(n=5)
    atk = _attack(name="adaptive_patch", patch_alphas=[0.5, 0.5], patches_per_sample=2)
    for out in (atk.trigger(images), atk.trigger_test(images)):
        np.testing.assert_array_equal(out[:, :, 4:], images[:, :, 4:])  # bottom spots unused
        assert _changed(out[:, :, :4, :4], images[:, :, :4, :4]).all()
        assert _changed(out[:, :, :4, 4:], images[:, :, :4, 4:]).all()


# ---------------------------------------------------------------- none


def test_none_changes_nothing():
    images, labels = _data(n=30)
    atk = _attack(name="none", rate=0.5, target=99)  # target is irrelevant to real data
    p = atk.poison(images, labels)
    np.testing.assert_array_equal(p.images, images)
    np.testing.assert_array_equal(p.labels, labels)
    assert not p.is_poison.any() and not p.is_cover.any()
    assert p.images is not images and p.labels is not labels  # like every attack: a copy
    assert not atk.asr_mask(labels).any()
    np.testing.assert_array_equal(atk.trigger_test(images), images)
