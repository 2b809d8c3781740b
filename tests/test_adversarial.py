import numpy as np
import pytest
import torch
from torch import nn

from sanitizer.adversarial import patch_masks, patch_pgd, robustness_scores
from sanitizer.config import ScoreConfig, config


def _score_cfg(**kw):
    return config("score", {"score": {"robustness": True, **kw}})


class PixelModel(nn.Module):
    """Logits depend only on pixel (0, 0) of channel 0."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(3.0))

    def forward(self, x):
        v = x[:, 0, 0, 0] - 0.5
        return torch.stack([self.w * v, -self.w * v, torch.zeros_like(v)], 1)


class LinearModel(nn.Module):
    def __init__(self, d, k, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.lin = nn.Linear(d, k)
        with torch.no_grad():
            self.lin.weight.copy_(torch.randn(k, d, generator=g))
            self.lin.bias.copy_(torch.randn(k, generator=g))

    def forward(self, x):
        return self.lin(x.flatten(1))


@pytest.mark.parametrize("size,pmin,pmax", [(8, 0.25, 0.5), (28, 0.25, 0.5), (10, 0.3, 0.3), (16, 0.1, 1.0)])
def test_patch_masks_are_squares_in_range(size, pmin, pmax):
    cfg = _score_cfg(patch_min=pmin, patch_max=pmax)
    n = 300
    m = patch_masks(n, size, size, cfg, torch.Generator().manual_seed(0))
    assert m.shape == (n, 1, size, size) and m.dtype == torch.bool
    lo, hi = max(1, round(pmin * size)), max(1, round(pmax * size))
    sides = []
    for mask in m[:, 0].numpy():
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        h, w = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        assert h == w  # square
        assert mask.sum() == h * w  # filled, contiguous
        assert mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].all()
        assert lo <= h <= hi
        sides.append(h)
    if hi > lo:
        assert len(set(sides)) > 1
    # every position is reachable: masks touch all four borders
    assert m[:, 0, 0, :].any() and m[:, 0, -1, :].any() and m[:, 0, :, 0].any() and m[:, 0, :, -1].any()


def test_patch_masks_deterministic():
    cfg = _score_cfg()
    a = patch_masks(50, 12, 12, cfg, torch.Generator().manual_seed(3))
    b = patch_masks(50, 12, 12, cfg, torch.Generator().manual_seed(3))
    c = patch_masks(50, 12, 12, cfg, torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_patch_pgd_constraints():
    torch.manual_seed(0)
    n, shape = 16, (3, 8, 8)
    model = LinearModel(int(np.prod(shape)), 4)
    x = torch.rand(n, *shape)
    x[:, :, :2] = 0.0  # near the clamp edges too
    x[:, :, -2:] = 1.0
    y = torch.randint(0, 4, (n,))
    cfg = _score_cfg()
    mask = patch_masks(n, 8, 8, cfg, torch.Generator().manual_seed(0))
    eps = 16 / 255
    x_adv, clean = patch_pgd(model, x, y, mask, eps, steps=3)
    assert x_adv.shape == x.shape
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    outside = ~mask.expand_as(x)
    assert torch.equal(x_adv[outside], x[outside])
    assert (x_adv != x)[mask.expand_as(x)].any()
    torch.testing.assert_close(clean, model(x).detach())
    # the attack raises the loss at the given label
    ce = nn.functional.cross_entropy
    assert (ce(model(x_adv), y, reduction="none") >= ce(model(x), y, reduction="none") - 1e-6).all()


def _images(n, shape, seed=0, lo=0, hi=256):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi, (n, *shape), generator=g, dtype=torch.uint8)


def test_scores_nonnegative_and_batch_size_independent():
    n, shape = 40, (1, 8, 8)
    model = LinearModel(64, 3, seed=1)
    images = _images(n, shape)
    labels = torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(1))
    a = robustness_scores(model, images, labels, _score_cfg(batch_size=7, seed=2))
    b = robustness_scores(model, images, labels, _score_cfg(batch_size=64, seed=2))
    assert a.robustness.shape == (n,) and a.loss.shape == (n,)
    # float32 matrix products take other paths at other batch sizes: R agrees to 1e-6 nats
    np.testing.assert_allclose(a.robustness, b.robustness, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-5, atol=1e-6)
    assert (a.robustness >= 0).all()
    assert (a.robustness > 0).any()
    # the loss column is the clean cross-entropy at the given label
    with torch.no_grad():
        ce = nn.functional.cross_entropy(model(images.float() / 255), labels, reduction="none")
    np.testing.assert_allclose(a.loss, ce.double().numpy(), rtol=1e-5, atol=1e-6)
    # the model is left trainable
    assert all(p.requires_grad for p in model.parameters())


def test_without_robustness_only_the_loss_is_computed_and_it_is_the_same_loss():
    n, shape = 40, (1, 8, 8)
    model = LinearModel(64, 3, seed=1)
    images = _images(n, shape)
    labels = torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(1))
    both = robustness_scores(model, images, labels, _score_cfg(batch_size=16))
    loss_only = robustness_scores(model, images, labels, _score_cfg(robustness=False, batch_size=16))
    assert np.isnan(loss_only.robustness).all() and np.isfinite(both.robustness).all()
    np.testing.assert_allclose(loss_only.loss, both.loss, rtol=1e-6, atol=1e-7)


def test_scores_depend_on_seed():
    n, shape = 40, (1, 8, 8)
    model = LinearModel(64, 3, seed=1)
    images = _images(n, shape)
    labels = torch.zeros(n, dtype=torch.long)
    a = robustness_scores(model, images, labels, _score_cfg(seed=0))
    b = robustness_scores(model, images, labels, _score_cfg(seed=1))
    assert not np.allclose(a.robustness, b.robustness)


def test_r_zero_exactly_when_mask_misses_the_only_pixel_that_matters():
    n, size = 120, 8
    cfg = _score_cfg(patch_min=0.5, patch_max=0.75, batch_size=32, seed=5)
    model = PixelModel()
    images = _images(n, (1, size, size), lo=60, hi=200)  # away from 0/1: the step is not clamped away
    labels = torch.randint(0, 3, (n,), generator=torch.Generator().manual_seed(2))
    scores = robustness_scores(model, images, labels, cfg)
    covers = patch_masks(n, size, size, cfg, torch.Generator().manual_seed(cfg.seed))[:, 0, 0, 0].numpy()
    assert covers.any() and (~covers).any()
    assert (scores.robustness[~covers] == 0).all()
    assert (scores.robustness[covers] > 0).all()


def test_r_scales_with_eps():
    n, size = 60, 8
    model = PixelModel()
    images = _images(n, (1, size, size), lo=100, hi=150)
    labels = torch.zeros(n, dtype=torch.long)
    small = robustness_scores(model, images, labels, _score_cfg(eps=2 / 255, patch_min=1.0, patch_max=1.0))
    large = robustness_scores(model, images, labels, _score_cfg(eps=16 / 255, patch_min=1.0, patch_max=1.0))
    # a full-image mask always covers (0, 0)
    assert (small.robustness > 0).all()
    assert (large.robustness > small.robustness).all()


def test_non_square_images_score_with_masks_inside_them():
    cfg = ScoreConfig(robustness=True, patch_min=0.25, patch_max=0.5, batch_size=16)
    masks = patch_masks(40, 8, 12, cfg, torch.Generator().manual_seed(0))
    assert masks.shape == (40, 1, 8, 12)
    sides = masks.sum((1, 2, 3)).sqrt()
    assert torch.all((sides >= 2) & (sides <= 4))  # fractions of the shorter side, 8
    from sanitizer.models import build_model

    model = build_model("small_cnn", (1, 8, 12), 3)
    images = torch.randint(0, 256, (20, 1, 8, 12), dtype=torch.uint8)
    scores = robustness_scores(model, images, torch.randint(0, 3, (20,)), cfg)
    assert scores.robustness.shape == (20,) and np.all(scores.robustness >= 0)
