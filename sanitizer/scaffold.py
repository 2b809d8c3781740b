"""`sanitize init`: sanitizer in a team's own repository. Writes a dvc.yaml whose stages call
the installed `sanitize` (no path into sanitizer's source tree), a params.yaml with every
section at its default and `data` pointing at the team's images, and an empty reviews.csv;
makes the folder a git and DVC repository when it is not one yet. Then `dvc repro` there runs
the whole pipeline."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import yaml

from .config import SECTIONS, config
from .errors import SanitizerError
from .io import atomic_path
from .reviews import HEADER as REVIEWS_HEADER

SOURCES = {"imagefolder": "root/<class>/<image> (or root/train/<class>/... and root/test/<class>/...)", "parquet": "one Parquet file, or a folder with train.parquet and test.parquet"}
DVC_HEADER = """# Written by `sanitize init`. Each stage runs the installed sanitizer (`sanitize run STAGE`).
# DVC cannot see the installed package's code: after upgrading sanitizer, `dvc repro -f`.
"""
PARAMS_HEADER = """# Written by `sanitize init`: every section at sanitizer's defaults, `data` pointing at your
# images and no attack (your data is the untrusted set). README "Your own data" explains them.
"""


def plain(value):
    """Config values as YAML writes them: tuples as lists."""
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value


def default_params(source: str, path: str) -> dict:
    params = {name: {k: plain(v) for k, v in dataclasses.asdict(config(name, {})).items()} for name in SECTIONS}
    params["data"].update(source=source, path=path)
    params["attack"]["name"] = "none"
    return params


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise SanitizerError(f"`{cmd[0]}` is not installed; sanitize init needs it") from None
    if result.returncode != 0:
        raise SanitizerError(f"`{' '.join(cmd)}` failed in {cwd}: {result.stderr.strip() or result.stdout.strip()}")


def init(folder: str | Path, source: str, data_path: str | Path, force: bool = False) -> list[str]:
    """Set up `folder`; the files written and the commands run, in order."""
    from .dvcfile import render

    folder = Path(folder).resolve()
    if source not in SOURCES:
        raise SanitizerError(f"unknown source {source!r}; sources: {', '.join(SOURCES)}")
    images = Path(data_path)
    if not images.exists():
        raise SanitizerError(f"{data_path} does not exist: give your {SOURCES[source]}")
    folder.mkdir(parents=True, exist_ok=True)
    images = images.resolve()
    if images == folder or (images.is_dir() and (folder / "data").resolve().is_relative_to(images)):
        raise SanitizerError(f"{data_path} holds the project itself (its data/ folder would be among the images): put the images in a folder of their own")
    written = ["dvc.yaml", "params.yaml"]
    clash = [n for n in written if (folder / n).exists()]
    if clash and not force:
        raise SanitizerError(f"{folder} already has {', '.join(clash)}: pass --force to replace them")
    # Inside the project, the images are a DVC dependency of ingest (a changed image re-runs
    # it), written as a relative path so a clone elsewhere works.
    inside = images.is_relative_to(folder)
    path = images.relative_to(folder).as_posix() if inside else str(images)
    done = []
    if _git(["rev-parse", "--git-dir"], folder).returncode != 0:
        _run(["git", "init", "-q"], folder)
        done.append("git init")
    if not (folder / ".dvc").exists():
        # The DVC of this interpreter: the one installed with sanitizer, whatever PATH holds.
        subdir = ["--subdir"] if Path(_git(["rev-parse", "--show-toplevel"], folder).stdout.strip()).resolve() != folder else []
        _run([sys.executable, "-m", "dvc", "init", "-q", *subdir], folder)
        done.append("dvc init")
    files = {
        "dvc.yaml": render(installed=True, header=DVC_HEADER, extra_deps={"ingest": [path]} if inside else None),
        "params.yaml": PARAMS_HEADER + yaml.safe_dump(default_params(source, path), sort_keys=False),
    }
    # A team's reviews are never overwritten, --force or not.
    if not (folder / "reviews.csv").exists():
        files["reviews.csv"] = REVIEWS_HEADER
    for name, text in files.items():
        with atomic_path(folder / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return done + list(files)


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise SanitizerError("`git` is not installed; sanitize init needs it (DVC tracks the pipeline in git)") from None
