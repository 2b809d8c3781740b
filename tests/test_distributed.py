"""The score stage under torchrun: 2 CPU processes with gloo share the Eq. 3 batches, and the
merged scores.parquet is byte-identical to one process's."""

import shutil
import sys

from conftest import REPO, needs_fashion_mnist, run, write_params

pytestmark = needs_fashion_mnist

PARAMS = {"data": {"limit": 300}, "train": {"epochs": 1}, "score": {"robustness": True, "steps": 2, "batch_size": 64}, "purify": {"epochs": 1}}


def test_two_ranks_write_the_scores_one_process_writes(tmp_path):
    params = tmp_path / "params.yaml"
    write_params(params, PARAMS)
    one = tmp_path / "one"
    for name in ("ingest", "train_suspect"):
        run([sys.executable, "-m", "stages." + name, "--params", str(params), "--data", str(one)], REPO)
    two = tmp_path / "two"
    shutil.copytree(one, two)
    run([sys.executable, "-m", "stages.score", "--params", str(params), "--data", str(one)], REPO)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    result = run([*torchrun, "-m", "stages.score", "--params", str(params), "--data", str(two)], REPO)
    # 5 batches of 64: rank 0 takes batches 0, 2, 4; rank 1 takes 1 and 3.
    assert "rank 0 of 2: 172 of 300 samples" in result.stderr and "rank 1 of 2: 128 of 300 samples" in result.stderr, result.stderr
    assert (two / "score/scores.parquet").read_bytes() == (one / "score/scores.parquet").read_bytes()


def test_a_stage_that_cannot_share_its_work_says_so_under_torchrun(tmp_path):
    params = tmp_path / "params.yaml"
    write_params(params, PARAMS)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    result = run([*torchrun, "-m", "stages.train_suspect", "--params", str(params), "--data", str(tmp_path / "data")], REPO, check=False)
    assert result.returncode != 0
    assert "stage train_suspect does not run under torchrun yet (only score does): run it as one process" in result.stdout + result.stderr
