import subprocess
import sys

import polars as pl
from click.testing import CliRunner
from conftest import REPO, needs_fashion_mnist

from sanitizer.cli import main
from sanitizer.manifest import write_manifest
from sanitizer.layout import Paths

CLASSES = ["cat", "dog", "bird"]


def test_help_does_not_import_torch():
    code = "import sys; from sanitizer.cli import main; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "inspect" in result.output and "run" in result.output


def test_run_rejects_unknown_stage():
    result = CliRunner().invoke(main, ["run", "nonsense"])
    assert result.exit_code == 2
    assert "nonsense" in result.output


def test_run_reports_bad_params_without_traceback(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("score:\n  eps: 2.0\n")
    result = CliRunner().invoke(main, ["run", "score", "--params", str(params), "--data", str(tmp_path / "data")])
    assert result.exit_code == 1
    assert "[score].eps must be in (0.0, 1.0], got 2.0" in result.output
    assert "Traceback" not in result.output


def _write_review_data(root, with_truth: bool):
    paths = Paths(root)
    ids = [f"s{i}" for i in range(6)]
    write_manifest(
        pl.DataFrame(
            {
                "sample_id": ids,
                "label": [1, 1, 1, 0, 2, 2],
                "decision": ["relabel", "drop", "keep", "keep", "relabel", "keep"],
                "new_label": [0, 1, 1, 0, 1, 2],
                "confidence": [0.9, 0.3, 0.8, 0.99, 0.7, 0.95],
                "reason": ["r"] * 6,
                "source": ["method"] * 5 + ["review"],
            }
        ),
        paths.decisions,
        "relabel",
        {"classes": CLASSES},
    )
    suspicion = {"sample_id": ids, "suspicion": [2.0, 5.0, 0.1, -1.0, 3.0, 0.0], "suspected": [True, True, False, False, True, False], "gap": [0.2, 0.1, 4.0, 0.3, 1.5, 2.5]}
    meta = {"method": "advrbd", "signals": {"suspicion": "consistency", "gap": "purification gap"}, "summary": {"suspected_targets": ["dog"]}, "models": []}
    write_manifest(pl.DataFrame(suspicion), paths.suspicion, "detect", meta)
    truth = {"sample_id": ids, "is_poison": [True, True, False, False, False, False], "original_label": [0] * 6, "attack": ["badnets"] * 6}
    if with_truth:
        write_manifest(pl.DataFrame(truth), paths.truth, "ingest", {"attack": "badnets"})


def test_inspect_summarises_per_class_and_ranks_flagged_by_suspicion(tmp_path):
    _write_review_data(tmp_path, with_truth=True)
    result = CliRunner().invoke(main, ["inspect", "--data", str(tmp_path), "--top", "2"])
    assert result.exit_code == 0, result.output
    out = result.output
    # The two most suspicious flagged samples, most suspicious first; s0 (2.0) is third.
    assert out.index("s1") < out.index("s4")
    assert "s0" not in out.split("Top 2")[1]
    assert "poison" in out
    assert "Method advrbd: suspected_targets dog" in out
    dog_row = next(line for line in out.splitlines() if "dog" in line and "│" in line)
    assert [c.strip() for c in dog_row.split("│")[1:-1]] == ["dog", "3", "1", "1", "1"]


def test_inspect_reads_manifests_without_torch_or_stage_code(tmp_path):
    _write_review_data(tmp_path, with_truth=True)
    code = (
        "import sys; from sanitizer.review import render_review; "
        f"render_review({str(tmp_path)!r}, 3, None); "
        "loaded = [m for m in sys.modules if m == 'torch' or m.startswith(('stages', 'sanitizer.methods.advrbd'))]; "
        "assert not loaded, loaded"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "Method advrbd" in result.stdout


def test_inspect_filters_by_class_and_rejects_unknown_class(tmp_path):
    _write_review_data(tmp_path, with_truth=False)
    result = CliRunner().invoke(main, ["inspect", "--data", str(tmp_path), "--class", "bird"])
    assert result.exit_code == 0
    flagged_part = result.output.split("Top 20")[1]
    assert "s4" in flagged_part and "s1" not in flagged_part and "s0" not in flagged_part
    assert "poison" not in result.output
    bad = CliRunner().invoke(main, ["inspect", "--data", str(tmp_path), "--class", "horse"])
    assert bad.exit_code == 1 and "unknown class 'horse'" in bad.output


def test_inspect_by_a_signal_ranks_every_decision_so_kept_faint_trigger_poisons_show(tmp_path):
    _write_review_data(tmp_path, with_truth=True)
    result = CliRunner().invoke(main, ["inspect", "--data", str(tmp_path), "--by", "gap", "--top", "3"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Top 3 samples by gap, any decision")[1]
    # Kept s2 (4.0) and s5 (2.5) lead, then relabelled s4 (1.5); s0 (0.2) is fourth.
    assert listed.index("s2") < listed.index("s5") < listed.index("s4")
    assert "s0" not in listed
    row = next(line for line in listed.splitlines() if "s2" in line)
    assert [c.strip() for c in row.split("│")[1:-1]][-2:] == ["4.00", "False"]
    bird = CliRunner().invoke(main, ["inspect", "--data", str(tmp_path), "--by", "gap", "--class", "bird"])
    listed = bird.output.split("Top 20 samples by gap")[1]
    assert listed.index("s5") < listed.index("s4") and "s2" not in listed
    # The signals come from the manifest: a name the method did not declare lists the ones it did.
    wrong = CliRunner().invoke(main, ["inspect", "--data", str(tmp_path), "--by", "consistency"])
    assert wrong.exit_code == 1 and "has no signal 'consistency'; its signals: suspicion, gap" in wrong.output


def test_inspect_without_pipeline_output_says_what_to_run(tmp_path):
    result = CliRunner().invoke(main, ["inspect", "--data", str(tmp_path)])
    assert result.exit_code == 1
    assert "missing manifest" in result.output and "decisions.parquet" in result.output


@needs_fashion_mnist
def test_gallery_writes_one_row_per_attack(tmp_path):
    from PIL import Image

    out = tmp_path / "gallery.png"
    result = CliRunner().invoke(main, ["gallery", "--params", str(REPO / "params.yaml"), "--out", str(out), "--attack", "badnets", "--attack", "sig"])
    assert result.exit_code == 0, result.output
    one = tmp_path / "one.png"
    CliRunner().invoke(main, ["gallery", "--params", str(REPO / "params.yaml"), "--out", str(one), "--attack", "badnets"])
    (w2, h2), (w1, h1) = Image.open(out).size, Image.open(one).size
    assert w2 == w1 and h2 > h1 > 0


def test_gallery_rejects_unknown_attack_and_writes_nothing(tmp_path):
    out = tmp_path / "gallery.png"
    result = CliRunner().invoke(main, ["gallery", "--params", str(REPO / "params.yaml"), "--out", str(out), "--attack", "nonsense"])
    assert result.exit_code == 1 and "nonsense" in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
