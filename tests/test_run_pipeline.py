"""benchmarks/run_pipeline.py's own plumbing: what each run it starts is given."""

import sys

from conftest import REPO


def test_seed_runs_keep_the_set_overrides_and_record_them(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import run_pipeline

    calls = []
    monkeypatch.setattr(run_pipeline, "run_scenario", lambda name, overrides, workdir, command: calls.append((name, overrides, command)) or {"benchmark": {}})
    monkeypatch.setattr(run_pipeline, "table", lambda rows: "")
    monkeypatch.setattr(run_pipeline, "write_seeds_table", lambda out: None)
    argv = ["run_pipeline.py", "--seeds", "2", "fmnist-tact-shirt", "--set", "relabel.epochs=1", "--workdir", str(tmp_path), "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    run_pipeline.main()
    assert [name for name, _, _ in calls] == ["fmnist-tact-shirt-seed0", "fmnist-tact-shirt-seed1"]
    assert [overrides["relabel"] for _, overrides, _ in calls] == [{"epochs": 1}] * 2
    assert [overrides["attack"]["seed"] for _, overrides, _ in calls] == [0, 1]
    assert all(overrides["attack"]["name"] == "tact" for _, overrides, _ in calls)
    assert all(command.endswith("--seeds 2 fmnist-tact-shirt --set relabel.epochs=1") for _, _, command in calls)
