"""The pipeline is declared once (sanitizer/layout.py): dvc.yaml, the stage modules, the CLI and
the runner agree with it, each stage sees only its own params sections, and a stage killed
mid-write leaves nothing of its own behind."""

import os
import signal
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner
from conftest import REPO, needs_fashion_mnist, write_params

from sanitizer.cli import main
from sanitizer.dvcfile import code_deps, imported_modules, render
from sanitizer.layout import ARTEFACTS, INPUTS, STAGE_NAMES, STAGES, stage
from sanitizer.pipeline import StageParams, run_stage


def test_dvc_yaml_is_generated_from_the_layout():
    assert (REPO / "dvc.yaml").read_text() == render(), "dvc.yaml is stale: run `python -m sanitizer.dvcfile`"


def test_every_declared_stage_has_its_module_and_nothing_else_does():
    modules = {p.stem for p in (REPO / "stages").glob("*.py")} - {"__init__"}
    assert modules == set(STAGE_NAMES)
    assert len(set(STAGE_NAMES)) == len(STAGE_NAMES)
    for st in STAGES:
        assert set(st.reads) <= set(ARTEFACTS) | set(INPUTS), st.name
        assert set(st.writes) <= set(ARTEFACTS), st.name


def test_every_artefact_read_is_written_by_an_earlier_stage():
    written: set[str] = set(INPUTS)
    for st in STAGES:
        assert set(st.reads) <= written, f"{st.name} reads {set(st.reads) - written} before any stage writes it"
        written |= set(st.writes)


def test_cli_offers_exactly_the_declared_stages():
    stage_arg = next(p for p in main.commands["run"].params if p.name == "stage")
    assert tuple(stage_arg.type.choices) == STAGE_NAMES
    assert CliRunner().invoke(main, ["run", "train_oracle", "--help"]).exit_code == 0


def test_imports_are_found_anywhere_in_a_file(tmp_path, monkeypatch):
    import sanitizer.dvcfile as dvcfile

    pkg = tmp_path / "sanitizer" / "sub"
    pkg.mkdir(parents=True)
    for f in (tmp_path / "sanitizer" / "__init__.py", pkg / "__init__.py", tmp_path / "sanitizer" / "a.py", tmp_path / "sanitizer" / "b.py"):
        f.write_text("")
    (pkg / "mod.py").write_text("import numpy\nfrom .. import a\n\ndef f():\n    from ..b import thing\n")
    monkeypatch.setattr(dvcfile, "ROOT", tmp_path)
    names = imported_modules(pkg / "mod.py")
    assert {"numpy", "sanitizer", "sanitizer.a", "sanitizer.b", "sanitizer.b.thing"} <= names
    deps = {p.relative_to(tmp_path).as_posix() for p in code_deps("sanitizer.sub.mod")}
    assert deps == {"sanitizer/__init__.py", "sanitizer/sub/__init__.py", "sanitizer/sub/mod.py", "sanitizer/a.py", "sanitizer/b.py"}


def test_a_stage_gets_only_the_sections_it_declares():
    cfg = StageParams(stage("identify"), {"identify": {"threshold": 2.0}, "train": {"epochs": 5}})
    assert cfg["identify"].threshold == 2.0
    with pytest.raises(KeyError, match="does not declare"):
        cfg["train"]


def test_every_section_is_validated_before_the_first_stage_works(tmp_path):
    params = tmp_path / "params.yaml"
    write_params(params, {"relabel": {"lr": -1.0}})
    from sanitizer.errors import SanitizerError

    with pytest.raises(SanitizerError, match=r"\[relabel\]\.lr"):
        run_stage("ingest", params, tmp_path / "data")
    assert not (tmp_path / "data").exists()


KILL_AFTER_FIRST_SHARD = """
import os, signal, sys
import numpy as np
write_header = np.lib.format.write_array_header_1_0
def header_then_die(f, *a, **k):
    write_header(f, *a, **k)  # the shard's file exists, its images not yet written
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
np.lib.format.write_array_header_1_0 = header_then_die
sys.argv = ["ingest"]
import runpy
runpy.run_module("stages.ingest", run_name="__main__")
"""


@needs_fashion_mnist
def test_a_stage_killed_mid_write_leaves_nothing_and_the_next_run_cleans_up(tmp_path):
    write_params(tmp_path / "params.yaml", {"data": {"limit": 300}})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ingest = [sys.executable, "-m", "stages.ingest"]
    subprocess.run(ingest, cwd=tmp_path, env=env, check=True, capture_output=True)
    first = (tmp_path / "data/ingest/store/samples.parquet").read_bytes()
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_SHARD], cwd=tmp_path, env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    left = sorted(p.name for p in (tmp_path / "data/ingest").iterdir())
    # The old outputs went before the stage started: nothing stale can pass for the new run's.
    assert not {"store", "truth.parquet", "asr", "timing.json"} & set(left)
    assert any(name.startswith(".store.") for name in left), left  # the kill left its temp folder
    subprocess.run(ingest, cwd=tmp_path, env=env, check=True, capture_output=True)
    assert sorted(p.name for p in (tmp_path / "data/ingest").iterdir()) == ["asr", "store", "timing.json", "truth.parquet"]
    assert (tmp_path / "data/ingest/store/samples.parquet").read_bytes() == first


def test_stage_params_in_dvc_yaml_are_the_declared_ones():
    """The stage that runs a method also lists every shipped method's own section, and the
    sections a method reads besides (PUD: partition's target tests)."""
    from sanitizer.dvcfile import method_sections

    own = method_sections()
    assert own == ["clustering", "confident", "loss", "partition", "pbe", "pud", "spectral"]
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert list(dvc) == list(STAGE_NAMES)
    for st in STAGES:
        assert dvc[st.name]["params"] == list(st.params) + (own if st.runs_method else [])


@needs_fashion_mnist
def test_ctrl_c_mid_write_says_so_and_leaves_nothing(tmp_path):
    import time

    write_params(tmp_path / "params.yaml", {})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "stages.ingest"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ingest = tmp_path / "data/ingest"
    deadline = time.monotonic() + 120
    while not (ingest.is_dir() and any(p.name.startswith(".") for p in ingest.iterdir())):  # writing has begun
        assert proc.poll() is None and time.monotonic() < deadline, "ingest ended before it could be interrupted"
        time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; it left none of its outputs" in err and "Traceback" not in err
    assert not list(ingest.iterdir())
