"""The full default pipeline on real data (minutes): the defense must remove each backdoor.
The exact figures are the benchmark's job (benchmarks/run_pipeline.py); these are floors."""

import json

import pytest

from conftest import make_project, needs_fashion_mnist, run

pytestmark = [pytest.mark.slow, needs_fashion_mnist]


@pytest.mark.parametrize("attack", ["badnets", "blend"])
def test_full_fashion_mnist_pipeline_removes_the_backdoor(tmp_path, attack):
    proj = make_project(tmp_path / attack, {"attack": {"name": attack}})
    run(["dvc", "repro"], proj)
    m = json.loads((proj / "data/evaluate/metrics.json").read_text())
    assert m["no_defense"]["asr"] > 0.9  # the attack worked
    assert m["defended"]["asr"] < 0.02
    assert m["defended"]["acc"] > m["oracle"]["acc"] - 0.02
    assert m["detection"]["recall"] > 0.97 and m["detection"]["fpr"] < 0.03
