"""reviews.csv: a person's keep / drop / relabel, checked against the data, and winning over
the method's decision."""

import numpy as np
import pytest
from click.testing import CliRunner
from test_export import run  # noqa: F401 - the fixture: an ingested 6-sample store

from sanitizer import reviews
from sanitizer.cli import main
from sanitizer.decisions import Decisions, overrule
from sanitizer.errors import SanitizerError

CLASSES = ["T-shirt/top", "cat", ".hidden"]


@pytest.mark.parametrize(
    "text, error",
    [
        ("sample_id,decision\na,burn\n", r"line 2: decision 'burn' is not one of keep, drop, relabel"),
        ("sample_id,decision,label\na,relabel,\n", r"relabel of 'a' names no label"),
        ("sample_id,decision\na,drop\nb,keep\na,keep\n", r"lines 2 and 4 both review 'a'"),
        ("id,verdict\na,drop\n", r"no column sample_id, decision"),
    ],
)
def test_a_malformed_reviews_file_is_a_clear_error(text, error):
    with pytest.raises(SanitizerError, match=error):
        reviews.parse(text, "reviews.csv")


def test_unknown_samples_classes_and_relabels_that_change_nothing_are_named():
    ids, labels = np.array(["a", "b"]), np.array([0, 1])
    with pytest.raises(SanitizerError, match=r"unknown sample id\(s\) 'zz'"):
        reviews.check([reviews.Review("zz", "drop")], ids, labels, CLASSES, "reviews.csv")
    with pytest.raises(SanitizerError, match=r"unknown class\(es\) 'dog'; classes: T-shirt/top, cat, .hidden"):
        reviews.check([reviews.Review("a", "relabel", "dog")], ids, labels, CLASSES, "reviews.csv")
    with pytest.raises(SanitizerError, match=r"'b' would be relabelled as the class it already has; review it as keep"):
        reviews.check([reviews.Review("b", "relabel", "cat")], ids, labels, CLASSES, "reviews.csv")


def test_line_numbers_count_blank_lines_and_a_spaced_header_reads():
    with pytest.raises(SanitizerError, match=r"line 4: decision 'burn'"):
        reviews.parse("sample_id, decision\na,drop\n\nb,burn\n", "reviews.csv")
    assert [r.sample_id for r in reviews.parse("sample_id , decision\r\n a ,keep\r\n", "x")] == [" a "]


def test_saying_the_same_again_keeps_the_row_and_its_time():
    old = [reviews.Review("a", "drop", "", "ana", "2026-01-01T00:00:00+00:00", "logo")]
    again = [reviews.Review("a", "drop", "", "bo", "2026-12-01T00:00:00+00:00", "logo")]
    assert reviews.merge(old, again) == old
    other = [reviews.Review("a", "keep", "", "bo", "2026-12-01T00:00:00+00:00", "")]
    assert reviews.merge(old, other) == other


def test_a_review_overrules_the_method_and_is_marked_as_a_persons():
    labels = np.array([0, 1, 1, 2])
    method = Decisions(
        decision=np.array(["keep", "drop", "relabel", "keep"]),
        new_label=np.array([0, 1, 0, 2]),
        confidence=np.array([0.9, 0.3, 0.8, 0.95]),
        reason=np.array(["not suspected", "unsure", "other label", "not suspected"]),
        source=np.array(["method"] * 4),
    )
    said = reviews.overrides(
        [reviews.Review("s0", "drop", who="ana", note="watermark"), reviews.Review("s1", "keep"), reviews.Review("s2", "relabel", ".hidden")],
        np.array(["s0", "s1", "s2", "s3"]),
        labels,
        CLASSES,
    )
    out = overrule(method, said)
    assert out.decision.tolist() == ["drop", "keep", "relabel", "keep"]
    assert out.new_label.tolist() == [0, 1, 2, 2]
    assert out.source.tolist() == ["review", "review", "review", "method"]
    assert out.reason.tolist() == ["reviewed by ana: watermark", "reviewed", "reviewed", "not suspected"]
    assert out.confidence.tolist() == method.confidence.tolist()


def write_cp1252(folder):
    path = folder / "excel.csv"
    path.write_bytes("sample_id,decision,label,who,when,note\nx,drop,,Zoë,,café\n".encode("cp1252"))
    return path


def review(data, *args):
    return CliRunner().invoke(main, ["review", "--data", str(data), "--who", "ana", *args])


def test_the_review_command_records_replaces_and_clears_sorted_by_sample_id(run):  # noqa: F811
    data, ids = run
    file = data.parent / "reviews.csv"
    assert review(data, ids[3], ids[1], "--drop", "--note", "logo, corner").exit_code == 0
    result = review(data, ids[3], "--relabel", ".hidden")
    assert result.exit_code == 0, result.output
    assert "holds 2 review(s)" in result.output
    rows = reviews.read(file)
    assert [(r.sample_id, r.decision, r.label, r.who, r.note) for r in rows] == [
        (ids[1], "drop", "", "ana", "logo, corner"),
        (ids[3], "relabel", ".hidden", "ana", ""),
    ]
    result = review(data, ids[1], ids[0], "--clear")
    assert result.exit_code == 2  # --who means nothing to --clear
    result = CliRunner().invoke(main, ["review", "--data", str(data), ids[1], ids[0], "--clear"])
    assert result.exit_code == 0 and "cleared 1 review(s)" in result.output
    assert [r.sample_id for r in reviews.read(file)] == [ids[3]]


def test_the_review_command_rejects_unknown_ids_and_classes_and_changes_nothing(run):  # noqa: F811
    data, ids = run
    file = data.parent / "reviews.csv"
    assert review(data, ids[0], "--keep").exit_code == 0
    before = file.read_bytes()
    bad = review(data, "no-such-id", "--drop")
    assert bad.exit_code == 1 and "unknown sample id(s) 'no-such-id'" in bad.output and "Traceback" not in bad.output
    bad = review(data, ids[0], "--relabel", "dog")
    assert bad.exit_code == 1 and "unknown class(es) 'dog'" in bad.output
    bad = CliRunner().invoke(main, ["review", "--data", str(data), "--apply", str(write_cp1252(data.parent))])
    assert bad.exit_code == 1 and "is not a UTF-8 text file" in bad.output
    assert review(data, ids[0]).exit_code == 2  # no decision
    assert review(data, ids[0], "--keep", "--relabel", "cat").exit_code == 2  # two decisions
    assert review(data, ids[0], "--keep", "--drop").exit_code == 2
    assert file.read_bytes() == before


def test_apply_merges_an_exported_file_over_earlier_reviews(run, tmp_path):  # noqa: F811
    data, ids = run
    assert review(data, ids[0], "--keep").exit_code == 0
    exported = tmp_path / "exported.csv"
    exported.write_text(f"sample_id,decision,label,who,when,note\n{ids[0]},drop,,bo,2026-12-01T00:00:00+00:00,\n{ids[2]},relabel,.hidden,bo,,\n")
    result = CliRunner().invoke(main, ["review", "--data", str(data), "--apply", str(exported)])
    assert result.exit_code == 0, result.output
    assert [(r.sample_id, r.decision, r.who) for r in reviews.read(data.parent / "reviews.csv")] == [(ids[0], "drop", "bo"), (ids[2], "relabel", "bo")]
