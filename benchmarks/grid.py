"""The attack grid: every attack through the same AdvrBD pipeline config (params.yaml), plus a
clean-data row, one fresh `dvc repro` per row. Writes benchmarks/results/grid-<dataset>.md and
its JSON twin (per row the keys of data/evaluate/metrics.json, plus command, config, machine).

    python benchmarks/grid.py fmnist                      # the full Fashion-MNIST grid
    python benchmarks/grid.py cifar10 --rows badnets      # CIFAR-10, all 50k, fast_cnn on a CPU
    python benchmarks/grid.py cifar10-fast-cnn --without-dvc --workdir /tmp/runs   # the same on a lent GPU
    python benchmarks/grid.py cifar10-cpu-reduced         # CIFAR-10, reduced for a CPU (small_cnn)
    python benchmarks/grid.py fmnist --rows sig wanet     # re-run some rows, keep the others
    python benchmarks/grid.py fmnist --from /tmp/runs     # only the stages a change touches, over an earlier grid's runs
    python benchmarks/grid.py fmnist-converged --rows sig physical_ba input_aware  # 10 epochs, full strength
    python benchmarks/grid.py fmnist-variants             # other targets, rates and triggers (VARIANTS)
    python benchmarks/grid.py fmnist --methods advrbd pbe pud   # the method axis: every row x method,
                                                          # to benchmarks/results/grid-fmnist-methods.md
    python benchmarks/grid.py fmnist --render             # rescore grid-fmnist{,-methods}.md from their JSON

Rows finish one at a time and are saved as they finish, so an interrupted grid resumes with
--rows. A grid's overrides change only the dataset (and, for the reduced CPU grid, its size)
or switch on one named option for every row; the attack knobs are each attack's paper
defaults."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from run_pipeline import CIFAR_DATA, REPO, auroc, machine, markdown_table, model_cells, pct, run_scenario
from sanitizer.attacks import ATTACKS
from sanitizer.layout import STAGES

DATASETS = {
    "fmnist": ({}, "Fashion-MNIST, all 60,000 train images, small_cnn, params.yaml as committed"),
    # Issue 17 item 4: the same, on attacks with other targets, rates and triggers (VARIANTS).
    "fmnist-variants": ({}, "Fashion-MNIST, all 60,000 train images, small_cnn, params.yaml as committed; attacks with other targets, rates and triggers than the papers'"),
    # Issue 17 item 5: are SIG, PhysicalBA and Input-aware weak only because small_cnn's recipe
    # trains 3 epochs? These rows train every model as a user would (they stay weak: benchmarks/RESULTS.md).
    "fmnist-converged": (
        {"train": {"epochs": 10}},
        "Fashion-MNIST as `fmnist`, every model trained 10 epochs instead of small_cnn's 3 (the attacks at full strength)",
    ),
    # model.arch auto: fast_cnn with its recipe on a CPU (5-9 min a training of 50k images),
    # ResNet-18 on a GPU. A row took 24 min on two cores with clean_epochs 2, about 29 with
    # the default 7: run it in chunks with --rows.
    "cifar10": (
        {"data": CIFAR_DATA},
        "CIFAR-10 (shared JPEG Parquet), all 50,000 train images, model.arch auto (fast_cnn on a CPU), params.yaml as committed",
    ),
    # The same CPU configuration with its model named, so that a lent GPU can run it too
    # (auto would pick ResNet-18 there): fast_cnn and its recipe, all 50k.
    "cifar10-fast-cnn": (
        {"data": CIFAR_DATA, "model": {"arch": "fast_cnn"}},
        "CIFAR-10 (shared JPEG Parquet), all 50,000 train images, fast_cnn (the CPU configuration, on whatever device runs it), params.yaml as committed",
    ),
    # ResNet-18 on two CPU cores is ~10 min per epoch of 10k images: the CPU grid uses
    # small_cnn on a stratified 5,000-image subset (1,000 test) and 8 training epochs.
    "cifar10-cpu-reduced": (
        {
            "data": {**CIFAR_DATA, "limit": 5000},
            "model": {"arch": "small_cnn"},
            "train": {"epochs": 8},
        },
        "CIFAR-10 (shared JPEG Parquet), REDUCED for a CPU: 5,000 train / 1,000 test images, small_cnn, 8 epochs",
    ),
}
ROWS = {
    "badnets": {"name": "badnets"},
    "badnets-all-to-all": {"name": "badnets", "mode": "all-to-all"},
    "blend": {"name": "blend"},
    "blend-all-to-all": {"name": "blend", "mode": "all-to-all"},
    "sig": {"name": "sig"},
    "wanet": {"name": "wanet"},
    "physical_ba": {"name": "physical_ba"},
    "tact": {"name": "tact"},
    "adaptive_blend": {"name": "adaptive_blend"},
    "adaptive_patch": {"name": "adaptive_patch"},
    "input_aware": {"name": "input_aware"},
    "clean (no attack)": {"name": "none"},
}
# Issue 17 item 4: the grid fixes target 1, rate 5 % and each paper's trigger; an attacker picks
# others. Same data and params.yaml as `fmnist`; a row is named attack-t<target>-r<rate %> and
# any knob it changes (every other knob at the paper's default).
VARIANTS = {
    "badnets-t7-r1": {"name": "badnets", "target": 7, "rate": 0.01},
    "badnets-t3-r10-5px-top-left": {"name": "badnets", "target": 3, "rate": 0.10, "trigger_size": 5, "position": "top-left"},
    "badnets-t9-r5-4px-center": {"name": "badnets", "target": 9, "trigger_size": 4, "position": "center"},
    "blend-t0-r2-alpha0.1": {"name": "blend", "target": 0, "rate": 0.02, "alpha": 0.1},
    "wanet-t9-r10": {"name": "wanet", "target": 9, "rate": 0.10},
    "tact-t6-r3-source2": {"name": "tact", "target": 6, "rate": 0.03, "source": 2},
    "adaptive_blend-t8-r3": {"name": "adaptive_blend", "target": 8, "rate": 0.03},
    "adaptive_patch-t5-r10": {"name": "adaptive_patch", "target": 5, "rate": 0.10},
    "physical_ba-t4-r2": {"name": "physical_ba", "target": 4, "rate": 0.02},
    "badnets-all-to-all-r2": {"name": "badnets", "mode": "all-to-all", "rate": 0.02},
    "badnets-t6-r3-2px-top-right": {"name": "badnets", "target": 6, "rate": 0.03, "trigger_size": 2, "position": "top-right"},
    "wanet-t3-r2": {"name": "wanet", "target": 3, "rate": 0.02},
}
ROW_SETS = {"fmnist-variants": VARIANTS}


def rows_of(dataset: str) -> dict[str, dict]:
    """The attack rows of a grid: its own set, or the papers' rows."""
    return ROW_SETS.get(dataset, ROWS)

# The efficacy issue's bars (issue 17), one configuration for every row.
ASR_FLOOR, ASR_OVER_ORACLE, ACC_DROP_BAR = 0.01, 0.005, 0.01
CLEAN_DROP_BAR, CLEAN_ACC_BAR = 0.01, 0.005
RECALL_BAR, FPR_BAR = 0.99, 0.02
STRONG_ATTACK = 0.90
BARS = (
    f"defended ASR <= max({ASR_FLOOR:.0%}, oracle ASR + {ASR_OVER_ORACLE * 100:g} pt) and ACC >= oracle - {ACC_DROP_BAR * 100:g} pt; "
    f"clean row: <= {CLEAN_DROP_BAR:.0%} of samples dropped and ACC >= no-defense - {CLEAN_ACC_BAR * 100:g} pt; "
    f"all-to-one dirty-label rows also detection recall >= {RECALL_BAR:.0%} at FPR <= {FPR_BAR:.0%}"
)


# The methods' papers' own figures (PBE, CIFAR-10, ResNet-18: ACC / ASR, percent), for the method grid.
PAPER = {"pbe": {"badnets": "94.20 / 1.09", "blend": "93.98 / 0.93", "sig": "93.35 / 1.39", "input_aware": "93.01 / 1.12", "wanet": "94.32 / 0.46"}}


def run_dir(workdir: Path, dataset: str, row: str, method: str | None = None) -> Path:
    return workdir / f"grid-{dataset}-{method + '-' if method else ''}{row.split()[0]}"


def verdict(m: dict, attack: dict) -> str:
    """The bars (BARS) for one row; `attack` is its ROWS entry."""
    defended, oracle, d = m["defended"], m["oracle"], m["detection"]
    if attack["name"] == "none":
        checks = {
            "dropped": m["decisions"]["dropped_fraction"] <= CLEAN_DROP_BAR,
            "ACC": defended["acc"] >= m["no_defense"]["acc"] - CLEAN_ACC_BAR,
        }
    else:
        checks = {
            "ASR": defended["asr"] <= max(ASR_FLOOR, oracle["asr"] + ASR_OVER_ORACLE),
            "ACC": defended["acc"] >= oracle["acc"] - ACC_DROP_BAR,
        }
        if attack.get("mode", "all-to-one") == "all-to-one" and not ATTACKS.get(attack["name"]).clean_label:
            checks["recall"] = (d.get("recall") or 0.0) >= RECALL_BAR
            checks["FPR"] = d.get("fpr") is not None and d["fpr"] <= FPR_BAR
    failed = [name for name, ok in checks.items() if not ok]
    return "pass" if not failed else f"**FAIL** ({', '.join(failed)})"


def stale(m: dict, config: dict) -> bool:
    """A row measured under another params.yaml than the grid's (or before rows recorded theirs)."""
    return m["benchmark"].get("defaults") != config


def marked(name: str, m: dict, config: dict) -> str:
    return name + (" †" if stale(m, config) else "")


def table(rows: dict[str, dict], config: dict, attacks: dict[str, dict] = ROWS) -> str:
    header = ["attack", "no-defense ACC / ASR", "oracle ACC / ASR", "AdvrBD ACC / ASR", "precision", "recall", "FPR"]
    header += ["AUROC AdvrBD", "AUROC loss baseline", "AUROC Eq. 3 R", "AUROC purification gap", "wall s", "bars"]
    lines = []
    for name, m in rows.items():
        cells = model_cells(m)
        if m["no_defense"]["asr"] is not None and m["no_defense"]["asr"] < STRONG_ATTACK:
            cells[0] += " (weak)"
        aucs = [auroc(m["detection"], k) for k in ("suspicion", "loss_baseline", "robustness", "gap")]
        lines.append([marked(name, m, config), *cells, *aucs, f"{m['benchmark']['dvc_repro_seconds']:.0f}", verdict(m, attacks[name])])
    return markdown_table(header, lines)


def detection_seconds(m: dict) -> float:
    """Wall time of the method itself: the detect stage and any stages of a method's own."""
    return sum(m["wall_seconds"].get(st.name, 0.0) for st in STAGES if st.only_for or st.runs_method)


def methods_table(rows: dict[str, dict], config: dict, attacks: dict[str, dict] = ROWS) -> str:
    """One line per attack x method; rows are keyed "attack / method"."""
    header = ["attack", "method", "no-defense ACC / ASR / RA", "method's model ACC / ASR / RA", "final ACC / ASR / RA", "paper ACC / ASR"]
    header += ["precision", "recall", "FPR", "AUROC suspicion", "AUROC loss baseline", "inferred target", "detection s", "wall s", "bars"]
    cell = lambda m: "n/a" if m is None else " / ".join(pct(m.get(k)) for k in ("acc", "asr", "robust_acc"))  # noqa: E731
    lines = []
    for key, m in rows.items():
        attack, method = key.rsplit(" / ", 1)
        d = m["detection"]
        own = m.get("purified", m.get("enhanced"))
        target = m.get("method", {}).get("target", "")
        lines.append([marked(attack, m, config), method, cell(m["no_defense"]), cell(own), cell(m["defended"]), PAPER.get(method, {}).get(attack, ""),
                      pct(d.get("precision")), pct(d.get("recall")), pct(d.get("fpr")), auroc(d, "suspicion"), auroc(d, "loss_baseline"),
                      target, f"{detection_seconds(m):.0f}", f"{m['benchmark']['dvc_repro_seconds']:.0f}", verdict(m, attacks[attack])])
    return markdown_table(header, lines)


def commits(rows: dict) -> str:
    """Which code measured which rows (a grid re-run in chunks mixes commits)."""
    by: dict[tuple, list[str]] = {}
    for key, m in rows.items():
        # Float results differ between processors, so a row's machine goes with its commit.
        by.setdefault((m["benchmark"].get("commit") or "not recorded", m["benchmark"].get("machine")), []).append(key)
    if all(commit == "not recorded" for commit, _ in by):
        return "Commits not recorded (rows from before 2026-12-06)."
    mixed = len({where for _, where in by}) > 1
    by = {commit + (f" ({where})" if where and mixed else ""): keys for (commit, where), keys in by.items()}
    started = [key for key, m in rows.items() if " over a copy of " in m["benchmark"].get("runner", "")]
    note = f" Started from an earlier run's folder (--from), so their wall s is of the stages the change re-ran: {', '.join(started)}." if started else ""
    if len(by) == 1:
        return f"Every row at commit {next(iter(by))}.{note}"
    return "Rows by commit: " + "; ".join(f"{c}: {', '.join(keys)}" for c, keys in by.items()) + "." + note


def write(dataset: str, doc: dict, out: Path) -> None:
    (out / f"{doc['name']}.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    methods, attacks = doc.get("methods"), rows_of(dataset)
    knobs = ("each attack as its row names it (t: target class, r: rate in percent), its other knobs at the paper's defaults" if attacks is not ROWS
             else "each attack at its paper defaults (`attack:` section), rate 5 %, target 1")
    (out / f"{doc['name']}.md").write_text(
        f"# {'Method' if methods else 'AdvrBD attack'} grid: {doc['dataset']}\n\n"
        f"Figures in percent. Command: `{doc['command']}`. Machine of the latest run: {doc['machine']}.\n"
        f"One config for every row: `params.yaml` with these overrides: `{json.dumps(doc['overrides'])}`; "
        f"{knobs}.\n"
        f"Bars (issue 17), on {'the final model' if methods else 'the defended model'}: {BARS}. "
        f"(weak): the attack itself reaches < {STRONG_ATTACK:.0%} ASR without defense."
        + (" †: measured under an earlier params.yaml than this one (the JSON keeps it); re-run it with --rows." if any(stale(m, doc["config"]) for m in doc["rows"].values()) else "")
        + "\n" + commits(doc["rows"]) + "\n\n"
        + (f"Methods: {', '.join(methods)}, each with its params.yaml section as committed. RA: robust accuracy (PGD-7, 6/255). "
           "Method's model: PBE's and PUD's purified model; AdvrBD's backdoor-enhanced model E, whose high ASR is by design. "
           "Detection s: the method's own stages. Paper: PBE's own CIFAR-10 figures (a different dataset and model: for scale, not a bar).\n\n" + methods_table(doc["rows"], doc["config"], attacks) if methods else table(doc["rows"], doc["config"], attacks))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("--rows", nargs="*", metavar="ROW", help=f"any of {', '.join(ROWS)}; for fmnist-variants any of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--methods", nargs="*", metavar="METHOD", help="the method axis: run every row with each of these methods")
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "runs")
    parser.add_argument("--without-dvc", action="store_true", help="run dvc.yaml's commands in order, for a machine DVC cannot be installed on")
    parser.add_argument("--from", dest="start_from", type=Path, metavar="RUNS", help="start each row from its run folder in RUNS (an earlier grid's --workdir, same machine and software): dvc repro re-runs only the stages the code or params changed; wall s is then theirs only")
    parser.add_argument("--render", action="store_true", help="rewrite the Markdown from its JSON twin (after a change of bars), running nothing")
    args = parser.parse_args()
    attacks = rows_of(args.dataset)
    unknown = set(args.rows or ()) - set(attacks)
    if unknown:
        parser.error(f"unknown row(s) {sorted(unknown)}")
    if args.start_from and args.without_dvc:
        parser.error("--from needs DVC: without it every stage runs")
    overrides, description = DATASETS[args.dataset]
    out = REPO / "benchmarks" / "results"
    if args.render:  # the grid's JSON twins (AdvrBD's and the method axis's), rescored
        for twin in (out / f"grid-{args.dataset}.json", out / f"grid-{args.dataset}-methods.json"):
            if twin.exists():
                doc = json.loads(twin.read_text())  # rows sorted by name: back in ROWS order
                attack = (lambda key: key.rsplit(" / ", 1)[0]) if doc.get("methods") else (lambda key: key)
                rows = sorted(doc["rows"].items(), key=lambda kv: list(attacks).index(attack(kv[0])))
                write(args.dataset, {**doc, "name": twin.stem, "rows": dict(rows)}, out)
        return
    name = f"grid-{args.dataset}" + ("-methods" if args.methods else "")
    twin = out / f"{name}.json"
    before = json.loads(twin.read_text()) if twin.exists() and (args.rows or args.methods) else {}
    previous = before.get("rows", {})
    methods = args.methods or [None]
    # A later run with other methods adds its rows beside the earlier ones.
    listed = list(dict.fromkeys([*before.get("methods", []), *args.methods])) if args.methods else []
    command = f"python benchmarks/grid.py {args.dataset}" + (f" --methods {' '.join(args.methods)}" if args.methods else "") + (" --without-dvc" if args.without_dvc else "")
    doc = {
        "name": name,
        "dataset": description,
        "command": command,
        "overrides": overrides,
        "config": yaml.safe_load((REPO / "params.yaml").read_text()),
        "machine": machine(),
        "rows": previous,
        **({"methods": listed} if args.methods else {}),
    }
    keys = [f"{row} / {m}" if m else row for row in attacks for m in (listed or methods)]
    starts = {(row, m): run_dir(args.start_from, args.dataset, row, m) if args.start_from else None for row in args.rows or attacks for m in methods}
    missing = [str(p) for p in starts.values() if p is not None and not (p / "dvc.lock").exists()]
    if missing:  # before any row runs, not hours into the grid
        parser.error(f"no finished run to start from in {', '.join(missing)}")
    for row in args.rows or attacks:
        for method in methods:
            key = f"{row} / {method}" if method else row
            print(f"running {args.dataset} / {key} ...", flush=True)
            scenario = {**overrides, "attack": attacks[row], **({"method": {"name": method}} if method else {})}
            proj = run_dir(args.workdir, args.dataset, row, method)
            start = starts[row, method]
            doc["rows"][key] = run_scenario(proj.name, scenario, args.workdir, f"{command} --rows '{row}'" + (f" --from {args.start_from}" if start else ""), dvc=not args.without_dvc, start_from=start)
            doc["rows"] = {k: doc["rows"][k] for k in keys if k in doc["rows"]}
            write(args.dataset, doc, out)
            print((methods_table if method else table)({key: doc["rows"][key]}, doc["config"], attacks), flush=True)


if __name__ == "__main__":
    sys.exit(main())
