"""Procedural trigger patterns. The papers' images (Hello Kitty, Firefox, logos) are not ours
to ship, so every default is generated from a fixed seed; a user may pass any image file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SanitizerError

PATTERN_SEED = 20260101


def noise_pattern(image_shape: tuple[int, int, int], seed: int = PATTERN_SEED) -> np.ndarray:
    """A fixed uniform-noise image: the same on every machine for a given shape."""
    return np.random.default_rng(seed).integers(0, 256, size=image_shape).astype(np.float32)


def binary_patch(channels: int, size: int, seed: int) -> np.ndarray:
    """A random black/white (per channel: coloured) size x size patch, float32 0..255."""
    return 255 * np.random.default_rng(seed).integers(0, 2, size=(channels, size, size)).astype(np.float32)


def trojan_square(channels: int, size: int) -> np.ndarray:
    """A white square ring around a black core, the shape of the trojan-square trigger."""
    patch = np.full((channels, size, size), 255, dtype=np.float32)
    border = max(1, size // 4)
    patch[:, border : size - border, border : size - border] = 0
    return patch


def load_pattern(path: str, image_shape: tuple[int, int, int]) -> np.ndarray:
    """Any image file, resized to the data's size and converted to its channel count."""
    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise SanitizerError(f"attack pattern image {path} not found")
    c, h, w = image_shape
    try:
        with Image.open(path) as img:
            img = img.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
            array = np.asarray(img, dtype=np.float32)
    except (UnidentifiedImageError, OSError) as e:
        raise SanitizerError(f"attack pattern {path} is not a readable image: {e}") from None
    return array[None] if c == 1 else array.transpose(2, 0, 1)


def blend_pattern(cfg, image_shape) -> np.ndarray:
    return load_pattern(cfg.pattern, image_shape) if cfg.pattern else noise_pattern(image_shape)
