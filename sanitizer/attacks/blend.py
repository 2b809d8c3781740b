"""Whole-image triggers: Blend, SIG and Adaptive-Blend."""

from __future__ import annotations

import math

import numpy as np

from ..errors import SanitizerError
from .base import ATTACKS, Attack, blend, to_uint8
from .patterns import blend_pattern


@ATTACKS.register("blend")
class Blend(Attack):
    """x' = (1 - alpha) x + alpha * pattern (Chen et al.); dirty label."""

    supports_all_to_all = True

    def __init__(self, cfg, image_shape, num_classes):
        super().__init__(cfg, image_shape, num_classes)
        self.pattern = blend_pattern(self.cfg, self.image_shape)

    def trigger(self, images, rng=None):
        return blend(images, self.pattern, self.cfg.alpha)


@ATTACKS.register("sig")
class SIG(Attack):
    """A horizontal sinusoid x + delta sin(2 pi j f / W) added to target-class images only
    (Barni et al.): clean label, so the labels never change. The test-time signal is stronger."""

    clean_label = True

    def __init__(self, cfg, image_shape, num_classes):
        super().__init__(cfg, image_shape, num_classes)
        # A cover here would be a triggered image that keeps its label: exactly a SIG poison.
        if self.cfg.cover_rate:
            raise SanitizerError(f"attack 'sig' is clean-label (its poisons keep their labels): cover_rate must be 0, got {self.cfg.cover_rate}")

    def candidates(self, labels):
        return np.flatnonzero(labels == self.cfg.target)

    def signal(self, delta: float) -> np.ndarray:
        w = self.image_shape[2]
        return delta * np.sin(2 * math.pi * np.arange(w) * self.cfg.frequency / w).astype(np.float32)

    def trigger(self, images, rng=None):
        return to_uint8(images.astype(np.float32) + self.signal(self.cfg.delta))

    def trigger_test(self, images):
        return to_uint8(images.astype(np.float32) + self.signal(self.cfg.delta_test))


@ATTACKS.register("adaptive_blend")
class AdaptiveBlend(Attack):
    """Adaptive-Blend (Qi et al., ICLR 2023): the pattern is cut into `pieces` blocks and each
    poison and cover sample gets a random half of them at `train_alpha`; at test time the whole
    pattern is blended at `alpha`. Cover samples keep their labels."""

    defaults = {"cover_rate": 0.01}

    def __init__(self, cfg, image_shape, num_classes):
        super().__init__(cfg, image_shape, num_classes)
        side = math.isqrt(max(self.cfg.pieces, 0))
        # At least 4: with 1 block, half of it is none, so poisons would carry no trigger at all.
        if self.cfg.pieces < 4 or side * side != self.cfg.pieces or side > min(self.image_shape[1:]):
            raise SanitizerError(
                f"params.yaml [attack].pieces must be a square number of blocks (4, 9, 16, ...) that fits the image, got {self.cfg.pieces}"
            )
        self.pattern = blend_pattern(self.cfg, self.image_shape)
        _, h, w = self.image_shape
        rows = np.minimum(np.arange(h) * side // h, side - 1)
        cols = np.minimum(np.arange(w) * side // w, side - 1)
        self.piece_of = rows[:, None] * side + cols[None, :]  # H x W piece index

    def trigger(self, images, rng=None):
        rng = rng or np.random.default_rng(self.cfg.seed)
        n, k = len(images), self.cfg.pieces
        chosen = rng.random((n, k)).argsort(1) < k // 2  # a random permutation marks a random half
        alpha = self.cfg.train_alpha * chosen[:, self.piece_of][:, None].astype(np.float32)
        return blend(images, self.pattern, alpha)

    def trigger_test(self, images):
        return blend(images, self.pattern, self.cfg.alpha)
