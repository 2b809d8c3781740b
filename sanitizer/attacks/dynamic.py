"""Input-aware dynamic backdoor (Nguyen & Tran, NeurIPS 2020), as static data poisoning.

The attacker fits, on a seeded subset of the clean train split, a mask generator M and a pattern
generator G (small conv encoder-decoders) next to a surrogate classifier. Every image x gets its
own trigger: x' = x + m(x) * (g(x) - x). Training follows the paper's two stages:

1. M alone: a density hinge keeps each mask's mean below MASK_DENSITY, and a diversity loss
   |x1 - x2| / |m(x1) - m(x2)| makes different images get different masks.
2. M frozen; G and the surrogate jointly: cross-entropy on clean samples, on backdoor samples
   (relabelled to the target) and on "cross" samples x1 + m(x2) * (g(x2) - x1) that carry another
   image's trigger and keep their label, plus the same diversity loss on the patterns. Cross
   samples teach that a trigger only works on the image it was made for.
Each stage runs `generator_epochs` epochs; within a shuffled batch every image is paired with
the next one for the diversity and cross terms.

The poisoned train set then holds the fitted triggers of the victims (relabelled) and, as cover
samples, cross-triggered images that keep their labels. Everything runs on the CPU under a forked,
seeded torch RNG, so the same seed and data give byte-identical output.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from ..errors import SanitizerError
from .base import ATTACKS, Attack, to_uint8

MASK_DENSITY = 0.05  # the most a mask may cover on average (the paper: 0.032 on CIFAR-10)
MASK_SHARPNESS = 3.0  # logit scale of the mask sigmoid: closer to binary masks, as the paper's threshold
FIT_SAMPLES = 5000  # the attacker's training subset, at most
BATCH = 32  # small batches: a couple of epochs on 5000 images still give a few hundred steps
APPLY_BATCH = 1024
MASK_LR = 1e-2
GENERATOR_LR = 1e-2  # patterns and surrogate, Adam
LAMBDA_NORM = 100.0  # weight of the mask density hinge (as in the paper)
LAMBDA_DIV = 1.0  # weight of the diversity losses (as in the paper)
# Shares of each stage-2 batch made backdoor and cross samples. The paper uses 0.1 each over
# hundreds of epochs; with a couple of epochs, 0.2 each gives the backdoor term enough weight.
P_BACKDOOR = 0.2
P_CROSS = 0.2
EPS = 1e-4


def _networks(channels: int, num_classes: int):
    import torch
    from torch import nn
    import torch.nn.functional as F

    class EncoderDecoder(nn.Module):
        """A full-resolution conv, a stride-2 conv, a conv at half resolution, bilinear
        upsampling back to the input size and a last conv. Tiny, so fitting and applying it to
        tens of thousands of images stays within seconds on a CPU."""

        def __init__(self, out_channels: int):
            super().__init__()
            self.enc = nn.Sequential(
                nn.Conv2d(channels, 16, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1),
                nn.ReLU(),
                nn.Conv2d(32, 16, 3, padding=1),
                nn.ReLU(),
            )
            self.dec = nn.Conv2d(16, out_channels, 3, padding=1)

        def forward(self, x):  # logits, same H x W as x
            h = F.interpolate(self.enc(x - 0.5), size=x.shape[-2:], mode="bilinear", align_corners=False)
            return self.dec(h)

    class Patterns(EncoderDecoder):
        def __init__(self):
            super().__init__(channels)

        def forward(self, x):
            return torch.sigmoid(super().forward(x))

    class Masks(EncoderDecoder):
        def __init__(self):
            super().__init__(1)
            nn.init.constant_(self.dec.bias, math.log(MASK_DENSITY / (1 - MASK_DENSITY)) / MASK_SHARPNESS)

        def forward(self, x):
            return torch.sigmoid(MASK_SHARPNESS * super().forward(x))

    surrogate = nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(32 * 16, num_classes),
    )
    return Patterns(), Masks(), surrogate


def _diversity(x1, x2, y1, y2):
    """Mean input distance over mean output distance: small when different inputs give
    different outputs."""
    return (x1 - x2).abs().mean() / ((y1 - y2).abs().mean() + EPS)


@contextlib.contextmanager
def _one_thread():
    """Float sums in conv kernels are split by thread count; one thread makes the output the
    same whatever the machine's core count (the networks are too small to gain much from more)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _partner(t):
    """Pairs each sample of a batch with the next one (the last with the first)."""
    return t.roll(-1, dims=0)


def _apply(x, mask, pattern):
    return x + mask * (pattern - x)


@ATTACKS.register("input_aware")
class InputAware(Attack):
    """Input-aware dynamic backdoor: a generator fitted by `poison()` gives every image its own
    mask and pattern; poisons are relabelled to the target. Cover samples ("cross" mode) carry
    the trigger generated from another image of their batch and keep their labels."""

    defaults = {"cover_rate": 0.1}

    def __init__(self, cfg, image_shape, num_classes):
        super().__init__(cfg, image_shape, num_classes)
        if self.cfg.generator_epochs < 1:
            raise SanitizerError(f"params.yaml [attack].generator_epochs must be at least 1, got {self.cfg.generator_epochs}")
        self._patterns = self._masks = self._spares = None

    # ---- fitting

    def prepare(self, images, labels):
        import torch

        if images.shape[1:] != self.image_shape:
            raise SanitizerError(f"input_aware: images are {images.shape[1:]}, the attack was built for {self.image_shape}")
        rng = np.random.default_rng([self.cfg.seed, 0x1A])  # apart from poison()'s own draws
        n = min(len(images), FIT_SAMPLES)
        if n < 2:
            raise SanitizerError("input_aware: fitting the trigger generator needs at least 2 train images")
        subset = np.sort(rng.choice(len(images), size=n, replace=False))
        x_all = torch.from_numpy(images[subset].astype(np.float32) / 255.0)
        y_all = torch.from_numpy(np.asarray(labels)[subset].astype(np.int64))
        with torch.random.fork_rng(devices=[]), _one_thread():
            torch.random.default_generator.manual_seed(self.cfg.seed)
            patterns, masks, surrogate = _networks(self.image_shape[0], self.num_classes)
            self._fit_masks(masks, x_all, rng)
            self._fit_patterns(patterns, masks, surrogate, x_all, y_all, rng)
        patterns.eval(), masks.eval()
        for p in [*patterns.parameters(), *masks.parameters()]:
            p.requires_grad_(False)
        self._patterns, self._masks = patterns, masks
        self._spares = images[subset[:64]].copy()

    def _batches(self, n: int, rng: np.random.Generator):
        """A fresh shuffle of the fitting subset, cut into batches (the last one may be short)."""
        import torch

        order = torch.from_numpy(rng.permutation(n))
        return [order[start : start + BATCH] for start in range(0, n, BATCH) if n - start >= 2]

    def _fit_masks(self, masks, x_all, rng):
        import torch

        opt = torch.optim.Adam(masks.parameters(), lr=MASK_LR)
        masks.train()
        for _ in range(self.cfg.generator_epochs):
            for i in self._batches(len(x_all), rng):
                x1 = x_all[i]
                m1 = masks(x1)
                # partners: the next image of the shuffled batch, so each mask is computed once
                x2, m2 = _partner(x1), _partner(m1)
                density = torch.relu(m1.mean(dim=(1, 2, 3)) - MASK_DENSITY).mean()
                loss = LAMBDA_NORM * density + LAMBDA_DIV * _diversity(x1, x2, m1, m2)
                opt.zero_grad()
                loss.backward()
                opt.step()
        for p in masks.parameters():
            p.requires_grad_(False)
        masks.eval()

    def _fit_patterns(self, patterns, masks, surrogate, x_all, y_all, rng):
        import torch
        import torch.nn.functional as F

        opt = torch.optim.Adam([*patterns.parameters(), *surrogate.parameters()], lr=GENERATOR_LR)
        patterns.train(), surrogate.train()
        for _ in range(self.cfg.generator_epochs):
            for i in self._batches(len(x_all), rng):
                x1, y1 = x_all[i], y_all[i]
                b = len(x1)
                n_bd, n_cross = round(b * P_BACKDOOR), round(b * P_CROSS)
                g1 = patterns(x1)
                with torch.no_grad():
                    m1 = masks(x1)
                g2, m2, x2 = _partner(g1), _partner(m1), _partner(x1)
                bd, cross = slice(0, n_bd), slice(n_bd, n_bd + n_cross)
                backdoor = _apply(x1[bd], m1[bd], g1[bd])
                crossed = _apply(x1[cross], m2[cross], g2[cross])  # another image's trigger
                inputs = torch.cat([backdoor, crossed, x1[n_bd + n_cross :]])
                targets = torch.cat([torch.from_numpy(self.target_labels(y1[bd].numpy())), y1[n_bd:]])
                loss = F.cross_entropy(surrogate(inputs), targets) + LAMBDA_DIV * _diversity(x1, x2, g1, g2)
                opt.zero_grad()
                loss.backward()
                opt.step()

    # ---- triggers

    def _check_fitted(self) -> None:
        if self._patterns is None:
            raise SanitizerError("input_aware: the trigger generator is fitted by poison(); call it first")

    def generate(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The fitted patterns (N x C x H x W) and masks (N x 1 x H x W), floats in [0, 1]."""
        import torch

        self._check_fitted()
        patterns = np.empty(images.shape, dtype=np.float32)
        masks = np.empty((len(images), 1, *images.shape[2:]), dtype=np.float32)
        with torch.no_grad(), _one_thread():
            for start in range(0, len(images), APPLY_BATCH):
                x = torch.from_numpy(images[start : start + APPLY_BATCH].astype(np.float32) / 255.0)
                patterns[start : start + len(x)] = self._patterns(x).numpy()
                masks[start : start + len(x)] = self._masks(x).numpy()
        return patterns, masks

    def _stamp(self, images: np.ndarray, sources: np.ndarray) -> np.ndarray:
        """Each image gets the mask and pattern generated from the source image at its index."""
        self._check_fitted()
        out = np.empty_like(images)
        for start in range(0, len(images), APPLY_BATCH):
            part = slice(start, start + APPLY_BATCH)
            patterns, masks = self.generate(sources[part])
            x = images[part].astype(np.float32) / 255.0
            out[part] = to_uint8(255.0 * _apply(x, masks, patterns))
        return out

    def trigger(self, images, rng=None):
        return self._stamp(images, images)

    def cover(self, images, rng):
        self._check_fitted()
        n = len(images)
        if n < 2:  # no other image in the batch: borrow one the attacker fitted on
            return self._stamp(images, self._spares[rng.integers(len(self._spares), size=n)])
        partner = (np.arange(n) + rng.integers(1, n, size=n)) % n  # uniform over the others
        return self._stamp(images, images[partner])

    def trigger_test(self, images):
        return self.trigger(images)
