"""`sanitize inspect --html`: one self-contained review page (thumbnails embedded, opens from
disk, no server). Per class, the flagged samples ranked by suspicion and a band of the kept
samples nearest the threshold, where the method's mistakes hide; each with its decision, new
label, confidence, reason and every signal. A reviewer marks keep / drop / relabel in the page
and downloads the choices as a reviews CSV, which `sanitize review --apply FILE` merges into
reviews.csv.

Everything the user controls (class names, sample ids, reasons) travels as JSON inside a
`<script type="application/json">` block with `<`, `>` and `&` escaped, and the page builds its
DOM with textContent only: no user text is ever parsed as HTML. No torch."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path

import polars as pl

from . import reviews
from .export import png
from .io import atomic_path
from .layout import Paths
from .review import summary_text, class_summary, load_review
from .store import SampleStore

# Per class, this many kept samples with the highest suspicion: those just under the threshold.
BAND = 24
ASSETS = Path(__file__).with_name("review_page")


def shown_samples(df: pl.DataFrame, band: int = BAND) -> pl.DataFrame:
    """Flagged and reviewed samples, and per class the `band` kept ones nearest the threshold."""
    flagged = (pl.col("decision") != "keep") | (pl.col("source") == "review")
    near = (
        df.filter(~flagged)
        .sort(["suspicion", "sample_id"], descending=[True, False])
        .filter(pl.int_range(pl.len()).over("label") < band)
        .with_columns(pl.lit(True).alias("band"))
    )
    return pl.concat([df.filter(flagged).with_columns(pl.lit(False).alias("band")), near]).sort("sample_id")


def _targets(summary: dict, classes: list[str]) -> list[str]:
    """Classes the method's summary names (an inferred target, suspected targets)."""
    named = set()
    for value in summary.values():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, str) and v in classes:
                named.add(v)
    return sorted(named, key=classes.index)


def page_data(data: str | Path, band: int = BAND) -> dict:
    df, classes, meta = load_review(data)
    paths = Paths(data)
    train = SampleStore(paths.store).split("train")
    row_of = {s: i for i, s in enumerate(train.sample_ids.tolist())}
    shown = shown_samples(df, band)
    signals = list(meta["signals"])
    samples = []
    for r in shown.iter_rows(named=True):
        image = train.images[row_of[r["sample_id"]]]
        samples.append(
            {
                "id": r["sample_id"],
                "label": r["label"],
                "decision": r["decision"],
                "new_label": r["new_label"],
                "confidence": round(r["confidence"], 4),
                "reason": r["reason"],
                "source": r["source"],
                "band": r["band"],
                "signals": [round(float(r[s]), 4) for s in signals],
                "poison": r.get("is_poison"),
                "thumb": "data:image/png;base64," + base64.b64encode(png(image)).decode(),
            }
        )
    extra = [(pl.col("source") == "review").sum().alias("reviewed")]
    if "is_poison" in df.columns:
        extra += [pl.col("is_poison").sum().alias("poisons"), (pl.col("is_poison") & (pl.col("decision") != "keep")).sum().alias("poisons_flagged")]
    per_class = class_summary(df, classes).join(df.group_by("label").agg(extra), on="label").sort("label")
    summary = {k: v for k, v in meta["summary"].items() if not isinstance(v, dict)}
    flagged = sum(not s["band"] for s in samples)
    # Names this run's page, so a reviewer's unsaved choices come back on reload, for it only.
    key = hashlib.sha1("\n".join(f"{s['id']}\t{s['decision']}" for s in samples).encode()).hexdigest()[:16]
    return {
        "key": key,
        "method": summary_text(meta),
        "targets": _targets(summary, classes),
        "flagged": flagged,
        "classes": classes,
        "signals": signals,
        "has_truth": "is_poison" in df.columns,
        "per_class": per_class.drop("label").to_dicts(),
        "total": len(df),
        "band": band,
        "columns": list(reviews.COLUMNS),
        "samples": samples,
    }


def script_json(obj) -> str:
    """JSON safe inside a <script> element: no `</script>` or `<!--` can end it early.
    Non-finite numbers (which JSON lacks) become null."""
    text = json.dumps(_finite(obj), ensure_ascii=True, sort_keys=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def render(data: dict) -> str:
    asset = lambda name: (ASSETS / name).read_text(encoding="utf-8")  # noqa: E731
    # The data goes in last, so no user text can land where a placeholder is looked for.
    return asset("page.html").replace("/*STYLE*/", asset("page.css")).replace("/*SCRIPT*/", asset("page.js")).replace("/*DATA*/", script_json(data))


def write_page(data: str | Path, out: str | Path, band: int = BAND) -> dict:
    info = page_data(data, band)
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(render(info), encoding="utf-8")
    return {"out": str(out), "bytes": out.stat().st_size, "shown": len(info["samples"]), "flagged": info["flagged"], "total": info["total"]}

