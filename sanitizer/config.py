"""Frozen, validated config objects, one per params.yaml section. A stage builds only the
sections it declares in dvc.yaml, so an unknown key or a wrong value fails before any work."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import SanitizerError

SECTIONS: dict[str, type] = {}


def section(name: str):
    def decorator(cls):
        cls = dataclass(frozen=True)(cls)
        cls.section = name
        SECTIONS[name] = cls
        return cls

    return decorator


def _check(value, hint, where: str):
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        return _check(value, next(a for a in args if a is not type(None)), where)
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise SanitizerError(f"{where} must be one of {list(typing.get_args(hint))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise SanitizerError(f"{where} must be a list, got {value!r}")
        return tuple(_check(v, typing.get_args(hint)[0], where) for v in value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise SanitizerError(f"{where} must be {hint.__name__}, got {value!r}")
    return value


def build(cls, values: dict | None):
    values = dict(values or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise SanitizerError(f"params.yaml [{cls.section}]: unknown key(s) {unknown}; known: {sorted(names)}")
    checked = {k: _check(v, hints[k], f"params.yaml [{cls.section}].{k}") for k, v in values.items()}
    obj = cls(**checked)
    validate = getattr(obj, "validate", None)
    if validate:
        validate()
    return obj


def _range(cfg, name: str, lo: float, hi: float):
    value = getattr(cfg, name)
    if not lo <= value <= hi:
        raise SanitizerError(f"params.yaml [{cfg.section}].{name} must be in [{lo}, {hi}], got {value}")


@section("data")
class DataConfig:
    source: str = "fashion-mnist"
    path: str | None = None
    # Held-out test fraction for sources that ship no test split (imagefolder, parquet).
    test_fraction: float = 0.1
    # Keep only this many train (and limit // 5 test) samples, stratified; 0 keeps all.
    limit: int = 0
    image_column: str = "image"
    label_column: str = "label"
    seed: int = 0

    def validate(self):
        _range(self, "test_fraction", 0.0, 0.9)
        _range(self, "limit", 0, 10**9)


@section("attack")
class AttackConfig:
    name: str = "none"
    rate: float = 0.05
    target: int = 1
    mode: typing.Literal["all-to-one", "all-to-all"] = "all-to-one"
    seed: int = 0
    # Knobs left null take the attack's own (paper) default.
    trigger_size: int | None = None
    position: typing.Literal["bottom-right", "bottom-left", "top-right", "top-left", "center"] = "bottom-right"
    alpha: float | None = None
    pattern: str | None = None
    cover_rate: float | None = None
    source: int = 0
    delta: float = 20.0
    delta_test: float = 40.0
    frequency: int = 6
    warp_k: int = 4
    warp_s: float = 0.5
    grid_rescale: float = 1.0
    pieces: int = 16
    train_alpha: float = 0.15
    patch_alphas: tuple[float, ...] = (0.5, 0.2, 0.5, 0.3)
    patches_per_sample: int = 2
    generator_epochs: int = 2

    def validate(self):
        _range(self, "rate", 0.0, 1.0)
        for name in ("alpha", "cover_rate", "train_alpha"):
            if getattr(self, name) is not None:
                _range(self, name, 0.0, 1.0)
        if self.trigger_size is not None:
            _range(self, "trigger_size", 1, 4096)
        _range(self, "delta", 0.0, 255.0)
        _range(self, "delta_test", 0.0, 255.0)
        _range(self, "warp_k", 2, 1024)
        for a in self.patch_alphas:
            if not 0.0 <= a <= 1.0:
                raise SanitizerError(f"params.yaml [attack].patch_alphas must each be in [0, 1], got {a}")


@section("model")
class ModelConfig:
    # `auto`: small_cnn for single-channel images up to 28 px, resnet18 otherwise.
    arch: str = "auto"


@section("train")
class TrainConfig:
    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = False
    seed: int = 0

    def validate(self):
        _range(self, "epochs", 1, 10_000)
        _range(self, "batch_size", 1, 1 << 20)


@section("score")
class ScoreConfig:
    eps: float = 16 / 255
    steps: int = 2
    # Side of the random square patch mask, as a fraction of the image side (drawn per sample).
    patch_min: float = 0.25
    patch_max: float = 0.5
    batch_size: int = 1024
    seed: int = 0

    def validate(self):
        _range(self, "eps", 0.0, 1.0)
        _range(self, "steps", 1, 1000)
        _range(self, "patch_min", 0.0, 1.0)
        _range(self, "patch_max", self.patch_min, 1.0)


@section("purify")
class PurifyConfig:
    # PBE-style adversarial fine-tuning of a copy of the suspect (see sanitizer.purification).
    # A larger eps than PBE's 6/255: on Fashion-MNIST, 6/255 left Adaptive-Blend at 100 %
    # ASR and 16/255 left Adaptive-Patch at 100 %.
    eps: float = 32 / 255
    steps: int = 7
    fraction: float = 0.05  # random share of the train set the examples are crafted from
    epochs: int = 2
    lr: float = 0.01
    batch_size: int = 128
    seed: int = 0

    def validate(self):
        _range(self, "eps", 0.0, 1.0)
        _range(self, "steps", 1, 1000)
        _range(self, "fraction", 0.0001, 1.0)
        _range(self, "epochs", 1, 1000)
        _range(self, "batch_size", 1, 1 << 20)


@section("partition")
class PartitionConfig:
    # Fraction of the train set, most trusted first, that seeds the clean set D_s.
    rate: float = 0.2
    # What "trusted" means: high Eq. 3 robustness score R (the paper), high loss at the given
    # label, or both (each sample ranked by the weaker of the two).
    by: typing.Literal["robustness", "loss", "both"] = "loss"
    # Purification-gap filter; null = off. In a suspected target class, samples whose gap
    # exceeds max_gap nats are barred from D_s: left out of the seed and never grown into it.
    max_gap: float | None = None
    # A class is a suspected target when its share of samples with gap > target_gap is this
    # many MAD anomaly indexes above the median class.
    target_gap: float = 2.0
    min_anomaly: float = 10.0

    def validate(self):
        _range(self, "rate", 0.001, 0.99)
        _range(self, "target_gap", 0.0, 100.0)
        _range(self, "min_anomaly", 0.0, 1e6)
        if self.max_gap is not None:
            _range(self, "max_gap", 0.0, 100.0)


@section("enhance")
class EnhanceConfig:
    rounds: int = 3
    # Fraction of the train set moved from D_r to D_s after each round.
    rate: float = 0.1
    epochs: int = 1
    batch_size: int = 256
    lr: float = 0.01
    # Weight of the (bounded) gradient ascent on D_s against descent on D_r (Eq. 4).
    ascent_weight: float = 1.0
    # Ascent stops pushing a batch once its loss exceeds this (flooding), so it cannot diverge.
    flood: float = 5.0
    # Epochs of the per-round clean reference trained on D_s (few: a rare poison left in
    # D_s must not get the time to plant the backdoor in it).
    clean_epochs: int = 2
    seed: int = 0

    def validate(self):
        _range(self, "rounds", 0, 100)
        _range(self, "rate", 0.0, 0.5)
        _range(self, "epochs", 1, 1000)


@section("identify")
class IdentifyConfig:
    # Suspected when log p_E(y|x) - log p_C(y|x) exceeds this, in nats (1.25: E fits the
    # given label e^1.25 = 3.5 times more confidently than C).
    threshold: float = 1.25


@section("relabel")
class RelabelConfig:
    # Fine-tuning on clean + relabelled samples (Eq. 5).
    epochs: int = 2
    lr: float = 0.01
    # Suspected samples the clean model labels with less confidence than this are dropped.
    min_confidence: float = 0.5
    # Suspected samples the clean model gives their own label with at least this confidence
    # are false alarms and kept.
    rescue_confidence: float = 0.9

    def validate(self):
        _range(self, "min_confidence", 0.0, 1.0)
        _range(self, "rescue_confidence", 0.0, 1.0)


@section("evaluate")
class EvaluateConfig:
    batch_size: int = 1024


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.exists():
        raise SanitizerError(f"params file {path} not found")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise SanitizerError(f"{path} is not valid YAML: {e}") from None
    unknown = sorted(set(params) - set(SECTIONS))
    if unknown:
        raise SanitizerError(f"{path}: unknown section(s) {unknown}; known: {sorted(SECTIONS)}")
    # Validate every section up front: a typo anywhere fails before any stage does work.
    for name in params:
        config(name, params)
    return params


def config(name: str, params: dict):
    """The validated config for one section of the params."""
    return build(SECTIONS[name], params.get(name))
