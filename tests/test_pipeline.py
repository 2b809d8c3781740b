"""The real pipeline, end to end, on a 2,000-sample Fashion-MNIST subset: `dvc repro`, its
caching, determinism, and that defense stages never need the ground truth."""

import json
import shutil
import sys

import polars as pl
import pytest

from conftest import REPO, TINY_PARAMS, make_project, needs_fashion_mnist, run, write_params

pytestmark = needs_fashion_mnist

MANIFESTS = [
    "ingest/store/samples.parquet",
    "score/scores.parquet",
    "partition/partition.parquet",
    "enhance/rounds.parquet",
    "identify/identify.parquet",
    "relabel/decisions.parquet",
]
BENCHMARK_ONLY = ["truth.parquet", "asr"]  # what only evaluate may read
DEFENSE_STAGES = ["train_suspect", "score", "partition", "enhance", "identify", "train_clean", "relabel"]


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    proj = make_project(tmp_path_factory.mktemp("dvc") / "proj", TINY_PARAMS)
    first = run(["dvc", "repro"], proj)
    return proj, first.stdout


def test_repro_runs_every_stage_and_writes_metrics(project):
    proj, output = project
    assert set(ran_stages(output)) == {"ingest", "train_oracle", "evaluate", *DEFENSE_STAGES}
    metrics = json.loads((proj / "data/evaluate/metrics.json").read_text())
    for model in ("no_defense", "oracle", "defended"):
        assert 0 <= metrics[model]["acc"] <= 1 and 0 <= metrics[model]["asr"] <= 1
    for key in ("precision", "recall", "fpr", "auroc", "flagged"):
        assert key in metrics["detection"]
    # A backdoor 5 % strong is learnt even by a tiny run; the defended model must beat it.
    assert metrics["no_defense"]["asr"] > 0.5
    assert metrics["defended"]["asr"] < metrics["no_defense"]["asr"]
    assert set(metrics["wall_seconds"]) >= {"ingest", "score", "enhance", "total"}
    for plot in ("score_distribution.csv", "roc.csv", "rounds.csv"):
        assert (proj / "data/evaluate/plots" / plot).stat().st_size > 0


def test_second_repro_is_a_no_op(project):
    proj, _ = project
    assert ran_stages(run(["dvc", "repro"], proj).stdout) == []


def test_defense_is_byte_identical_and_independent_of_ground_truth(project, tmp_path):
    """A second run from scratch, by hand and with the ground truth (truth.parquet and the
    attacker's test set) hidden from every defense stage, writes the same manifests byte for byte."""
    proj, _ = project
    other = make_project(tmp_path / "other", TINY_PARAMS)
    run(["python", "-m", "stages.ingest"], other)
    for name in BENCHMARK_ONLY:
        shutil.move(other / "data/ingest" / name, tmp_path / name)
    for name in DEFENSE_STAGES:
        run(["python", "-m", "stages." + name], other)
    for manifest in MANIFESTS:
        assert (other / "data" / manifest).read_bytes() == (proj / "data" / manifest).read_bytes(), manifest


def test_diagnosis_counts_the_seed_and_each_round(project):
    """benchmarks/diagnose.py: round 1 trains C on the partition's seed; D_s only grows."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from diagnose import diagnose

    proj, _ = project
    d = diagnose(proj)
    seed = pl.read_parquet(proj / "data/partition/partition.parquet")["subset"] == "seed"
    poison = pl.read_parquet(proj / "data/ingest/truth.parquet")["is_poison"]
    first = d["rounds"][0]
    assert (first["ds_size"], first["ds_poisons"]) == (seed.sum(), (seed & poison).sum())
    assert [r["round"] for r in d["rounds"]] == [1, 2]
    assert d["rounds"][1]["ds_size"] > first["ds_size"] and d["rounds"][1]["ds_poisons"] >= first["ds_poisons"]
    assert d["poisons"] == poison.sum() and d["poison_median_loss"] < d["seed_loss_cut"]
    samples = pl.read_parquet(proj / "data/ingest/store/samples.parquet").filter(pl.col("split") == "train").sort("sample_id")
    per_class = (
        pl.DataFrame({"label": samples["label"], "seed": seed, "poison": poison})
        .filter(pl.col("seed"))
        .group_by("label")
        .agg(pl.len().alias("size"), pl.col("poison").sum().alias("poisons"))
        .with_columns((pl.col("poisons") / pl.col("size")).alias("share"))
        .sort("share", "label", descending=[True, False])
    )
    worst = per_class.row(0, named=True)
    assert worst["poisons"] > 0
    assert (d["seed_worst_class"]["size"], d["seed_worst_class"]["poisons"]) == (worst["size"], worst["poisons"])


def test_changing_partition_rate_reruns_only_downstream(project):
    proj, _ = project
    write_params(proj / "params.yaml", {**TINY_PARAMS, "partition": {"rate": 0.25}})
    assert ran_stages(run(["dvc", "repro"], proj).stdout) == ["partition", "enhance", "identify", "train_clean", "relabel", "evaluate"]


def test_bad_params_fail_clearly_and_leave_no_output(tmp_path):
    proj = make_project(tmp_path / "bad", {**TINY_PARAMS, "attack": {"target": 12}})
    result = run(["python", "-m", "stages.ingest"], proj, check=False)
    assert result.returncode != 0
    assert "target 12 is not a class index" in result.stderr
    assert not (proj / "data/ingest/store").exists()
    assert not (proj / "data/ingest/truth.parquet").exists()
