"""WaNet (Nguyen & Tran, ICLR 2021): an imperceptible, smooth warping field as the trigger."""

from __future__ import annotations

import numpy as np

from .base import ATTACKS, Attack, to_uint8


@ATTACKS.register("wanet")
class WaNet(Attack):
    """A fixed random k x k control grid, upsampled to a smooth field of strength `warp_s`,
    warps poisons (relabelled). Cover samples ("noise mode") get the field plus per-sample random
    jitter and keep their labels, so only the exact warp means "target"."""

    defaults = {"cover_rate": 0.05}

    def __init__(self, cfg, image_shape, num_classes):
        super().__init__(cfg, image_shape, num_classes)
        import torch
        import torch.nn.functional as F

        _, h, w = self.image_shape
        gen = torch.Generator().manual_seed(self.cfg.seed)
        control = torch.rand(1, 2, self.cfg.warp_k, self.cfg.warp_k, generator=gen) * 2 - 1
        control = control / control.abs().mean()
        field = F.interpolate(control, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        identity = torch.stack((xs, ys), dim=2)[None]
        self.grid = ((identity + self.cfg.warp_s * field / h) * self.cfg.grid_rescale).clamp(-1, 1)

    def _warp(self, images: np.ndarray, grid) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(images).float()
        grid = grid.expand(len(x), -1, -1, -1)
        return to_uint8(F.grid_sample(x, grid, mode="bilinear", align_corners=True).numpy())

    def trigger(self, images, rng=None):
        return self._warp(images, self.grid)

    def cover(self, images, rng):
        import torch

        _, h, w = self.image_shape
        jitter = torch.from_numpy(rng.uniform(-1, 1, (len(images), h, w, 2)).astype(np.float32)) / h
        return self._warp(images, (self.grid + jitter).clamp(-1, 1))
