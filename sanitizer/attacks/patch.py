"""Local patch triggers: BadNets, PhysicalBA, TaCT and Adaptive-Patch."""

from __future__ import annotations

import numpy as np

from ..errors import SanitizerError
from .base import ATTACKS, Attack, blend, corner, to_uint8
from .patterns import binary_patch, trojan_square


def stamp(images: np.ndarray, patch: np.ndarray, where: tuple[slice, slice], alpha=1.0) -> np.ndarray:
    """Blend `patch` into the `where` square of every image (alpha 1: paste it)."""
    out = images.copy()
    rows, cols = where
    out[:, :, rows, cols] = blend(images[:, :, rows, cols], patch, alpha)
    return out


@ATTACKS.register("badnets")
class BadNets(Attack):
    """A white square (default 3x3) stamped at a corner (Gu et al.); dirty label."""

    supports_all_to_all = True
    uses_trigger_size = True

    def trigger(self, images, rng=None):
        c = self.image_shape[0]
        white = np.full((c, self.cfg.trigger_size, self.cfg.trigger_size), 255, dtype=np.float32)
        return stamp(images, white, corner(self.image_shape, self.cfg.trigger_size, self.cfg.position))


@ATTACKS.register("physical_ba")
class PhysicalBA(BadNets):
    """PhysicalBA (Li et al., 2021): the BadNets trigger, then at train time each poison goes
    through a random flip, colour jitter and affine warp, as a photographed trigger would; at
    test time the plain trigger is used."""

    supports_all_to_all = False

    def trigger(self, images, rng=None):
        return physical_transform(super().trigger(images), rng or np.random.default_rng(self.cfg.seed))

    def trigger_test(self, images):
        return super().trigger(images)


def physical_transform(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per sample: horizontal flip (p 0.5), rotation +-10 deg, scale 0.9-1.1, shift +-10 %,
    brightness and contrast x0.8-1.2."""
    import torch
    import torch.nn.functional as F

    n = len(images)
    angle = np.deg2rad(rng.uniform(-10, 10, n))
    scale = rng.uniform(0.9, 1.1, n)
    shift = rng.uniform(-0.2, 0.2, (n, 2))  # normalised coordinates span 2: +-10 % of the side
    flip = rng.random(n) < 0.5
    brightness, contrast = rng.uniform(0.8, 1.2, (2, n, 1, 1, 1))
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    theta = np.stack([np.stack([cos, -sin, shift[:, 0]], 1), np.stack([sin, cos, shift[:, 1]], 1)], 1)
    x = torch.from_numpy(images).float()
    grid = F.affine_grid(torch.from_numpy(theta).float(), list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False).numpy()
    x = np.where(flip[:, None, None, None], x[..., ::-1], x) * brightness
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return to_uint8((x - mean) * contrast + mean)


@ATTACKS.register("tact")
class TaCT(Attack):
    """TaCT (Tang et al.): only `source`-class images carry the trigger to the target; cover
    samples from the other classes carry it too but keep their labels, so the trigger alone does
    not mean "target". ASR counts source-class test images only."""

    defaults = {"trigger_size": 8, "cover_rate": 0.01}
    uses_trigger_size = True

    def __init__(self, cfg, image_shape, num_classes):
        super().__init__(cfg, image_shape, num_classes)
        if not 0 <= self.cfg.source < num_classes or self.cfg.source == self.cfg.target:
            raise SanitizerError(f"params.yaml [attack].source {self.cfg.source} must be a class index other than the target")
        self.patch = trojan_square(self.image_shape[0], self.cfg.trigger_size)

    def candidates(self, labels):
        return np.flatnonzero(labels == self.cfg.source)

    def cover_candidates(self, labels):
        return np.flatnonzero((labels != self.cfg.source) & (labels != self.cfg.target))

    def asr_mask(self, labels):
        return labels == self.cfg.source

    def trigger(self, images, rng=None):
        return stamp(images, self.patch, corner(self.image_shape, self.cfg.trigger_size, self.cfg.position))


PATCH_SPOTS = ("top-left", "top-right", "bottom-left", "bottom-right", "center")


@ATTACKS.register("adaptive_patch")
class AdaptivePatch(Attack):
    """Adaptive-Patch (Qi et al., ICLR 2023): several small patches, one per spot; at train time
    each poison and cover sample gets `patches_per_sample` of them at their partial alphas, at
    test time all of them fully pasted. Cover samples keep their labels."""

    defaults = {"trigger_size": 4, "cover_rate": 0.01}
    uses_trigger_size = True

    def __init__(self, cfg, image_shape, num_classes):
        super().__init__(cfg, image_shape, num_classes)
        n = len(self.cfg.patch_alphas)
        if not 1 <= n <= len(PATCH_SPOTS) or not 1 <= self.cfg.patches_per_sample <= n:
            raise SanitizerError(
                f"params.yaml [attack]: adaptive_patch needs 1..{len(PATCH_SPOTS)} patch_alphas and "
                f"1..len(patch_alphas) patches_per_sample, got {n} and {self.cfg.patches_per_sample}"
            )
        size, c = self.cfg.trigger_size, self.image_shape[0]
        self.patches = [binary_patch(c, size, seed=i) for i in range(n)]
        self.spots = [corner(self.image_shape, size, p) for p in PATCH_SPOTS[:n]]

    def trigger(self, images, rng=None):
        rng = rng or np.random.default_rng(self.cfg.seed)
        n, k = len(images), len(self.patches)
        chosen = rng.random((n, k)).argsort(1) < self.cfg.patches_per_sample
        out = images.copy()
        for i, (patch, spot, alpha) in enumerate(zip(self.patches, self.spots, self.cfg.patch_alphas)):
            rows = np.flatnonzero(chosen[:, i])
            out[rows] = stamp(out[rows], patch, spot, alpha)
        return out

    def trigger_test(self, images):
        out = images
        for patch, spot in zip(self.patches, self.spots):
            out = stamp(out, patch, spot)
        return out
