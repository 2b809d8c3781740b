"""`sanitize init` in a team's own folder, from a pip install of the package (a built wheel,
not this source tree) into a fresh venv, on a small real ImageFolder: `dvc repro` runs the
whole pipeline there, and the review page works from the installed package."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml
from conftest import REPO, TINY_PARAMS, needs_fashion_mnist, run

from sanitizer.config import config
from sanitizer.datasets import load_dataset
from sanitizer.export import png, safe_name
from sanitizer.layout import STAGES

pytestmark = needs_fashion_mnist


def write_imagefolder(root: Path, train: int, test: int) -> None:
    """Real Fashion-MNIST images as root/{train,test}/<class>/<n>.png."""
    raw = load_dataset(config("data", {"data": {"limit": train}}))
    for split, limit in (("train", train), ("test", test)):
        rows = [i for i, s in enumerate(raw.splits) if s == split][:limit]
        for i in rows:
            folder = root / split / safe_name(raw.classes[raw.labels[i]])
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:05d}.png").write_bytes(png(raw.images[i]))


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A fresh venv holding sanitizer as pip installs it from a wheel. Its dependencies come
    from this checkout's environment through a .pth line (pip installing torch again would take
    minutes and gigabytes and prove nothing more about sanitizer)."""
    tmp = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(REPO)], tmp)
    wheel = next((tmp / "dist").glob("sanitizer-*.whl"))
    base = Path(sys.base_prefix) / "bin" / "python3"
    run([str(base), "-m", "venv", str(tmp / "env")], tmp)
    site = next((tmp / "env/lib").glob("python3*/site-packages"))
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([str(tmp / "env/bin/python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp)
    return tmp / "env"


def in_venv(venv: Path, cmd: list[str], cwd: Path, check: bool = True):
    env = {**os.environ, "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def test_init_then_dvc_repro_runs_the_pipeline_from_the_installed_package(venv, tmp_path):
    project = tmp_path / "team-repo"
    write_imagefolder(project / "images", train=300, test=60)
    found = in_venv(venv, ["python", "-c", "import sanitizer, stages; print(sanitizer.__file__, stages.__file__)"], tmp_path).stdout
    assert str(REPO) not in found and str(venv) in found, found
    out = in_venv(venv, ["sanitize", "init", "--imagefolder", "images"], project)
    assert "git init, dvc init, dvc.yaml, params.yaml, reviews.csv" in out.stdout, out.stdout
    dvc_yaml = (project / "dvc.yaml").read_text()
    assert str(REPO) not in dvc_yaml and "python -m stages" not in dvc_yaml
    assert "cmd: sanitize run ingest" in dvc_yaml and "- images" in dvc_yaml
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["data"] == {**params["data"], "source": "imagefolder", "path": "images"} and params["attack"]["name"] == "none"
    for section, values in TINY_PARAMS.items():
        params[section].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    repro = in_venv(venv, ["python", "-m", "dvc", "repro"], project)
    assert repro.stdout.count("Running stage") == len(STAGES), repro.stdout
    metrics = json.loads((project / "data/evaluate/metrics.json").read_text())
    assert metrics["decisions"]["keep"] + metrics["decisions"]["drop"] + metrics["decisions"]["relabel"] == 300
    page = in_venv(venv, ["sanitize", "inspect", "--html", "review.html"], project)
    assert "of 300" in page.stdout and (project / "review.html").stat().st_size > 1000
    # A second init refuses to overwrite; the team's edits are safe.
    again = in_venv(venv, ["sanitize", "init", "--imagefolder", "images"], project, check=False)
    assert again.returncode == 1 and "already has dvc.yaml, params.yaml: pass --force" in again.stderr


def test_init_names_what_is_wrong(venv, tmp_path):
    missing = in_venv(venv, ["sanitize", "init", "--imagefolder", "no-such-folder"], tmp_path, check=False)
    assert missing.returncode == 1 and "no-such-folder does not exist" in missing.stderr and "Traceback" not in missing.stderr
    both = in_venv(venv, ["sanitize", "init", "--imagefolder", ".", "--parquet", "."], tmp_path, check=False)
    assert both.returncode == 2 and "exactly one of --imagefolder PATH or --parquet PATH" in both.stderr
