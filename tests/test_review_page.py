"""The HTML review page, in a real headless browser: user text stays text, filters work, and a
reviewer's marks download as a reviews CSV that `sanitize review --apply` takes."""

import json

import polars as pl
import pytest
from click.testing import CliRunner
from conftest import needs_browser
from test_datasets import image_bytes
from test_export import ingest_tables

from sanitizer import reviews
from sanitizer.cli import main
from sanitizer.layout import Paths
from sanitizer.manifest import write_manifest
from sanitizer.review_page import script_json, shown_samples

pytestmark = needs_browser

SCRIPT = "<script>alert(1)</script>"
CLASSES = [SCRIPT, "cat", "dog"]
IDS = ["</script><script>alert(2)</script>", "<img src=x onerror=alert(3)>", "c&amp;", "d", "e", "f"]


@pytest.fixture
def review_data(tmp_path):
    """An ingested store of 6 train samples whose class names and ids are hostile HTML, with a
    method's suspicion and decisions for it."""
    labels = [0, 0, 1, 1, 2, 2]
    blobs = [image_bytes(40 * i, (1, 8, 8)) for i in range(6)]
    data = ingest_tables(tmp_path, CLASSES, labels, blobs, [image_bytes(9, (1, 8, 8))] * 2, {"sample_id": IDS}, {"sample_id": ["t0", "t1"]})
    paths = Paths(data)
    ids = sorted(IDS)
    decisions = {
        "sample_id": ids,
        "label": [labels[IDS.index(i)] for i in ids],
        "decision": ["drop", "relabel", "keep", "keep", "drop", "keep"],
        "new_label": [labels[IDS.index(i)] for i in ids],
        "confidence": [0.3, 0.8, 0.9, 0.95, 0.2, 0.99],
        "reason": [SCRIPT, "r", "not suspected", "not suspected", "r", "not suspected"],
        "source": ["method"] * 6,
    }
    decisions["new_label"][1] = 2
    write_manifest(pl.DataFrame(decisions), paths.decisions, "relabel", {"classes": CLASSES})
    suspicion = {"sample_id": ids, "suspicion": [5.0, 4.0, 1.0, 0.5, 3.0, 0.1], "suspected": [True, True, False, False, True, False], "gap": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}
    meta = {"method": "advrbd", "signals": {"suspicion": "consistency", "gap": "purification gap"}, "summary": {"suspected_targets": [SCRIPT]}, "models": []}
    write_manifest(pl.DataFrame(suspicion), paths.suspicion, "detect", meta)
    for stage in ("relabel", "detect"):
        (data / stage / "timing.json").write_text((data / "ingest/timing.json").read_text())
    out = tmp_path / "review.html"
    result = CliRunner().invoke(main, ["inspect", "--data", str(data), "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 flagged or reviewed and 3 near-threshold samples of 6" in result.output
    return data, out


def test_json_in_the_page_cannot_close_its_script_element():
    text = script_json({"x": "</script><!--<script>&"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"x": "</script><!--<script>&"}
    assert script_json({"anomaly": float("nan"), "shares": [float("inf"), 0.5]}) == '{"anomaly": null, "shares": [null, 0.5]}'


def test_the_band_is_the_kept_samples_nearest_the_threshold_per_class():
    df = pl.DataFrame({"sample_id": list("abcdef"), "label": [0, 0, 0, 1, 1, 1], "decision": ["drop", "keep", "keep", "keep", "keep", "relabel"], "source": ["method"] * 6, "suspicion": [9.0, 2.0, 1.0, 0.5, 3.0, 8.0]})
    shown = shown_samples(df, band=1)
    assert dict(zip(shown["sample_id"], shown["band"])) == {"a": False, "b": True, "e": True, "f": False}


def test_user_text_is_shown_as_text_and_runs_nothing(review_data, page):
    _, out = review_data
    page.goto(out.as_uri())
    assert page.locator("#summary tbody tr").first.locator("td").first.inner_text() == SCRIPT
    assert page.locator("section.class h2").first.inner_text().startswith(SCRIPT)
    page.select_option("#f-decision", "all")
    assert sorted(page.locator(".card .id").all_inner_texts()) == sorted(IDS)
    page.locator(".card", has_text="alert(2)").click()
    assert page.locator("#d-fields").inner_text().count(SCRIPT) == 2  # its class and its reason
    assert page.dialogs == []
    assert page.evaluate("document.querySelectorAll('img[src=x], body script').length") == 2  # the page's own two scripts


def test_filter_mark_and_download_then_apply(review_data, page, tmp_path):
    data, out = review_data
    page.goto(out.as_uri())
    page.select_option("#f-class", label="dog")
    assert page.locator("section.class").count() == 1
    assert page.locator(".card .id").all_inner_texts() == ["e"]  # dog's one flagged sample
    page.select_option("#f-decision", "band")
    assert page.locator(".card .id").all_inner_texts() == ["f"]
    page.fill("#who", "ana")
    page.locator(".card", has_text="f").click()
    page.select_option("#d-label", label="dog")  # its given label: nothing to relabel
    assert page.locator("button[data-decision=relabel]").is_disabled()
    page.select_option("#d-label", label="cat")
    assert page.locator("button[data-decision=relabel]").is_enabled()
    page.fill("#d-note", 'looks like a "cat", really')
    page.click("button[data-decision=relabel]")
    assert page.locator("#pending").inner_text() == "1 choice"
    page.select_option("#f-class", "")
    page.select_option("#f-decision", "flagged")
    page.locator(".card", has_text="alert(3)").click()
    page.click("button[data-decision=keep]")
    with page.expect_download() as download:
        page.click("#export")
    exported = tmp_path / "exported.csv"
    download.value.save_as(exported)
    result = CliRunner().invoke(main, ["review", "--data", str(data), "--apply", str(exported)])
    assert result.exit_code == 0, result.output
    got = {(r.sample_id, r.decision, r.label, r.who, r.note) for r in reviews.read(data.parent / "reviews.csv")}
    assert got == {("f", "relabel", "cat", "ana", 'looks like a "cat", really'), (IDS[1], "keep", "", "ana", "")}
    # The choices outlive a reload of the page. Chromium hands a page's localStorage writes to
    # its storage service asynchronously (a CI run once reloaded before they landed), so wait
    # until another tab of the same browser sees them: that is what a reload reads.
    other = page.context.new_page()
    other.goto(out.as_uri())
    other.wait_for_function("Object.keys(localStorage).some(k => JSON.parse(localStorage.getItem(k)).length === 2)", timeout=10_000)
    page.reload()
    assert page.locator("#pending").inner_text() == "2 choices"
