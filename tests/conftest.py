import shutil
import subprocess
from pathlib import Path

import pytest

from project import CIFAR10, FASHION_MNIST, REPO, make_project, write_params  # noqa: F401  (tests import them from here)

# A few-thousand-sample run of the real pipeline: minutes on two cores, not tens.
TINY_PARAMS = {
    "data": {"limit": 2000},
    "train": {"epochs": 3},
    "score": {"steps": 1},
    "enhance": {"rounds": 2, "clean_epochs": 1},
    "relabel": {"epochs": 1},
    # A 2,000-sample suspect is too weak for partition to name its target, and with the default
    # scope nothing would be suspected: flag by consistency everywhere, so that relabel, the
    # review loop and the reports have suspects to work on.
    "identify": {"scope": "all"},
}

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


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
