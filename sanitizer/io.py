"""Atomic, deterministic file output: every stage writes through here, so a crash or a bad
input never leaves a half-written file that DVC or the next stage would trust."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds.
    Works for files and directories alike."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


PLACEHOLDER = "not computed:"


def placeholder_error(path: str | Path) -> str | None:
    """What to tell a reader that found a placeholder (a stage of a method that was not picked)
    where an artefact should be; None for any other file."""
    try:
        with open(path, "rb") as f:
            head = f.read(300).decode("utf-8", "replace")
    except OSError:
        return None
    if not head.startswith(PLACEHOLDER):
        return None
    return f"{path} was {head.splitlines()[0]}; pick that method and re-run (`dvc repro` does)"


def write_json(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp:
        # allow_nan=False: a NaN would make invalid JSON, and hide a bug that produced it.
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


@contextlib.contextmanager
def atomic_outputs(*paths: str | Path) -> Iterator[None]:
    """Remove stale outputs before a stage runs and again if it fails, so a failed stage
    leaves none of its outputs behind (each output itself is written atomically). A stage
    killed mid-write (kill -9, power loss) cannot clean up: its temporary folders beside the
    outputs go when the stage next runs."""
    for p in map(Path, paths):
        _remove(p)
        for leftover in p.parent.glob(f".{p.name}.*") if p.parent.is_dir() else ():
            _remove(leftover)
    try:
        yield
    except BaseException:
        for p in paths:
            _remove(Path(p))
        raise


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()
