import numpy as np
import pytest
import torch

from sanitizer.attacks import build_attack
from sanitizer.attacks.dynamic import MASK_DENSITY
from sanitizer.config import config
from sanitizer.errors import SanitizerError

SHAPE = (1, 12, 12)
K = 4
N = 200


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _attack(shape=SHAPE, k=K, **kw):
    kw = {"name": "input_aware", "generator_epochs": 1, "rate": 0.1, "target": 1, **kw}
    return build_attack(config("attack", {"attack": kw}), shape, k)


def _data(n=N, shape=SHAPE, k=K, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    labels = np.arange(n) % k
    return images, labels


@pytest.fixture(scope="module")
def fitted():
    """One attack poisoned with the default seed, shared by the read-only checks."""
    torch.set_num_threads(1)
    images, labels = _data()
    atk = _attack()
    return atk, images, labels, atk.poison(images, labels)


def test_registered_with_paper_cover_rate():
    atk = _attack()
    assert atk.cfg.cover_rate == 0.1
    assert _attack(cover_rate=0.05).cfg.cover_rate == 0.05


def test_deterministic_per_seed(fitted):
    _, images, labels, first = fitted
    torch_state = torch.random.get_rng_state()
    again = _attack().poison(images, labels)
    assert torch.equal(torch.random.get_rng_state(), torch_state)  # global RNG untouched
    for field in ("images", "labels", "is_poison", "is_cover"):
        np.testing.assert_array_equal(getattr(again, field), getattr(first, field))
    other = _attack(seed=1).poison(images, labels)
    assert not np.array_equal(other.images, first.images)


def test_same_output_whatever_the_thread_count(fitted):
    _, images, labels, first = fitted
    torch.set_num_threads(2)
    np.testing.assert_array_equal(_attack().poison(images, labels).images, first.images)
    assert torch.get_num_threads() == 2  # restored


def test_counts_labels_and_untouched(fitted):
    _, images, labels, p = fitted
    assert p.is_poison.sum() == round(0.1 * N)
    assert p.is_cover.sum() == round(0.1 * N)
    assert not (p.is_poison & p.is_cover).any()
    v, c = p.is_poison, p.is_cover
    assert (labels[v] != 1).all() and (p.labels[v] == 1).all()
    np.testing.assert_array_equal(p.labels[~v], labels[~v])  # covers keep their labels
    clean = ~v & ~c
    np.testing.assert_array_equal(p.images[clean], images[clean])
    assert p.images.dtype == np.uint8
    # every poison and cover sample is actually changed
    changed = (p.images != images).any(axis=(1, 2, 3))
    assert changed[v].all() and changed[c].all()
    np.testing.assert_array_equal(images, _data()[0])  # input not mutated


def test_poisons_carry_their_own_trigger(fitted):
    atk, images, _, p = fitted
    v = p.is_poison
    np.testing.assert_array_equal(p.images[v], atk.trigger(images[v]))
    np.testing.assert_array_equal(atk.trigger_test(images[v]), atk.trigger(images[v]))
    # x' = x + m(x) (g(x) - x), rounded
    patterns, masks = atk.generate(images[v])
    x = images[v].astype(np.float32)
    expected = x + masks * (255 * patterns - x)
    assert np.abs(p.images[v].astype(np.float32) - expected).max() <= 0.5 + 1e-3


def test_triggers_are_sample_specific(fitted):
    atk, images, _, _ = fitted
    patterns, masks = atk.generate(images[:40])
    assert patterns.shape == (40, *SHAPE) and masks.shape == (40, 1, *SHAPE[1:])
    assert 0 <= patterns.min() and patterns.max() <= 1 and 0 <= masks.min() and masks.max() <= 1
    # different images get clearly different patterns and masks
    assert np.abs(patterns[:20] - patterns[20:]).mean() > 0.02
    assert np.abs(masks[:20] - masks[20:]).mean() > 0.005
    # so the same image with another image's trigger is not its own poisoned version
    own = atk.trigger(images[:2])
    swapped = atk._stamp(images[:2], images[1::-1])
    assert (np.abs(own.astype(int) - swapped).max(axis=(1, 2, 3)) > 5).all()


def test_masks_stay_sparse():
    images, labels = _data(n=400)
    atk = _attack(generator_epochs=2)
    atk.poison(images, labels)
    _, masks = atk.generate(images[:100])
    assert masks.mean() < 3 * MASK_DENSITY


def test_cover_is_cross_mode(fitted):
    atk, images, _, _ = fitted
    batch = images[:30]
    rng = np.random.default_rng(7)
    out = atk.cover(batch, rng)
    assert out.dtype == np.uint8 and out.shape == batch.shape
    np.testing.assert_array_equal(out, atk.cover(batch, np.random.default_rng(7)))
    assert not np.array_equal(out, atk.trigger(batch))
    # each cover image is the image with the trigger generated from another image of the batch
    patterns, masks = atk.generate(batch)
    x = batch.astype(np.float32)[:, None]  # i x j: image i with image j's trigger
    crossed = x + masks[None] * (255 * patterns[None] - x)
    err = np.abs(crossed - out[:, None]).max(axis=(2, 3, 4))  # 30 x 30
    np.fill_diagonal(err, np.inf)
    assert (err.min(axis=1) <= 0.5 + 1e-3).all()
    # a single cover image borrows a trigger too, and stays uint8
    one = atk.cover(batch[:1], rng)
    assert one.dtype == np.uint8 and not np.array_equal(one, batch[:1])


def test_rgb_and_odd_size():
    shape = (3, 11, 9)
    images, labels = _data(n=60, shape=shape)
    p = _attack(shape=shape, rate=0.2).poison(images, labels)
    assert p.images.shape == images.shape and p.images.dtype == np.uint8
    assert (p.images[p.is_poison] != images[p.is_poison]).any(axis=(1, 2, 3)).all()


def test_error_before_prepare():
    atk = _attack()
    images, _ = _data(n=3)
    for call in (atk.trigger, atk.trigger_test, lambda x: atk.cover(x, np.random.default_rng(0)), atk.generate):
        with pytest.raises(SanitizerError, match="call it first"):
            call(images)
    with pytest.raises(SanitizerError, match="call it first"):
        atk.trigger(images[:0])


def test_bad_generator_epochs():
    with pytest.raises(SanitizerError, match="generator_epochs"):
        _attack(generator_epochs=0)


def test_not_all_to_all():
    with pytest.raises(SanitizerError, match="all-to-all"):
        _attack(mode="all-to-all")
