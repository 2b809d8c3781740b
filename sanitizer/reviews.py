"""A person's decisions: `reviews.csv` at the project root, one row per overruled sample
(sample_id, decision, label, who, when, note), small and git-tracked. train_clean and relabel
read it as a DVC dependency, so an override re-runs only them and evaluate, and the person
wins over the method: a reviewed sample's decision in decisions.parquet is the reviewer's, with
`source` "review". `sanitize review` and the HTML page's export write it.

Kept free of heavy imports: `sanitize review` reads it without torch."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import SanitizerError
from .io import atomic_path

COLUMNS = ("sample_id", "decision", "label", "who", "when", "note")
DECISIONS = ("keep", "drop", "relabel")
HEADER = ",".join(COLUMNS) + "\n"


@dataclass(frozen=True)
class Review:
    sample_id: str
    decision: str
    label: str = ""  # the class name, for relabel
    who: str = ""
    when: str = ""
    note: str = ""

    def reason(self) -> str:
        by = f" by {self.who}" if self.who else ""
        return f"reviewed{by}" + (f": {self.note}" if self.note else "")


def parse(text: str, where: str) -> list[Review]:
    """Rows of a reviews file, checked on their own (sample ids and classes are checked
    against the data by `check`)."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        return []
    missing = [c for c in ("sample_id", "decision") if c not in reader.fieldnames]
    if missing:
        raise SanitizerError(f"{where}: no column {', '.join(missing)}; the header must be {HEADER.strip()}")
    reviews, seen = [], {}
    for line, row in enumerate(reader, start=2):
        r = Review(**{c: (row.get(c) or "").strip() for c in COLUMNS})
        if r.decision not in DECISIONS:
            raise SanitizerError(f"{where} line {line}: decision {r.decision!r} is not one of {', '.join(DECISIONS)}")
        if r.decision == "relabel" and not r.label:
            raise SanitizerError(f"{where} line {line}: relabel of {r.sample_id!r} names no label (the class to relabel it as)")
        if r.sample_id in seen:
            raise SanitizerError(f"{where} lines {seen[r.sample_id]} and {line} both review {r.sample_id!r}: keep one")
        seen[r.sample_id] = line
        reviews.append(r)
    return reviews


def read(path: str | Path) -> list[Review]:
    """The reviews file; none when it does not exist (DVC itself insists on it for `dvc repro`)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise SanitizerError(f"{path} is not a UTF-8 text file; it must be a CSV with header {HEADER.strip()}") from None
    return parse(text, str(path))


def check(reviews: list[Review], sample_ids, classes: list[str], where: str) -> None:
    """Every reviewed sample must be a train sample, every relabel a known class."""
    known = set(np.asarray(sample_ids).tolist())
    unknown = [r.sample_id for r in reviews if r.sample_id not in known]
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise SanitizerError(f"{where} reviews unknown sample id(s) {shown}: not in the training set; fix or remove those rows")
    bad = sorted({r.label for r in reviews if r.decision == "relabel" and r.label not in classes})
    if bad:
        raise SanitizerError(f"{where} relabels to unknown class(es) {', '.join(map(repr, bad))}; classes: {', '.join(classes)}")


def load(path: str | Path, sample_ids, classes: list[str]) -> list[Review]:
    reviews = read(path)
    check(reviews, sample_ids, classes, str(path))
    return reviews


@dataclass(frozen=True)
class Overrides:
    """Per train sample: whether a person reviewed it, the label they gave (-1: drop), why."""

    reviewed: np.ndarray
    label: np.ndarray
    reason: np.ndarray


def overrides(reviews: list[Review], sample_ids, labels: np.ndarray, classes: list[str]) -> Overrides:
    index = {s: i for i, s in enumerate(np.asarray(sample_ids).tolist())}
    reviewed = np.zeros(len(labels), dtype=bool)
    label = np.asarray(labels).copy()
    reason = np.full(len(labels), "", dtype=object)
    for r in reviews:
        i = index[r.sample_id]
        reviewed[i], reason[i] = True, r.reason()
        label[i] = -1 if r.decision == "drop" else classes.index(r.label) if r.decision == "relabel" else labels[i]
    return Overrides(reviewed, label, reason)


def write(path: str | Path, reviews: list[Review]) -> None:
    """Sorted by sample id, so a review is a one-line diff in git."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in sorted(reviews, key=lambda r: r.sample_id):
        writer.writerow([getattr(r, c) for c in COLUMNS])
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")


def merge(old: list[Review], new: list[Review]) -> list[Review]:
    """The new reviews replace the old ones of the same samples."""
    by_id = {r.sample_id: r for r in old}
    by_id.update({r.sample_id: r for r in new})
    return list(by_id.values())


def now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def train_samples(data: str | Path) -> tuple[np.ndarray, list[str]]:
    """The sample ids and class names reviews are checked against: the store's train split."""
    from .layout import Paths
    from .store import SampleStore

    store = SampleStore(Paths(data).store)
    return store.rows("train")["sample_id"].to_numpy(), store.classes


def record(data: str | Path, new: list[Review], clear: list[str] = ()) -> tuple[Path, int]:
    """Add (or replace) reviews in the project's reviews file, or clear some; checked against
    the data first, so a wrong id or class changes nothing. The file and its size after."""
    from .layout import Paths

    path = Paths(data).reviews
    ids, classes = train_samples(data)
    check(new, ids, classes, "the review")
    unknown = sorted(set(clear) - set(ids.tolist()))
    if unknown:
        raise SanitizerError(f"unknown sample id(s) {', '.join(map(repr, unknown[:5]))}: not in the training set")
    kept = [r for r in merge(read(path), new) if r.sample_id not in set(clear)]
    write(path, kept)
    return path, len(kept)
