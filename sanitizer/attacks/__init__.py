"""Backdoor attacks for benchmark runs: static poisoning of the train split, plus the test-time
trigger that ASR is measured with. Ground truth goes to truth.parquet, never into the store."""

from __future__ import annotations

from ..config import AttackConfig
from ..errors import SanitizerError
from . import blend, dynamic, patch, warp  # noqa: F401  (each module registers its attacks)
from .base import ATTACKS, Attack, NoAttack, Poisoned

ATTACKS.register("none")(NoAttack)

__all__ = ["ATTACKS", "Attack", "Poisoned", "build_attack"]


def build_attack(cfg: AttackConfig, image_shape, num_classes: int) -> Attack:
    try:
        cls = ATTACKS.get(cfg.name)
    except ValueError as e:
        raise SanitizerError(f"params.yaml [attack].name: {e}") from None
    return cls(cfg, tuple(image_shape), num_classes)
