"""How heavy the review page is on a full run: writes `sanitize inspect --html` for a finished
data root and measures its size, the time to write it, and the time headless chromium takes to
load and draw it (to the first grid of cards), then to switch the class filter. Twice: as
`sanitize inspect --html` writes it, and with every sample in the band, the page a method
that flagged everything would give (its worst case).

    python benchmarks/review_page.py benchmarks/runs/grid-fmnist-pbe-badnets-all-to-all/data

Writes benchmarks/results/review-page.{md,json}."""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sanitizer.review_page import BAND, write_page  # noqa: E402


def measure(data: Path, out: Path, band: int) -> dict:
    from playwright.sync_api import sync_playwright

    start = time.perf_counter()
    done = write_page(data, out, band)
    done["write_seconds"] = round(time.perf_counter() - start, 2)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        start = time.perf_counter()
        page.goto(out.as_uri())
        page.wait_for_selector(".card")
        done["load_seconds"] = round(time.perf_counter() - start, 2)
        done["cards_drawn"] = page.locator(".card").count()
        start = time.perf_counter()
        page.select_option("#f-class", index=2)
        page.wait_for_selector(".card")
        done["filter_seconds"] = round(time.perf_counter() - start, 2)
        browser.close()
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    args = parser.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, band in (("default", BAND), ("every sample", 10**9)):
            rows[name] = measure(args.data, Path(tmp) / "review.html", band)
            del rows[name]["out"]
    result = {"data": str(args.data), "command": " ".join(sys.argv), "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}", "rows": rows}
    results = REPO / "benchmarks" / "results"
    (results / "review-page.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    lines = ["# Review page weight", "", f"`{result['command']}` ({result['machine']}, headless chromium)", "",
             "| page | samples | shown (flagged + near threshold) | page MB | write s | load to first cards s | class filter s | cards drawn |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['total']} | {r['shown']} ({r['flagged']} + {r['shown'] - r['flagged']}) | {r['bytes'] / 1e6:.1f} | {r['write_seconds']} | {r['load_seconds']} | {r['filter_seconds']} | {r['cards_drawn']} |")
    (results / "review-page.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
