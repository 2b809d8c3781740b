"""Frozen, validated config objects, one per params.yaml section. A stage builds only the
sections it declares in dvc.yaml, so an unknown key or a wrong value fails before any work."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml

from .errors import SanitizerError

SECTIONS: dict[str, type] = {}
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric param; an open end excludes its bound."""

    lo: float
    hi: float
    open_lo: bool = False

    def text(self) -> str:
        return f"{'(' if self.open_lo else '['}{self.lo}, {self.hi}]"

    def contains(self, v: float) -> bool:
        return (self.lo < v if self.open_lo else self.lo <= v) and v <= self.hi


# The shapes most params take: numbers from YAML are checked against one of these.
Count = Annotated[int, Range(1, 1_000_000)]
Batch = Annotated[int, Range(1, 1 << 20)]
Seed = Annotated[int, Range(0, 2**32 - 1)]
Fraction = Annotated[float, Range(0.0, 1.0)]
Rate = Annotated[float, Range(0.0, 10.0, open_lo=True)]  # learning rates, strengths: > 0


def section(name: str):
    def decorator(cls):
        cls = dataclass(frozen=True)(cls)
        cls.section = name
        SECTIONS[name] = cls
        return cls

    return decorator


def _check(value, hint, where: str):
    if typing.get_origin(hint) is Annotated:
        base, *extras = typing.get_args(hint)
        value = _check(value, base, where)
        for bound in (e for e in extras if isinstance(e, Range)):
            if value is not None and not bound.contains(value):
                raise SanitizerError(f"{where} must be in {bound.text()}, got {value}")
        return value
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
        return tuple(_check(v, typing.get_args(hint)[0], f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float:
        # YAML 1.1 reads 1e-3 (no dot) as a string: take it as the number it spells.
        if isinstance(value, str) and NUMBER.fullmatch(value.strip()):
            value = float(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, float) and not math.isfinite(value):
            raise SanitizerError(f"{where} must be a finite number, got {value}")
    if not isinstance(value, hint) or (hint in (int, float) and isinstance(value, bool)):
        raise SanitizerError(f"{where} must be {_kind(hint)}, got {value!r}")
    return value


def _kind(hint) -> str:
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false"}.get(hint, hint.__name__)


def build(cls, values):
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise SanitizerError(f"params.yaml [{cls.section}] must be a mapping of keys to values (key: value lines), got {values!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in set(values) - names)
    if unknown:
        raise SanitizerError(f"params.yaml [{cls.section}]: unknown key(s) {unknown} (misspelt, or from an older sanitizer: rename or delete them); known: {sorted(names)}")
    checked = {k: _check(v, hints[k], f"params.yaml [{cls.section}].{k}") for k, v in values.items()}
    obj = cls(**checked)
    validate = getattr(obj, "validate", None)
    if validate:
        validate()
    return obj


def _at_least(cfg, name: str, lo: float) -> None:
    """A bound that depends on another key of the same section."""
    if getattr(cfg, name) < lo:
        raise SanitizerError(f"params.yaml [{cfg.section}].{name} must be at least {lo}, got {getattr(cfg, name)}")


@section("data")
class DataConfig:
    # Names of the registries (datasets.SOURCES, attacks.ATTACKS, models.MODELS), spelled out
    # here so a typo fails with every other param, before any stage works; a test keeps the
    # lists equal to the registries.
    source: typing.Literal["fashion-mnist", "cifar10", "imagefolder", "parquet"] = "fashion-mnist"
    path: str | None = None
    # Held-out test fraction for sources that ship no test split (imagefolder, parquet).
    test_fraction: Annotated[float, Range(0.0, 0.9)] = 0.1
    # Keep only this many train (and limit // 5 test) samples, stratified; 0 keeps all.
    limit: Annotated[int, Range(0, 10**9)] = 0
    image_column: str = "image"
    label_column: str = "label"
    seed: Seed = 0


@section("attack")
class AttackConfig:
    name: typing.Literal["none", "badnets", "blend", "sig", "wanet", "physical_ba", "tact", "adaptive_blend", "adaptive_patch", "input_aware"] = "none"
    rate: Fraction = 0.05
    target: Annotated[int, Range(0, 1_000_000)] = 1
    mode: typing.Literal["all-to-one", "all-to-all"] = "all-to-one"
    seed: Seed = 0
    # Knobs left null take the attack's own (paper) default.
    trigger_size: Annotated[int | None, Range(1, 4096)] = None
    position: typing.Literal["bottom-right", "bottom-left", "top-right", "top-left", "center"] = "bottom-right"
    alpha: Annotated[float | None, Range(0.0, 1.0)] = None
    pattern: str | None = None
    cover_rate: Annotated[float | None, Range(0.0, 1.0)] = None
    source: Annotated[int, Range(0, 1_000_000)] = 0
    delta: Annotated[float, Range(0.0, 255.0)] = 20.0
    delta_test: Annotated[float, Range(0.0, 255.0)] = 40.0
    frequency: Annotated[int, Range(1, 1000)] = 6
    warp_k: Annotated[int, Range(2, 1024)] = 4
    warp_s: Rate = 0.5
    grid_rescale: Rate = 1.0
    pieces: Annotated[int, Range(1, 4096)] = 16
    train_alpha: Fraction = 0.15
    patch_alphas: tuple[Fraction, ...] = (0.5, 0.2, 0.5, 0.3)
    patches_per_sample: Annotated[int, Range(1, 64)] = 2
    generator_epochs: Count = 2


@section("model")
class ModelConfig:
    # `auto`: small_cnn for single-channel images up to 28 px; otherwise resnet18 on a GPU,
    # fast_cnn on a CPU (models.resolve_arch).
    arch: typing.Literal["auto", "small_cnn", "fast_cnn", "resnet18"] = "auto"


@section("train")
class TrainConfig:
    # Suspect, oracle and clean models. null = the architecture's recipe (models.RECIPES),
    # resolved when the model is known; a value here overrides it for every architecture.
    epochs: Annotated[int, Range(1, 10_000)] | None = None
    batch_size: Batch | None = None
    lr: Rate | None = None
    momentum: Annotated[float, Range(0.0, 0.999)] | None = None
    weight_decay: Annotated[float, Range(0.0, 1.0)] | None = None
    augment: bool | None = None
    label_smoothing: Annotated[float, Range(0.0, 0.9)] | None = None
    shift: Annotated[int, Range(0, 16)] | None = None
    schedule: typing.Literal["cosine", "triangle"] | None = None
    seed: Seed = 0

    def resolved(self, recipe) -> "TrainConfig":
        """Every null value filled from `recipe` (a models.Recipe, or None when the model has none)."""
        fields = [f.name for f in dataclasses.fields(self) if f.name != "seed"]
        missing = [k for k in fields if getattr(self, k) is None]
        if missing and recipe is None:
            raise SanitizerError(f"params.yaml [train] {', '.join(missing)} are null and this model has no recipe in sanitizer/models.py RECIPES: set them")
        return dataclasses.replace(self, **{k: getattr(recipe, k) for k in missing})


@section("method")
class MethodConfig:
    # The detection method (sanitizer/methods/<name>.py); its knobs are its own section.
    name: str = "advrbd"

    def validate(self):
        # The package's files name the shipped methods without importing their code, so a
        # typo fails before any stage works; a method registered at run time counts too.
        from .methods import METHODS, module_names

        known = sorted({*module_names(), *METHODS.names()})
        if self.name not in known:
            raise SanitizerError(f"params.yaml [method].name must be one of {known}, got {self.name!r}")


@section("score")
class ScoreConfig:
    # Compute Eq. 3's R: two patch-PGD steps per sample, two thirds of this stage's time (on
    # Fashion-MNIST, two cores, the stage took 60-64 s with it and 20-23 s without). Off, the
    # stage writes only the loss: the default seeds D_s by loss (partition.by), so R fed nothing
    # but a diagnostic AUROC.
    robustness: bool = False
    eps: Annotated[float, Range(0.0, 1.0, open_lo=True)] = 16 / 255
    steps: Annotated[int, Range(1, 1000)] = 2
    # Side of the random square patch mask, as a fraction of the image side (drawn per sample).
    patch_min: Annotated[float, Range(0.0, 1.0, open_lo=True)] = 0.25
    patch_max: Annotated[float, Range(0.0, 1.0, open_lo=True)] = 0.5
    batch_size: Batch = 1024
    seed: Seed = 0

    def validate(self):
        _at_least(self, "patch_max", self.patch_min)


@section("purify")
class PurifyConfig:
    # PBE-style adversarial fine-tuning of a copy of the suspect (see sanitizer.purification).
    # A larger eps than PBE's 6/255: on Fashion-MNIST, 6/255 left Adaptive-Blend at 100 %
    # ASR and 16/255 left Adaptive-Patch at 100 %.
    eps: Annotated[float, Range(0.0, 1.0, open_lo=True)] = 32 / 255
    steps: Annotated[int, Range(1, 1000)] = 7
    fraction: Annotated[float, Range(0.0001, 1.0)] = 0.05  # random share of the train set the examples are crafted from
    epochs: Annotated[int, Range(1, 1000)] = 2
    lr: Rate | None = None  # null = the architecture's fine-tuning rate (models.Recipe.tune_lr)
    batch_size: Batch = 128
    seed: Seed = 0


@section("partition")
class PartitionConfig:
    # Fraction of the train set, most trusted first, that seeds the clean set D_s.
    rate: Annotated[float, Range(0.001, 0.99)] = 0.2
    # What "trusted" means: high Eq. 3 robustness score R (the paper), high loss at the given
    # label, or both (each sample ranked by the weaker of the two).
    by: typing.Literal["robustness", "loss", "both"] = "loss"
    # Purification-gap filter; null = off. In a suspected target class, samples whose gap
    # exceeds max_gap nats are barred from D_s: left out of the seed and never grown into it.
    max_gap: Annotated[float | None, Range(0.0, 100.0, open_lo=True)] = 1.25
    # A class is a suspected target when its share of samples with gap > target_gap is this
    # many MAD anomaly indexes above the median class.
    target_gap: Annotated[float, Range(0.0, 100.0)] = 2.0
    min_anomaly: Annotated[float, Range(0.0, 1e6)] = 10.0
    # Activation-cluster filter; null = off. A class whose suspect activations split into two
    # clusters further apart than other classes' (MAD anomaly index above this; 3.5 is Iglewicz
    # and Hoaglin's outlier cut), or whose split stands out this far both in its contrast and in
    # how empty its valley is (below), is a suspected target, and its smaller cluster is barred from D_s.
    cluster_anomaly: Annotated[float | None, Range(0.0, 1e6)] = 3.5
    # Also a suspected target: a class whose clusters lie more than this many times further apart
    # than a Gaussian of its own principal variances would split (clean Fashion-MNIST classes
    # 1.1-1.8; each class of an all-to-all attack 4.9-9.7); null = off.
    cluster_contrast: Annotated[float | None, Range(1.0, 1e6)] = 3.0
    # Also a suspected target: a class whose two clusters leave the space between them this empty,
    # the emptiest stretch between their centres over the lower peak beside it (a class cut through
    # one population: near 1; Fashion-MNIST classes no attack targeted: 0.3 and up); null = off.
    cluster_valley: Annotated[float | None, Range(0.0, 1.0)] = 0.1
    cluster_dims: Annotated[int, Range(1, 4096)] = 10  # principal components the split is made in
    # Where two or more named classes' clusters split alike, at least this cosine apart (a
    # trigger moving its cover samples toward its target), the class furthest that way, when it
    # stands out by cluster_anomaly, is the target: seeded from its samples least far that way,
    # and those classes are no targets; null = off.
    cluster_alignment: Annotated[float | None, Range(0.0, 1.0)] = 0.5
    # Pixel-pattern filter (sanitizer/components.py); null = off. A class whose flattest
    # independent component of its pixels has an excess kurtosis below this holds two
    # populations (-1.2, a uniform distribution's, is the least of any one population); the one
    # the other classes' images lack carries a trigger: barred from D_s, and dropped by relabel
    # whatever the clean model says (clean-label attacks).
    pattern_kurtosis: Annotated[float | None, Range(-2.0, 0.0)] = -1.2
    pattern_dims: Annotated[int, Range(2, 4096)] = 50  # whitened principal directions searched
    # Pixel-stamp filter (sanitizer/stamp.py), in the classes no other filter names; null = off.
    # A class whose smaller activation cluster shares pixel values no class's content explains,
    # which its images hold whole or not at all (the class's counts of them leaving the stretch
    # between none and the carriers' this empty), holds a pasted trigger: its carriers are barred.
    stamp_valley: Annotated[float | None, Range(0.0, 1.0)] = 0.1
    # In a class either filter finds standing out from the others (MAD index), samples the
    # suspect gives their label less than this probability are barred too: the poisons it has
    # not learnt yet; null = off.
    target_fit: Annotated[float | None, Range(0.0, 1.0)] = 0.5

    @property
    def clusters(self) -> bool:
        """Whether any activation-cluster test is on (each alone may be)."""
        return self.cluster_anomaly is not None or self.cluster_contrast is not None or self.cluster_valley is not None


@section("enhance")
class EnhanceConfig:
    rounds: Annotated[int, Range(0, 100)] = 3
    # Fraction of the train set moved from D_r to D_s after each round.
    rate: Annotated[float, Range(0.0, 0.5)] = 0.1
    epochs: Annotated[int, Range(1, 1000)] = 1
    batch_size: Batch = 256
    lr: Rate | None = None  # null = the architecture's fine-tuning rate (models.Recipe.tune_lr)
    # Weight of the (bounded) gradient ascent on D_s against descent on D_r (Eq. 4).
    ascent_weight: Annotated[float, Range(0.0, 100.0)] = 1.0
    # Ascent stops pushing a batch once its loss exceeds this (flooding), so it cannot diverge.
    flood: Annotated[float, Range(0.0, 100.0, open_lo=True)] = 5.0
    # Epochs of the per-round clean reference trained on D_s (few: a rare poison left in
    # D_s must not get the time to plant the backdoor in it); null = the architecture's
    # models.Recipe.reference_epochs.
    clean_epochs: Annotated[int, Range(1, 1000)] | None = None
    seed: Seed = 0


@section("identify")
class IdentifyConfig:
    # Suspected when log p_E(y|x) - log p_C(y|x) exceeds this, in nats (1.25: E fits the
    # given label e^1.25 = 3.5 times more confidently than C).
    threshold: Annotated[float, Range(0.0, 100.0)] = 1.25
    # Where the consistency flags: `targets`, only in the classes partition suspects as
    # backdoor targets (poisons carry their target's label, so a flag elsewhere is a false
    # alarm: 0.71 % of clean Fashion-MNIST, 37 % of a clean CIFAR-10 subset); `all`, in every
    # class, a safety net for a target that partition's filters miss.
    scope: typing.Literal["targets", "all"] = "targets"


@section("loss")
class LossConfig:
    # ABL's loss-guided isolation: the share of the train set with the lowest loss at the
    # given label under the suspect model that is flagged (ABL isolates 1 %).
    isolation: Annotated[float, Range(0.0, 1.0, open_lo=True)] = 0.01


@section("spectral")
class SpectralConfig:
    # Spectral signatures remove 1.5 x this share of every class: an upper bound on the poison
    # rate, which the paper assumes known.
    eps_bound: Annotated[float, Range(0.0, 0.66, open_lo=True)] = 0.1


@section("clustering")
class ClusteringConfig:
    # Activation clustering: principal components kept per class, and the largest share of a
    # class its smaller cluster may hold to be flagged as poison (the paper's 0.35).
    dims: Annotated[int, Range(1, 1024)] = 10
    max_share: Annotated[float, Range(0.0, 0.5, open_lo=True)] = 0.35


@section("confident")
class ConfidentConfig:
    # Confident learning: out-of-fold predictions from this many folds (each trains one model
    # with the train section's recipe), and cleanlab's filter rule.
    folds: Annotated[int, Range(2, 20)] = 4
    filter_by: typing.Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given"] = "prune_by_noise_rate"


@section("pbe")
class PBEConfig:
    # Untargeted L-inf PGD at each sample's given label (PBE: 7 steps of eps/5, eps 6/255).
    eps: Annotated[float, Range(0.0, 1.0, open_lo=True)] = 6 / 255
    steps: Annotated[int, Range(1, 1000)] = 7
    # Share of the train set, drawn at random, that the first round fine-tunes on.
    start: Annotated[float, Range(0.0001, 1.0)] = 0.05
    # After each round, the next subset: this share of the train set with the highest agreement.
    # One round per entry, plus the first: 4 rounds.
    schedule: tuple[Annotated[float, Range(0.0001, 1.0)], ...] = (0.2, 0.5, 0.7)
    epochs: Annotated[int, Range(1, 1000)] = 10
    # Rounds after the first are adversarial only for this share of their first epoch.
    adversarial_share: Fraction = 0.1
    lr: Rate | None = None  # null = a tenth of the architecture's fine-tuning rate
    batch_size: Batch = 128
    seed: Seed = 0


@section("pud")
class PUDConfig:
    eps: Annotated[float, Range(0.0, 1.0, open_lo=True)] = 6 / 255
    last_eps: Annotated[float, Range(0.0, 1.0, open_lo=True)] = 4 / 255  # the last round's eps
    steps: Annotated[int, Range(1, 1000)] = 7
    # Target inference: partition's tests name it (their knobs are in that section); where they
    # name no class, this many random train samples are attacked, and a class is the target
    # when the share of their adversarial examples landing in it is an outlier among classes
    # by more than `target_anomaly` MAD anomaly indexes (3.5: Iglewicz and Hoaglin's cut).
    target_samples: Annotated[int, Range(10, 10**9)] = 2000
    target_anomaly: Annotated[float, Range(0.0, 1e6)] = 3.5
    # SPECTRE on the inferred target class: features projected on this many principal
    # directions, QUE strength alpha.
    feature_dims: Annotated[int, Range(1, 4096)] = 32
    que_alpha: Annotated[float, Range(0.0, 100.0)] = 4.0
    start: Annotated[float, Range(0.0001, 1.0)] = 0.05
    # One round per entry, plus the first: 5 rounds.
    schedule: tuple[Annotated[float, Range(0.0001, 1.0)], ...] = (0.2, 0.4, 0.7, 0.8)
    epochs: Annotated[int, Range(1, 1000)] = 10
    adversarial_share: Fraction = 0.1
    # Unlearning: the lowest-scored share of the train set, its loss weight, the floor on its
    # cross-entropy (so unlearning cannot diverge) and the L1 pull toward the suspect's weights.
    unlearn: Fraction = 0.01
    unlearn_weight: Annotated[float, Range(0.0, 100.0)] = 0.003
    unlearn_floor: Annotated[float, Range(0.0, 100.0, open_lo=True)] = 10.0
    l1: Annotated[float, Range(0.0, 1.0)] = 1e-6
    # Mean-teacher phase on the final subset.
    teacher_epochs: Annotated[int, Range(0, 1000)] = 2
    ema: Annotated[float, Range(0.0, 1.0)] = 0.99
    lr: Rate | None = None  # null = a tenth of the architecture's fine-tuning rate
    batch_size: Batch = 128
    seed: Seed = 0


@section("relabel")
class RelabelConfig:
    # Fine-tuning on clean + relabelled samples (Eq. 5).
    epochs: Annotated[int, Range(1, 1000)] = 2
    lr: Rate | None = None  # null = the architecture's fine-tuning rate (models.Recipe.tune_lr)
    # The defended model is the moving average of the fine-tune's weights with this decay per
    # step (null: its last step's). CIFAR-10 Adaptive-Blend's last-step model swung up to 5 pt
    # per class between seeds and landed 83.19 % against the clean model's 83.91; the average
    # of the same fine-tune 84.35 (benchmarks/results/final-models.md).
    ema: Annotated[float, Range(0.0, 0.9999)] | None = 0.99
    # A suspected sample is dropped when the clean model rates another class more than e^evidence
    # times its given label; otherwise it is a false alarm and kept. 0: whenever the clean model
    # predicts another class. 1.25 is identify's ratio: a hard clean sample the clean model puts
    # in a neighbouring class with its own label close behind is kept (Fashion-MNIST Blend: FPR
    # 2.30 -> 1.12 %); the poisons the clean model half accepts are caught by persistence below.
    evidence: Annotated[float, Range(0.0, 100.0)] = 1.25
    # A suspected sample is dropped whatever the clean model says when, on blends with this many
    # other classes' images, the suspect model answers unlike the clean model (total variation)
    # far more than for up to `persistence_reference` unsuspected samples of its class: beyond
    # 3.5 robust standard deviations above their median (decisions.persisting); 0 = off.
    persistence_partners: Annotated[int, Range(0, 1000)] = 16
    persistence_reference: Annotated[int, Range(1, 10**9)] = 2000
    # A dropped sample the clean model puts in another class with at least this confidence gets
    # that class as a suggestion (or is relabelled); below it, the clean model is unsure.
    min_confidence: Fraction = 0.5
    # Relabel the suspected samples the clean model confidently puts in another class (Eq. 5), or
    # drop them with its label as a reviewer's suggestion. Off: on Fashion-MNIST Blend a quarter
    # of its relabels were wrong, and dropping them raised the defended ACC on three of three rows.
    auto_relabel: bool = False


@section("evaluate")
class EvaluateConfig:
    batch_size: Batch = 1024
    # Robust accuracy: untargeted PGD at the true label (PUD's protocol: 7 steps, eps 6/255) on
    # this many clean test images, the first by sample_id.
    robust_samples: Annotated[int, Range(0, 10**9)] = 1000
    robust_eps: Annotated[float, Range(0.0, 1.0)] = 6 / 255
    robust_steps: Annotated[int, Range(1, 1000)] = 7


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.is_file():
        raise SanitizerError(f"params file {path} not found")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except UnicodeDecodeError:
        raise SanitizerError(f"{path} is not a text file") from None
    except yaml.YAMLError as e:
        raise SanitizerError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(params, dict):
        raise SanitizerError(f"{path} must be a mapping of sections (data:, train:, ...), got {type(params).__name__}")
    unknown = sorted(str(k) for k in set(params) - set(SECTIONS))
    if unknown:
        raise SanitizerError(f"{path}: unknown section(s) {unknown} (misspelt, or from an older sanitizer: rename or delete them); known: {sorted(SECTIONS)}")
    # Validate every section up front: a typo anywhere fails before any stage does work.
    for name in params:
        config(name, params)
    by = config("partition", params).by
    if by != "loss" and not config("score", params).robustness:
        raise SanitizerError(f"{path}: [partition].by {by!r} ranks by Eq. 3's R, which the score stage computes only with [score].robustness: true; set it, or set [partition].by: loss")
    return params


def config(name: str, params: dict):
    """The validated config for one section of the params."""
    return build(SECTIONS[name], params.get(name))
