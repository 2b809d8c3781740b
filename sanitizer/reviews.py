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
    reader.fieldnames = [f.strip() for f in reader.fieldnames]  # "sample_id, decision" after a hand edit
    missing = [c for c in ("sample_id", "decision") if c not in reader.fieldnames]
    if missing:
        raise SanitizerError(f"{where}: no column {', '.join(missing)}; the header must be {HEADER.strip()}")
    reviews, seen = [], {}
    for row in reader:
        line = reader.line_num  # the file's line: blank lines and multi-line notes counted
        # Sample ids are taken as written: an id may itself begin or end with a space.
        r = Review(row.get("sample_id") or "", *((row.get(c) or "").strip() for c in COLUMNS[1:]))
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


def check(reviews: list[Review], sample_ids, labels, classes: list[str], where: str) -> None:
    """Every reviewed sample must be a train sample, every relabel a known class other than the
    sample's own (that is a keep: saying so is clearer than a relabel that changes nothing)."""
    index = {s: i for i, s in enumerate(np.asarray(sample_ids).tolist())}
    unknown = [r.sample_id for r in reviews if r.sample_id not in index]
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise SanitizerError(f"{where}: unknown sample id(s) {shown}, not in the training set; fix or remove those rows")
    bad = sorted({r.label for r in reviews if r.decision == "relabel" and r.label not in classes})
    if bad:
        raise SanitizerError(f"{where}: relabel to unknown class(es) {', '.join(map(repr, bad))}; classes: {', '.join(classes)}")
    same = [r.sample_id for r in reviews if r.decision == "relabel" and classes.index(r.label) == labels[index[r.sample_id]]]
    if same:
        raise SanitizerError(f"{where}: {', '.join(map(repr, same[:5]))} would be relabelled as the class it already has; review it as keep instead")


@dataclass(frozen=True)
class Overrides:
    """Per train sample: whether a person reviewed it, their decision, the label to train it
    with (the given one unless relabelled), and why."""

    reviewed: np.ndarray
    decision: np.ndarray
    label: np.ndarray
    reason: np.ndarray


def overrides(reviews: list[Review], sample_ids, labels: np.ndarray, classes: list[str]) -> Overrides:
    index = {s: i for i, s in enumerate(np.asarray(sample_ids).tolist())}
    reviewed = np.zeros(len(labels), dtype=bool)
    decision = np.full(len(labels), "", dtype=object)
    label = np.asarray(labels).copy()
    reason = np.full(len(labels), "", dtype=object)
    for r in reviews:
        i = index[r.sample_id]
        reviewed[i], decision[i], reason[i] = True, r.decision, r.reason()
        if r.decision == "relabel":
            label[i] = classes.index(r.label)
    return Overrides(reviewed, decision, label, reason)


def load(path: str | Path, sample_ids, labels: np.ndarray, classes: list[str]) -> Overrides:
    """What the stages read: the reviews file, checked against the train split, per sample."""
    path = Path(path)
    if not path.exists():
        # DVC insists on the file; a stage run by hand just says it found none.
        from .progress import log

        log(f"no reviews file at {path}: the method's decisions stand")
    reviews = read(path)
    check(reviews, sample_ids, labels, classes, str(path))
    return overrides(reviews, sample_ids, labels, classes)


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
    """The new reviews replace the old ones of the same samples. One that says again what the
    old one said keeps the old row (its time too), so the file, and DVC, see no change."""
    by_id = {r.sample_id: r for r in old}
    for r in new:
        before = by_id.get(r.sample_id)
        if before is None or (before.decision, before.label, before.note) != (r.decision, r.label, r.note):
            by_id[r.sample_id] = r
    return list(by_id.values())


def now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def train_samples(data: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The sample ids, given labels and class names reviews are checked against: the store's
    train split."""
    from .layout import Paths
    from .store import SampleStore

    store = SampleStore(Paths(data).store)
    train = store.rows("train")
    return train["sample_id"].to_numpy(), train["label"].to_numpy(), store.classes


def record(data: str | Path, new: list[Review], clear: list[str] = (), where: str = "the review") -> tuple[Path, int, int]:
    """Add (or replace) reviews in the project's reviews file, or clear some; checked against
    the data first, so a wrong id or class changes nothing. The file, how many reviews it
    holds after, and how many were cleared."""
    from .layout import Paths

    path = Paths(data).reviews
    ids, labels, classes = train_samples(data)
    check(new, ids, labels, classes, where)
    unknown = sorted(set(clear) - set(ids.tolist()))
    if unknown:
        raise SanitizerError(f"unknown sample id(s) {', '.join(map(repr, unknown[:5]))}: not in the training set")
    clear = set(clear)
    merged = merge(read(path), new)
    kept = [r for r in merged if r.sample_id not in clear]
    write(path, kept)
    return path, len(kept), len(merged) - len(kept)
