"""benchmarks/gpu.sh, ready for the GPU machine: on this CPU it runs the same CIFAR-10 /
ResNet-18 / BadNets pipeline end to end on a small subset, and reports metrics and stage times."""

import json
import os
import subprocess
import sys

import pytest

from conftest import CIFAR10, REPO, TINY_PARAMS, needs_cifar10, needs_fashion_mnist

from sanitizer.layout import TIMED_STAGES

pytestmark = pytest.mark.slow  # ResNet-18 on two CPU cores: about 3 minutes idle, 5 beside other work

SMOKE = ["data.limit=200", "train.epochs=1", "score.steps=1", "enhance.rounds=1", "enhance.clean_epochs=1", "relabel.epochs=1", "evaluate.robust_samples=40"]


@needs_cifar10
def test_the_gpu_script_runs_end_to_end_on_a_cpu_subset(tmp_path):
    sets = [a for s in SMOKE for a in ("--set", s)]
    committed = (REPO / "benchmarks/results/cifar10-badnets-gpu.json").read_bytes()
    env = {**os.environ, "OUT": str(tmp_path / "out")}
    result = subprocess.run(["bash", "benchmarks/gpu.sh", "--workdir", str(tmp_path / "runs"), *sets], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CPU only (a smoke run, not the benchmark)" in result.stdout
    metrics = json.loads((tmp_path / "out/cifar10-badnets-gpu.json").read_text())
    assert metrics["benchmark"]["overrides"]["model"] == {"arch": "resnet18"}
    assert metrics["benchmark"]["overrides"]["data"] == {"source": "cifar10", "path": str(CIFAR10), "limit": 200}
    assert set(TIMED_STAGES) <= set(metrics["wall_seconds"])
    assert 0 <= metrics["no_defense"]["acc"] <= 1 and 0 <= metrics["defended"]["asr"] <= 1
    assert "| **dvc repro (all stages, evaluate included)** |" in result.stdout
    # A smoke run leaves the committed GPU figures alone.
    assert (REPO / "benchmarks/results/cifar10-badnets-gpu.json").read_bytes() == committed


@needs_fashion_mnist
def test_without_dvc_the_stages_run_in_dvc_yaml_order_and_report_every_stage(tmp_path):
    """The GPU machine has no DVC: run_pipeline then runs dvc.yaml's commands one by one."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from run_pipeline import run_scenario

    metrics = run_scenario("nodvc", TINY_PARAMS, tmp_path, "test", dvc=False)
    assert not (tmp_path / "nodvc/.dvc").exists()
    assert metrics["benchmark"]["runner"] == "dvc.yaml's commands in order, without DVC"
    assert metrics["benchmark"]["noop_repro_seconds"] is None
    assert set(TIMED_STAGES) <= set(metrics["wall_seconds"])
