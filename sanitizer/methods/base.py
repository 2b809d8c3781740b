"""The method contract. A detection method looks at the untrusted train split and the model
trained on it (the suspect) and returns, per sample, a suspicion score, a suspected flag and
any extra named signals, with one sign convention: higher = more suspicious. It may also return
models it produced (PBE and PUD purify the suspect; that model is a product in its own right)
and a JSON summary (an inferred target class, counts).

The `detect` stage writes that as one method-neutral manifest, detect/suspicion.parquet, and
every stage after it (train_clean, relabel, evaluate, inspect) reads only that manifest. A new
method is one file: a `Method` subclass registered in METHODS, with its params section as a
`@section` config class beside it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..registry import Registry

METHODS: Registry = Registry("method")


@dataclass
class Inputs:
    """What a method gets: the train split (`data.x`, `data.y`, `data.new_model`), the suspect
    model, its own validated params section (None when it has none), the train section, and
    the data root, for methods that read the outputs of their own sub-stages; and the other
    sections it `reads`, by name."""

    data: Any  # sanitizer.training.TrainSet
    suspect: Any  # torch.nn.Module
    cfg: Any
    train: Any
    paths: Any
    sections: dict = field(default_factory=dict)


@dataclass
class Detection:
    suspicion: np.ndarray  # float, per train sample in sample_id order; higher = more suspicious
    suspected: np.ndarray  # bool
    signals: dict[str, np.ndarray] = field(default_factory=dict)  # extra signals, same sign convention
    summary: dict = field(default_factory=dict)  # JSON-able facts, e.g. {"target": "Trouser"}
    models: dict[str, Any] = field(default_factory=dict)  # name -> torch.nn.Module it produced
    # Suspected samples whose image itself the method found carrying a trigger (bool; None: none).
    # A clean-label poison keeps its right label, which a clean model confirms: relabel drops
    # these whatever the clean model says.
    trigger: np.ndarray | None = None


class Method(ABC):
    """Subclass, set the class attributes, implement `detect`, and register with
    `@METHODS.register(name)`."""

    name: ClassVar[str]
    # The params section of its own knobs (a config class registered with config.section).
    section: ClassVar[str | None] = None
    # Other methods' sections it reads too (PUD names its target by AdvrBD's partition tests).
    reads: ClassVar[tuple[str, ...]] = ()
    # What `suspicion` means, and each extra signal `detect` may return: name -> meaning.
    suspicion: ClassVar[str] = ""
    signals: ClassVar[dict[str, str]] = {}
    # Pipeline stages of its own that run before detect (their outputs are cached by DVC).
    stages: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def detect(self, inputs: Inputs) -> Detection:
        """Per train sample, in sample_id order: the verdict on `inputs`."""


def check_detection(det: Detection, method: type[Method], n: int) -> None:
    """A method that returns the wrong shape or an undeclared signal is a bug in the method;
    catch it here rather than in a stage three steps later."""
    if not set(det.signals) <= set(method.signals):
        raise ValueError(f"method {method.name} returned signals {sorted(det.signals)} but declares only {sorted(method.signals)}")
    flags = {"suspected": det.suspected, **({} if det.trigger is None else {"trigger": det.trigger})}
    for name, values in {"suspicion": det.suspicion, **flags, **det.signals}.items():
        if np.shape(values) != (n,):
            raise ValueError(f"method {method.name}: {name} has shape {np.shape(values)}, expected ({n},)")
        if name not in flags and not np.isfinite(values).all():
            raise ValueError(f"method {method.name}: {name} holds NaN or infinite values")


def write_suspicion(det: Detection, method: type[Method], sample_ids: np.ndarray, path: str | Path) -> None:
    import polars as pl

    from ..manifest import write_manifest

    check_detection(det, method, len(sample_ids))
    suspected = np.asarray(det.suspected, bool)
    trigger = suspected & (False if det.trigger is None else np.asarray(det.trigger, bool))
    columns = {"sample_id": sample_ids, "suspicion": np.asarray(det.suspicion, np.float64), "suspected": suspected, "trigger": trigger}
    columns.update({name: np.asarray(v, np.float64) for name, v in sorted(det.signals.items())})
    meta = {
        "method": method.name,
        "signals": {"suspicion": method.suspicion, **{name: method.signals[name] for name in det.signals}},
        "summary": det.summary,
        "models": sorted(det.models),
    }
    write_manifest(pl.DataFrame(columns), path, "detect", meta)


def signal_names(path: str | Path) -> list[str]:
    """The signals a suspicion manifest declares, `suspicion` first."""
    from ..manifest import meta_value

    declared = meta_value(path, "signals")
    return ["suspicion", *sorted(set(declared) - {"suspicion"})]
