"""benchmarks/gpu.sh, ready for the GPU machine: on this CPU it runs the same CIFAR-10 /
ResNet-18 / BadNets pipeline end to end on a small subset, and reports metrics and stage times."""

import json
import os
import subprocess
import sys

import pytest
import yaml

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


@needs_fashion_mnist
def test_a_row_started_from_an_earlier_run_reruns_only_what_its_change_touches(tmp_path):
    """grid.py --from: the earlier run's folder, this checkout's code and params over it."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from run_pipeline import run_scenario

    first = run_scenario("first", TINY_PARAMS, tmp_path, "test")
    changed = {**TINY_PARAMS, "relabel": {**TINY_PARAMS.get("relabel", {}), "epochs": 2}}
    again = run_scenario("again", changed, tmp_path, "test", start_from=tmp_path / "first")
    assert again["benchmark"]["runner"] == f"dvc repro over a copy of {tmp_path / 'first'}"
    assert again["benchmark"]["noop_ran_nothing"]
    lock = lambda run: yaml.safe_load((tmp_path / run / "dvc.lock").read_text())["stages"]["relabel"]["params"]["params.yaml"]["relabel"]  # noqa: E731
    assert (lock("first")["epochs"], lock("again")["epochs"]) == (1, 2)  # relabel ran under the new params
    # What precedes relabel was not re-run: the same models and manifests, byte for byte.
    for path in ("train_suspect/model.pt", "partition/partition.parquet", "detect/suspicion.parquet", "train_clean/model.pt"):
        assert (tmp_path / "again/data" / path).read_bytes() == (tmp_path / "first/data" / path).read_bytes(), path
    assert set(again["wall_seconds"]) == set(first["wall_seconds"])
