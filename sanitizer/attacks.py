"""Backdoor attacks for benchmark runs: static poisoning of the train split, plus the test-time
trigger that ASR is measured with. Ground truth goes to truth.parquet, never into the store."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import AttackConfig
from .errors import SanitizerError
from .registry import Registry

ATTACKS: Registry = Registry("attack")


@dataclass(frozen=True)
class Poisoned:
    images: np.ndarray
    labels: np.ndarray
    is_poison: np.ndarray


class Attack(abc.ABC):
    """Base: choose victims, stamp the trigger, flip labels to the target."""

    def __init__(self, cfg: AttackConfig, image_shape: tuple[int, int, int], num_classes: int):
        if not 0 <= cfg.target < num_classes:
            raise SanitizerError(f"params.yaml [attack].target {cfg.target} is not a class index (0..{num_classes - 1})")
        self.cfg = cfg
        self.image_shape = image_shape
        self.num_classes = num_classes

    def target_labels(self, labels: np.ndarray) -> np.ndarray:
        if self.cfg.mode == "all-to-all":
            return (labels + 1) % self.num_classes
        return np.full_like(labels, self.cfg.target)

    def candidates(self, labels: np.ndarray) -> np.ndarray:
        """Samples a poison may be drawn from: their label must actually change."""
        return np.flatnonzero(self.target_labels(labels) != labels)

    @abc.abstractmethod
    def trigger(self, images: np.ndarray) -> np.ndarray:
        """The train-time trigger applied to a batch of uint8 images."""

    def trigger_test(self, images: np.ndarray) -> np.ndarray:
        """The trigger at test time; the same as at train time for the static attacks here."""
        return self.trigger(images)

    def poison(self, images: np.ndarray, labels: np.ndarray) -> Poisoned:
        rng = np.random.default_rng(self.cfg.seed)
        count = int(round(self.cfg.rate * len(labels)))
        pool = self.candidates(labels)
        if count > len(pool):
            raise SanitizerError(f"attack rate {self.cfg.rate} asks for {count} poisons but only {len(pool)} samples can be poisoned")
        victims = np.sort(rng.choice(pool, size=count, replace=False))
        images, labels = images.copy(), labels.copy()
        images[victims] = self.trigger(images[victims])
        labels[victims] = self.target_labels(labels[victims])
        is_poison = np.zeros(len(labels), dtype=bool)
        is_poison[victims] = True
        return Poisoned(images, labels, is_poison)

    def asr_mask(self, labels: np.ndarray) -> np.ndarray:
        """Test images that count for ASR: those whose label the attack would change."""
        return self.target_labels(labels) != labels


@ATTACKS.register("badnets")
class BadNets(Attack):
    """A white square (default 3x3) stamped at a corner (Gu et al.)."""

    def trigger(self, images: np.ndarray) -> np.ndarray:
        _, h, w = self.image_shape
        s = self.cfg.trigger_size
        if s > min(h, w):
            raise SanitizerError(f"trigger_size {s} is larger than the {h}x{w} images")
        top = {"top": 0, "bottom": h - s, "center": (h - s) // 2}[self.cfg.position.split("-")[0]]
        side = self.cfg.position.split("-")[-1]
        left = {"left": 0, "right": w - s, "center": (w - s) // 2}[side]
        out = images.copy()
        out[:, :, top : top + s, left : left + s] = 255
        return out


@ATTACKS.register("blend")
class Blend(Attack):
    """x' = (1 - alpha) x + alpha * pattern over the whole image (Chen et al.). The papers blend
    Hello Kitty, which is not ours to ship: the default is a seeded noise pattern, and any image
    file can be passed as `pattern`."""

    def __init__(self, cfg, image_shape, num_classes):
        super().__init__(cfg, image_shape, num_classes)
        self.pattern = load_pattern(cfg.pattern, image_shape) if cfg.pattern else noise_pattern(image_shape)

    def trigger(self, images: np.ndarray) -> np.ndarray:
        a = self.cfg.alpha
        return np.rint((1 - a) * images.astype(np.float32) + a * self.pattern).astype(np.uint8)


def noise_pattern(image_shape: tuple[int, int, int], seed: int = 20260101) -> np.ndarray:
    """A fixed uniform-noise image: the same on every machine for a given shape."""
    return np.random.default_rng(seed).integers(0, 256, size=image_shape).astype(np.float32)


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


class NoAttack(Attack):
    """Real data: nothing is poisoned, so the attack's target is irrelevant."""

    def __init__(self, cfg, image_shape, num_classes):
        self.cfg, self.image_shape, self.num_classes = cfg, image_shape, num_classes

    def poison(self, images, labels):
        return Poisoned(images, labels, np.zeros(len(labels), dtype=bool))

    def asr_mask(self, labels):
        return np.zeros(len(labels), dtype=bool)

    def trigger(self, images):
        return images


ATTACKS.register("none")(NoAttack)


def build_attack(cfg: AttackConfig, image_shape, num_classes: int) -> Attack:
    try:
        cls = ATTACKS.get(cfg.name)
    except ValueError as e:
        raise SanitizerError(f"params.yaml [attack].name: {e}") from None
    return cls(cfg, tuple(image_shape), num_classes)
