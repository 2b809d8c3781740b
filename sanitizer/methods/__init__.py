"""Detection methods, one file each, registered by name in METHODS (see base.py for the
contract). Importing this package is light; `load_all()` imports every method module, which
is what the detect stage and params validation of a method's name need."""

from __future__ import annotations

import importlib
import pkgutil

from .base import METHODS, Detection, Inputs, Method

__all__ = ["METHODS", "Detection", "Inputs", "Method", "load_all", "module_names"]


def module_names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base")


def load_all() -> None:
    for name in module_names():
        importlib.import_module(f"{__name__}.{name}")
