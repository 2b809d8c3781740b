"""The attack interface: choose victims (and cover samples), stamp the train-time trigger, set
the labels, and give the test-time trigger that ASR is measured with."""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass

import numpy as np

from ..config import AttackConfig
from ..errors import SanitizerError
from ..registry import Registry

ATTACKS: Registry = Registry("attack")


@dataclass(frozen=True)
class Poisoned:
    images: np.ndarray
    labels: np.ndarray
    is_poison: np.ndarray
    # Cover samples carry a (partial or noisy) trigger but keep their true label, so the model
    # must not learn "trigger-like => target" too broadly; they are not poisons.
    is_cover: np.ndarray


class Attack(abc.ABC):
    """Static poisoning of a train split. Params left null take the attack's `defaults`."""

    defaults: dict = {"trigger_size": 3, "alpha": 0.2, "cover_rate": 0.0}
    supports_all_to_all = False
    clean_label = False  # the poisons keep their labels (SIG)
    uses_trigger_size = False  # patch attacks: trigger_size must fit the image

    def __init__(self, cfg: AttackConfig, image_shape: tuple[int, int, int], num_classes: int):
        defaults = {**Attack.defaults, **self.defaults}
        self.cfg = dataclasses.replace(cfg, **{k: v for k, v in defaults.items() if getattr(cfg, k) is None})
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes
        if not 0 <= cfg.target < num_classes:
            raise SanitizerError(f"params.yaml [attack].target {cfg.target} is not a class index (0..{num_classes - 1})")
        if cfg.mode == "all-to-all" and not self.supports_all_to_all:
            raise SanitizerError(f"attack {cfg.name!r} has no all-to-all mode (badnets and blend do)")
        if self.uses_trigger_size and self.cfg.trigger_size > min(image_shape[1:]):
            raise SanitizerError(f"trigger_size {self.cfg.trigger_size} is larger than the {image_shape[1]}x{image_shape[2]} images")

    # ---- labels and who is touched

    def target_labels(self, labels: np.ndarray) -> np.ndarray:
        if self.cfg.mode == "all-to-all":
            return (labels + 1) % self.num_classes
        return np.full_like(labels, self.cfg.target)

    def candidates(self, labels: np.ndarray) -> np.ndarray:
        """Samples a poison may be drawn from: by default those whose label the attack changes."""
        return np.flatnonzero(self.target_labels(labels) != labels)

    def cover_candidates(self, labels: np.ndarray) -> np.ndarray:
        return np.arange(len(labels))

    def asr_mask(self, labels: np.ndarray) -> np.ndarray:
        """Test images that count for ASR: those whose label the attack would change."""
        return self.target_labels(labels) != labels

    # ---- triggers (uint8 N x C x H x W in, uint8 out, input never mutated)

    @abc.abstractmethod
    def trigger(self, images: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """The train-time trigger; `rng` draws whatever varies per sample."""

    def cover(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """What cover samples get; the train-time trigger unless the attack says otherwise."""
        return self.trigger(images, rng)

    def trigger_test(self, images: np.ndarray) -> np.ndarray:
        """The trigger at inference time; attacks whose test trigger differs override this."""
        return self.trigger(images, np.random.default_rng(self.cfg.seed + 1))

    def prepare(self, images: np.ndarray, labels: np.ndarray) -> None:
        """Anything the attacker fits on the data before poisoning (a trigger generator)."""

    # ---- the whole attack

    def poison(self, images: np.ndarray, labels: np.ndarray) -> Poisoned:
        rng = np.random.default_rng(self.cfg.seed)
        victims = _draw(rng, self.candidates(labels), self.cfg.rate * len(labels), "poisons", "rate", self.cfg.rate)
        pool = np.setdiff1d(self.cover_candidates(labels), victims)
        covers = _draw(rng, pool, self.cfg.cover_rate * len(labels), "cover samples", "cover_rate", self.cfg.cover_rate)
        self.prepare(images, labels)
        images, labels = images.copy(), labels.copy()
        if len(victims):
            images[victims] = self.trigger(images[victims], rng)
            labels[victims] = self.target_labels(labels[victims])
        if len(covers):
            images[covers] = self.cover(images[covers], rng)
        return Poisoned(images, labels, _mask(len(labels), victims), _mask(len(labels), covers))


def _draw(rng: np.random.Generator, pool: np.ndarray, count: float, what: str, key: str, rate: float) -> np.ndarray:
    count = int(round(count))
    if count > len(pool):
        raise SanitizerError(f"params.yaml [attack].{key} {rate} asks for {count} {what} but only {len(pool)} samples qualify")
    return np.sort(rng.choice(pool, size=count, replace=False))


def _mask(n: int, index: np.ndarray) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[index] = True
    return mask


def to_uint8(x) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def blend(images: np.ndarray, pattern: np.ndarray, alpha) -> np.ndarray:
    """(1 - alpha) x + alpha * pattern; alpha may be a per-pixel map."""
    return to_uint8((1 - alpha) * images.astype(np.float32) + alpha * pattern)


def corner(image_shape, size: int, position: str) -> tuple[slice, slice]:
    """Row and column slices of a size x size square at a named position."""
    _, h, w = image_shape
    vertical, _, horizontal = position.partition("-")
    top = {"top": 0, "bottom": h - size, "center": (h - size) // 2}[vertical]
    left = {"left": 0, "right": w - size, "center": (w - size) // 2}[horizontal or vertical]
    return slice(top, top + size), slice(left, left + size)


class NoAttack(Attack):
    """Real data: nothing is poisoned, so the attack's target is irrelevant."""

    def __init__(self, cfg, image_shape, num_classes):
        self.cfg, self.image_shape, self.num_classes = cfg, tuple(image_shape), num_classes

    def poison(self, images, labels):
        none = np.zeros(len(labels), dtype=bool)
        return Poisoned(images.copy(), labels.copy(), none, none.copy())

    def asr_mask(self, labels):
        return np.zeros(len(labels), dtype=bool)

    def trigger(self, images, rng=None):
        return images
