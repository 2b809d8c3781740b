"""The real pipeline, end to end, on a 2,000-sample Fashion-MNIST subset: `dvc repro`, its
caching, determinism, and that defense stages never need the ground truth."""

import csv
import io
import json
import shutil
import sys

import polars as pl
import pytest
import yaml
from PIL import Image

from conftest import REPO, TINY_PARAMS, make_project, needs_browser, needs_fashion_mnist, run, write_params

pytestmark = needs_fashion_mnist

from sanitizer.layout import ARTEFACTS, STAGES
from sanitizer.manifest import meta_value

BENCHMARK_ONLY = ["truth", "asr"]  # ground truth: what only evaluate (and the oracle) may read
MANIFESTS = ["ingest/store/samples.parquet"] + [p for a, p in ARTEFACTS.items() if p.endswith(".parquet") and a not in BENCHMARK_ONLY]
# Every stage after ingest that declares no ground truth among what it reads.
DEFENSE_STAGES = [s.name for s in STAGES[1:] if not set(BENCHMARK_ONLY) & set(s.reads)]


def ran_stages(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    proj = make_project(tmp_path_factory.mktemp("dvc") / "proj", TINY_PARAMS)
    first = run(["dvc", "repro"], proj)
    return proj, first.stdout


def test_the_defense_stages_are_the_eight_that_make_decisions():
    assert DEFENSE_STAGES == ["train_suspect", "score", "partition", "enhance", "identify", "detect", "train_clean", "relabel"]


def test_repro_runs_every_stage_and_writes_metrics(project):
    proj, output = project
    assert set(ran_stages(output)) == {"ingest", "train_oracle", "evaluate", *DEFENSE_STAGES}
    metrics = json.loads((proj / "data/evaluate/metrics.json").read_text())
    for model in ("no_defense", "oracle", "enhanced", "clean", "defended"):
        assert 0 <= metrics[model]["acc"] <= 1 and 0 <= metrics[model]["asr"] <= 1 and 0 <= metrics[model]["robust_acc"] <= 1
    for key in ("precision", "recall", "fpr", "auroc", "flagged"):
        assert key in metrics["detection"]
    # AdvrBD's signals, each beside the loss baseline on the same suspect; Eq. 3's R only with
    # score.robustness, which the default leaves off (its column is null).
    assert set(metrics["detection"]["auroc"]) == {"suspicion", "fit", "gap", "loss_baseline"}
    scores = pl.read_parquet(proj / "data/score/scores.parquet")
    assert scores["score"].null_count() == scores.height > 0 and scores["loss"].null_count() == 0
    assert metrics["method"]["name"] == "advrbd"
    # A backdoor 5 % strong is learnt even by a tiny run; the defended model must beat it.
    assert metrics["no_defense"]["asr"] > 0.5
    assert metrics["defended"]["asr"] < metrics["no_defense"]["asr"]
    assert set(metrics["wall_seconds"]) >= {"ingest", "score", "enhance", "total"}
    # each stage ran as its own process (dvc repro), so each records its own peak memory
    assert set(metrics["peak_rss_mib"]) == set(metrics["wall_seconds"]) - {"total"}
    assert all(100 < mib < 8192 for mib in metrics["peak_rss_mib"].values())
    for plot in ("score_distribution.csv", "roc.csv"):
        assert (proj / "data/evaluate/plots" / plot).stat().st_size > 0
    for plot in ("score_distribution.png", "roc.png"):
        with Image.open(proj / "data/evaluate/plots" / plot) as image:
            assert image.format == "PNG" and image.size == (600, 400)


def test_relabel_keeps_the_suspects_the_clean_model_gives_their_label(project):
    """The clean model never trains on a suspect; relabel keeps one exactly when that model
    rates no other class e^evidence times above its given label and the blend check finds no
    trigger in it, and drops the others."""
    import numpy as np
    import torch

    from sanitizer.config import config
    from sanitizer.layout import Paths
    from sanitizer.manifest import read_manifest
    from sanitizer.training import TrainSet, predict

    proj, _ = project
    paths = Paths(proj / "data")
    suspected = read_manifest(paths.suspicion)["suspected"].to_numpy()
    decisions = read_manifest(paths.decisions)
    decision, reason = decisions["decision"].to_numpy(), decisions["reason"].to_numpy().astype(str)
    data = TrainSet(paths.store, "small_cnn")
    p = torch.softmax(predict(data.load(paths.clean), data.x).float(), 1).numpy()
    labels = data.split.labels
    ratio = np.log(p.max(1)) - np.log(np.maximum(p[np.arange(len(labels)), labels], 1e-30))
    evidence = config("relabel", yaml.safe_load((proj / "params.yaml").read_text())).evidence
    trigger = np.char.find(reason, "a trigger") >= 0
    assert not (trigger & ~suspected).any() and (ratio[trigger] <= evidence).all()
    expected = suspected & (ratio <= evidence) & ~trigger
    assert expected.any() and (suspected & ~expected).any()
    np.testing.assert_array_equal(suspected & (decision == "keep"), expected)
    assert (decision[suspected & ~expected] == "drop").all()


def test_second_repro_is_a_no_op(project):
    proj, _ = project
    assert ran_stages(run(["dvc", "repro"], proj).stdout) == []


@needs_browser
def test_reviews_from_the_cli_and_the_page_rerun_only_the_stages_after_them_and_win(project, page, tmp_path):
    """The loop a reviewer lives in. `sanitize review` drops a sample the method kept; in a real
    browser the review page is filtered to a class, its most suspicious flagged sample kept,
    and the choice downloaded and applied. `dvc repro` re-runs train_clean, relabel and
    evaluate only, and the decisions carry the person's word. Clearing the reviews brings the
    method's decisions back from DVC's run cache."""
    proj, _ = project
    before = (proj / "data/relabel/decisions.parquet").read_bytes()
    detection = json.loads((proj / "data/evaluate/metrics.json").read_text())["detection"]
    decisions = pl.read_parquet(proj / "data/relabel/decisions.parquet")
    assert set(decisions["source"]) == {"method"}
    kept = decisions.filter(pl.col("reason") == "not suspected")["sample_id"][0]
    run(["sanitize", "review", kept, "--drop", "--who", "ana", "--note", "odd patch"], proj)

    html = tmp_path / "review.html"
    run(["sanitize", "inspect", "--html", str(html)], proj)
    suspicion = pl.read_parquet(proj / "data/detect/suspicion.parquet").select("sample_id", "suspicion")
    flagged = decisions.filter(pl.col("decision") != "keep").join(suspicion, on="sample_id")
    label = flagged["label"].mode().sort()[0]
    target = flagged.filter(pl.col("label") == label).sort(["suspicion", "sample_id"], descending=[True, False])["sample_id"][0]
    page.goto(html.as_uri())
    page.select_option("#f-class", label=meta_value(proj / "data/relabel/decisions.parquet", "classes")[label])
    first = page.locator(".card").first
    assert first.locator(".id").inner_text() == target
    first.click()
    page.fill("#d-note", "a clean one")
    page.click("button[data-decision=keep]")
    with page.expect_download() as download:
        page.click("#export")
    download.value.save_as(tmp_path / "choices.csv")
    run(["sanitize", "review", "--apply", str(tmp_path / "choices.csv")], proj)

    assert ran_stages(run(["dvc", "repro"], proj).stdout) == ["train_clean", "relabel", "evaluate"]
    after = pl.read_parquet(proj / "data/relabel/decisions.parquet").filter(pl.col("source") == "review")
    assert {r["sample_id"]: (r["decision"], r["reason"]) for r in after.iter_rows(named=True)} == {
        kept: ("drop", "reviewed by ana: odd patch"),
        target: ("keep", "reviewed: a clean one"),
    }
    metrics = json.loads((proj / "data/evaluate/metrics.json").read_text())
    assert metrics["decisions"]["reviewed"] == 2
    # Detection quality stays the method's own, whatever a person overruled: what it suspected
    # is upstream of the reviews, and its flags are its own decisions. (Those can move: the
    # clean model, retrained on what the person kept, judges the suspects again.)
    assert metrics["detection"]["suspected_by_method"] == detection["suspected_by_method"]
    now = pl.read_parquet(proj / "data/relabel/decisions.parquet")
    assert metrics["detection"]["flagged"] == (now["method_decision"] != "keep").sum()
    assert now.filter(pl.col("sample_id") == kept).select("decision", "method_decision").row(0) == ("drop", "keep")
    run(["sanitize", "review", kept, target, "--clear"], proj)
    assert ran_stages(run(["dvc", "repro"], proj).stdout) == []
    assert (proj / "data/relabel/decisions.parquet").read_bytes() == before


def test_a_teammate_pulls_the_decisions_instead_of_recomputing_them(project, tmp_path):
    """Push a finished run to a DVC remote; a fresh clone pulls it and finds nothing to re-run:
    the same decisions, byte for byte, with no stage run."""
    proj, _ = project
    remote = tmp_path / "remote"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    run(["dvc", "remote", "add", "-d", "team", str(remote)], proj)
    run(["git", "add", "-A"], proj)
    run([*git, "commit", "-q", "-m", "pipeline run"], proj)
    run(["dvc", "push", "-q"], proj)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(proj), str(clone)], tmp_path)
    assert not (clone / "data/relabel/decisions.parquet").exists()
    run(["dvc", "pull", "-q"], clone)
    assert "up to date" in run(["dvc", "status"], clone).stdout
    assert ran_stages(run(["dvc", "repro"], clone).stdout) == []
    for manifest in MANIFESTS:
        assert (clone / "data" / manifest).read_bytes() == (proj / "data" / manifest).read_bytes(), manifest


def test_an_experiment_sets_a_param_and_its_metrics_compare_with_the_commit(project):
    """`dvc exp run -S` changes one param and re-runs what it touches; metrics.json is tracked by
    git (not cached), so `dvc metrics diff` and `dvc exp show` compare the run with HEAD's."""
    proj, _ = project
    for key, value in (("user.name", "t"), ("user.email", "t@example.invalid")):
        run(["git", "config", key, value], proj)
    run(["git", "add", "-A"], proj)
    run(["git", "commit", "-q", "--allow-empty", "-m", "baseline"], proj)
    assert "data/evaluate/metrics.json" in run(["git", "ls-files"], proj).stdout
    committed = json.loads((proj / "data/evaluate/metrics.json").read_text())
    try:
        exp = run(["dvc", "exp", "run", "-S", "relabel.evidence=2.0"], proj)
        assert ran_stages(exp.stdout) == ["relabel", "evaluate"]
        # --all: a re-run stage can take the same time to the hundredth of a second, and then a
        # plain diff leaves it out.
        diff = json.loads(run(["dvc", "metrics", "diff", "--all", "--json"], proj).stdout)
        relabel_time = diff["data/evaluate/metrics.json"]["wall_seconds.relabel"]
        assert relabel_time["old"] == committed["wall_seconds"]["relabel"]
        assert relabel_time["new"] == json.loads((proj / "data/evaluate/metrics.json").read_text())["wall_seconds"]["relabel"]
        shown = list(csv.DictReader(io.StringIO(run(["dvc", "exp", "show", "--csv"], proj).stdout)))
        # The baseline commit and the experiment, each with its param and its own metrics.
        by_param = {row["relabel.evidence"]: row for row in shown}
        assert {"1.25", "2.0"} <= set(by_param), shown
        assert all(0 <= float(by_param[v]["defended.acc"]) <= 1 for v in ("1.25", "2.0"))
    finally:
        # Back to the commit, whatever failed above, so the tests after this one see it; DVC's
        # cache restores its outputs, with no stage run.
        run(["git", "checkout", "--", "params.yaml", "dvc.lock", "data/evaluate/metrics.json"], proj)
        run(["dvc", "checkout", "-q"], proj)
    assert ran_stages(run(["dvc", "repro"], proj).stdout) == []


# Runs a stage as `python -m stages.<name>` does, then records every module it loaded.
TRACED = """
import atexit, json, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
runpy.run_module("stages." + sys.argv.pop(1), run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def by_hand(tmp_path_factory):
    """The pipeline run again from scratch stage by stage, the ground truth (truth.parquet and
    the attacker's test set) hidden from every defense stage; the modules each stage loaded."""
    tmp = tmp_path_factory.mktemp("by_hand")
    other = make_project(tmp / "other", TINY_PARAMS)
    loaded = {}

    def stage(name):
        run([sys.executable, "-c", TRACED, str(tmp / f"{name}.json"), name], other)
        loaded[name] = json.loads((tmp / f"{name}.json").read_text())

    stage("ingest")
    for name in BENCHMARK_ONLY:
        shutil.move(other / "data" / ARTEFACTS[name], tmp / name)
    for name in DEFENSE_STAGES:
        stage(name)
    manifests = {m: (other / "data" / m).read_bytes() for m in MANIFESTS}
    for name in BENCHMARK_ONLY:
        shutil.move(tmp / name, other / "data" / ARTEFACTS[name])
    stage("train_oracle")
    stage("evaluate")
    return manifests, loaded


def test_defense_is_byte_identical_and_independent_of_ground_truth(project, by_hand):
    """A second run from scratch, by hand and without the ground truth, writes the same
    manifests byte for byte."""
    proj, _ = project
    manifests, _ = by_hand
    for manifest in MANIFESTS:
        assert manifests[manifest] == (proj / "data" / manifest).read_bytes(), manifest


def test_every_project_module_a_stage_runs_is_among_its_dvc_deps(by_hand):
    """So a change to code a stage runs always re-runs it (dvc.yaml's deps are derived from
    the imports; this checks them against what a real run loaded)."""
    import yaml

    from sanitizer.dvcfile import module_file

    _, loaded = by_hand
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert set(loaded) == set(dvc)
    for name, modules in loaded.items():
        files = {module_file(m) for m in modules} - {None}
        ran = {f.relative_to(REPO).as_posix() for f in files}
        assert ran and ran <= set(dvc[name]["deps"]), f"{name} runs {sorted(ran - set(dvc[name]['deps']))}, not in its deps"


def test_cover_spread_trains_on_the_truly_clean_the_kept_and_those_less_the_covers(project):
    """benchmarks/cover_spread.py's sets of samples, from the truth and the run's decisions."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from cover_spread import sets

    from sanitizer.layout import Paths

    proj, _ = project
    truth = pl.read_parquet(proj / "data/ingest/truth.parquet").sort("sample_id")
    dropped = (pl.read_parquet(proj / "data/relabel/decisions.parquet").sort("sample_id")["decision"] == "drop").to_numpy()
    poison, cover = truth["is_poison"].to_numpy(), truth["is_cover"].to_numpy()
    got = sets(Paths(proj / "data"), truth["sample_id"].to_numpy())
    assert list(got) == ["truly clean (oracle)", "less the covers the run dropped", "less every cover", "what the run kept"]
    assert (got["truly clean (oracle)"] == ~poison).all() and (got["what the run kept"] == ~dropped).all()
    assert (got["less the covers the run dropped"] == (~poison & ~(cover & dropped))).all()
    assert (got["less every cover"] == (~poison & ~cover)).all() and dropped.any() and poison.any()


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
    loss = pl.read_parquet(proj / "data/score/scores.parquet").sort("sample_id")["loss"]
    assert d["poisons"] == poison.sum() and d["seed_loss_cut"] == loss.filter(seed).min()
    assert d["poison_median_loss"] == pytest.approx(loss.filter(poison).median())
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
    assert (d["seed_worst_class"]["size"], d["seed_worst_class"]["poisons"]) == (worst["size"], worst["poisons"])


def test_identify_scoped_to_targets_flags_by_consistency_only_in_them(project, tmp_path):
    """identify.scope `targets`: outside the classes partition suspects, a sample is suspected
    only when barred; the project's own run (scope `all`) flags a superset. Partition's
    manifest is rewritten to name Trouser, which the tiny suspect is too weak to single out."""
    from sanitizer.manifest import write_manifest

    proj, _ = project
    scoped = tmp_path / "scoped"
    shutil.copytree(proj, scoped, ignore=shutil.ignore_patterns(".git", ".dvc"))
    partition = pl.read_parquet(proj / "data/partition/partition.parquet")
    write_manifest(partition, scoped / "data/partition/partition.parquet", "partition", {"suspected_targets": ["Trouser"], "suspected_by": {"clusters": ["Trouser"]}})
    write_params(scoped / "params.yaml", {**TINY_PARAMS, "identify": {"scope": "targets"}})
    run(["python", "-m", "stages.identify"], scoped)
    labels = pl.read_parquet(proj / "data/ingest/store/samples.parquet").filter(pl.col("split") == "train").select("sample_id", "label")
    both = (
        pl.read_parquet(scoped / "data/identify/identify.parquet")
        .join(pl.read_parquet(proj / "data/identify/identify.parquet").select("sample_id", everywhere="suspected", c="consistency"), on="sample_id")
        .join(partition.select("sample_id", "subset"), on="sample_id")
        .join(labels, on="sample_id")
    )
    assert (both["consistency"] == both["c"]).all() and both["everywhere"].any()
    trouser = pl.col("label") == meta_value(proj / "data/ingest/store/samples.parquet", "classes").index("Trouser")
    barred = pl.col("subset") == "barred"
    expected = pl.col("everywhere") & (trouser | barred)
    assert both.filter(pl.col("suspected") != expected).is_empty()
    assert both.filter(pl.col("suspected")).height > 0 and both.filter(pl.col("everywhere") & ~pl.col("suspected")).height > 0


def test_changing_partition_rate_reruns_only_downstream(project):
    proj, _ = project
    write_params(proj / "params.yaml", {**TINY_PARAMS, "partition": {"rate": 0.25}})
    assert ran_stages(run(["dvc", "repro"], proj).stdout) == ["partition", "enhance", "identify", "detect", "train_clean", "relabel", "evaluate"]


def test_bad_params_fail_clearly_and_leave_no_output(tmp_path):
    proj = make_project(tmp_path / "bad", {**TINY_PARAMS, "attack": {"target": 12}})
    result = run(["python", "-m", "stages.ingest"], proj, check=False)
    assert result.returncode != 0
    assert "target 12 is not a class index" in result.stderr
    assert not (proj / "data/ingest/store").exists()
    assert not (proj / "data/ingest/truth.parquet").exists()


def test_another_method_runs_through_dvc_and_switching_back_is_cached(project):
    """`method.name: pbe`: AdvrBD's own stages only leave placeholders, detect runs PBE, and the
    stages after it take its decisions; switching back restores AdvrBD's results from DVC's
    run cache instead of recomputing them."""
    proj, _ = project
    pbe = {**TINY_PARAMS, "method": {"name": "pbe"}, "pbe": {"epochs": 1, "schedule": [0.3]}}
    write_params(proj / "params.yaml", pbe)
    ran = ran_stages(run(["dvc", "repro"], proj).stdout)
    assert ran == ["score", "partition", "enhance", "identify", "detect", "train_clean", "relabel", "evaluate"]
    assert (proj / "data/score/scores.parquet").read_text().startswith("not computed: stage score belongs to method advrbd")
    metrics = json.loads((proj / "data/evaluate/metrics.json").read_text())
    assert metrics["method"]["name"] == "pbe" and 0 <= metrics["purified"]["acc"] <= 1
    assert set(metrics["detection"]["auroc"]) == {"suspicion", "loss_baseline"}
    write_params(proj / "params.yaml", TINY_PARAMS)
    back = run(["dvc", "repro"], proj).stdout
    assert ran_stages(back) == [], back
    assert json.loads((proj / "data/evaluate/metrics.json").read_text())["method"]["name"] == "advrbd"
