import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

# A few-thousand-sample run of the real pipeline: minutes on two cores, not tens.
TINY_PARAMS = {
    "data": {"limit": 2000},
    "train": {"epochs": 3},
    "score": {"steps": 1},
    "enhance": {"rounds": 2, "clean_epochs": 1},
    "relabel": {"epochs": 1},
}

# The shared CIFAR-10 Parquet, beside the checkout (CI) or inside it.
CIFAR10 = next((p for p in (REPO.parent / "shared", REPO / "shared") if (p / "datasets" / "cifar10-jpeg").exists()), REPO.parent / "shared") / "datasets" / "cifar10-jpeg"
needs_cifar10 = pytest.mark.skipif(not CIFAR10.exists(), reason=f"CIFAR-10 Parquet not found at {CIFAR10}")

# The review page is tested in a real headless browser: Debian's chromium driven by Playwright
# (scripts/setup installs both).
CHROMIUM = shutil.which("chromium")
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (scripts/setup installs it)")


@pytest.fixture
def page():
    """A fresh headless-chromium page; every dialog it opens (an injected alert, say) is kept
    in page.dialogs."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900})
        pg = context.new_page()
        pg.dialogs = []
        pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
        yield pg
        browser.close()


needs_fashion_mnist = pytest.mark.skipif(
    not FASHION_MNIST.exists(), reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)"
)


def write_params(path: Path, overrides: dict) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in overrides.items():
        params.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def make_project(dest: Path, overrides: dict, dvc: bool = True) -> Path:
    """A fresh copy of the pipeline (code, dvc.yaml, params) in its own git + DVC repo (with
    `dvc` false, a plain folder: for a machine without DVC)."""
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("sanitizer", "stages"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for name in ("dvc.yaml", "reviews.csv"):
        shutil.copy(REPO / name, dest / name)
    write_params(dest / "params.yaml", overrides)
    if not dvc:
        return dest
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    shutil.copy(REPO / ".dvcignore", dest / ".dvcignore")  # after dvc init, which writes its own
    return dest


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
