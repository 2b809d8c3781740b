"""The attack grid scores each row against the efficacy issue's bars (benchmarks/grid.py)."""

import subprocess
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from grid import ROWS, VARIANTS, run_dir, stale, verdict  # noqa: E402


def row(asr=0.001, oracle_asr=0.001, acc=0.91, oracle_acc=0.91, recall=0.999, fpr=0.01, dropped=0.005, no_defense_acc=0.91):
    return {
        "defended": {"acc": acc, "asr": asr},
        "oracle": {"acc": oracle_acc, "asr": oracle_asr},
        "no_defense": {"acc": no_defense_acc, "asr": None if asr is None else 0.99},
        "detection": {"recall": recall, "fpr": fpr},
        "decisions": {"dropped_fraction": dropped},
    }


def test_an_attack_row_needs_asr_acc_and_on_dirty_label_all_to_one_rows_recall_at_low_fpr():
    assert verdict(row(), ROWS["badnets"]) == "pass"
    assert verdict(row(asr=0.012), ROWS["badnets"]) == "**FAIL** (ASR)"  # above the 1 % floor
    assert verdict(row(asr=0.012, oracle_asr=0.009), ROWS["badnets"]) == "pass"  # within oracle + 0.5 pt
    assert verdict(row(acc=0.899), ROWS["badnets"]) == "**FAIL** (ACC)"
    assert verdict(row(recall=0.98, fpr=0.021), ROWS["tact"]) == "**FAIL** (recall, FPR)"
    # SIG is clean-label and all-to-all rows are not all-to-one: no detection bar.
    assert verdict(row(recall=0.1, fpr=0.3), ROWS["sig"]) == "pass"
    assert verdict(row(recall=0.1, fpr=0.3), ROWS["blend-all-to-all"]) == "pass"


def test_the_clean_row_bounds_what_is_dropped_and_the_accuracy_lost():
    clean = ROWS["clean (no attack)"]
    assert verdict(row(asr=None, oracle_asr=None, recall=None, fpr=0.03), clean) == "pass"
    assert verdict(row(asr=None, oracle_asr=None, dropped=0.0124, acc=0.9074, no_defense_acc=0.9133), clean) == "**FAIL** (dropped, ACC)"


def test_a_row_measured_under_another_params_yaml_is_marked_stale():
    params = {"identify": {"threshold": 1.25}}
    assert not stale({"benchmark": {"defaults": params}}, params)
    assert stale({"benchmark": {"defaults": {"identify": {"threshold": 1.5}}}}, params)
    assert stale({"benchmark": {}}, params)  # rows from before rows recorded their params.yaml


def test_every_variant_row_is_a_valid_attack_with_its_own_run_folder(tmp_path):
    from sanitizer.config import config

    for name, attack in VARIANTS.items():
        cfg = config("attack", {"attack": attack})  # a bad knob fails here, not minutes into a row
        assert f"-t{cfg.target}-r{round(cfg.rate * 100)}" in name or cfg.mode == "all-to-all"
    folders = {run_dir(tmp_path, "fmnist-variants", name) for name in VARIANTS}
    assert len(folders) == len(VARIANTS)
    assert verdict(row(recall=0.98), VARIANTS["badnets-t7-r1"]) == "**FAIL** (recall)"


def test_the_benchmarks_import_without_pytest():
    """A lent GPU's image holds torch but not pytest, and the grid runs there."""
    code = "import sys; sys.modules['pytest'] = None; sys.path[:0] = ['benchmarks']; import grid, run_pipeline"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
