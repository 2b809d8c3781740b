"""A fresh pipeline project for tests and benchmarks. No pytest here: the benchmarks import it
on machines that have only the project's runtime packages (a lent GPU's image)."""

import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# The shared CIFAR-10 Parquet, beside the checkout (CI) or inside it.
CIFAR10 = next((p for p in (REPO.parent / "shared", REPO / "shared") if (p / "datasets" / "cifar10-jpeg").exists()), REPO.parent / "shared") / "datasets" / "cifar10-jpeg"


def lay_code(dest: Path, overrides: dict) -> None:
    """This checkout's code, dvc.yaml and params (with `overrides`) into `dest`, replacing
    what is there: over a project that has run, `dvc repro` then re-runs only the stages whose
    code or params changed."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("sanitizer", "stages"):
        shutil.rmtree(dest / name, ignore_errors=True)
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for name in ("dvc.yaml", "reviews.csv"):
        shutil.copy(REPO / name, dest / name)
    write_params(dest / "params.yaml", overrides)


def write_params(path: Path, overrides: dict) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in overrides.items():
        params.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def make_project(dest: Path, overrides: dict, dvc: bool = True) -> Path:
    """A fresh copy of the pipeline (code, dvc.yaml, params) in its own git + DVC repo (with
    `dvc` false, a plain folder: for a machine without DVC)."""
    dest.mkdir(parents=True)
    lay_code(dest, overrides)
    if not dvc:
        return dest
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    shutil.copy(REPO / ".dvcignore", dest / ".dvcignore")  # after dvc init, which writes its own
    return dest
