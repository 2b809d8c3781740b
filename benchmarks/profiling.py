"""Where the default pipeline's time goes: every stage of a fresh run, each defense stage under
py-spy (a sampling profiler: it reads the Python stacks from outside the process, so it slows
nothing it measures), and a short summary of what the samples were doing.

    pip install py-spy
    python benchmarks/profiling.py                  # the default scenario (~6 min on 2 cores)

A sample is filed under the innermost function of this project on its stack (what our code
was doing), and by what sat below it: the model's forward pass, autograd's backward pass, the
optimizer's step, reading and writing files, imports at start-up, or anything else (tensor
and NumPy calls made from our own lines: batching, conversions, clustering arithmetic).
Writes benchmarks/results/profile.md and profile.json. Take it on an idle machine."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import yaml

from cost import BENCHMARK_ONLY, DEFENSE
from run_pipeline import REPO, machine, make_project, markdown_table

RATE = 100  # samples a second: 1 % of a 1-second function is one sample
TOP = 6  # functions listed per stage

# What the frames below our innermost function say the time went to, first match wins.
KINDS = {
    "backward": ("torch/autograd/", "torch/_tensor.py"),
    "optimizer": ("torch/optim/",),
    "forward": ("torch/nn/modules/", "torch/nn/functional.py"),
    "files": ("polars/", "pyarrow/", "torch/serialization.py", "sanitizer/io.py", "sanitizer/manifest.py", "sanitizer/store.py"),
}
OURS = ("sanitizer/", "stages/")  # py-spy names the run folder's own files by relative paths


def parse_frame(frame: str) -> tuple[str, str]:
    """'func (path:line)' -> (func, path)."""
    name, _, where = frame.partition(" (")
    return name, where.rsplit(":", 1)[0]


def classify(stack: list[str]) -> tuple[str, str]:
    """(innermost function of ours, kind of work below it) for one sample's stack (root first)."""
    frames = [parse_frame(f) for f in stack]
    if any(path.startswith("<frozen importlib") for _, path in frames):
        return "(imports)", "imports"
    mine = [i for i, (_, path) in enumerate(frames) if path.startswith(OURS)]
    if not mine:
        return "(outside our code)", "other"
    i = mine[-1]
    name, path = frames[i]
    below = [p for _, p in frames[i + 1 :]] + [path]
    kind = next((k for k, marks in KINDS.items() if any(m in p for p in below for m in marks)), "other")
    return f"{path}: {name}", kind


def summarise(raw: Path) -> dict:
    """Per function and per kind of work: sample counts, from py-spy's raw (collapsed) output."""
    by_function, by_kind, function_kinds = Counter(), Counter(), defaultdict(Counter)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        function, kind = classify(stack.split(";"))
        by_function[function] += int(count)
        by_kind[kind] += int(count)
        function_kinds[function][kind] += int(count)
    return {"samples": sum(by_kind.values()), "kinds": dict(by_kind), "functions": {f: dict(function_kinds[f]) for f, _ in by_function.most_common(20)}}


def py_spy() -> str:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is not installed: `pip install py-spy`, then run this again")
    return spy


def profile_run(proj: Path, out: Path) -> None:
    """The stages of dvc.yaml in order, the defense stages under py-spy (the benchmark-only
    ones are left out): their samples in `out`, with run.json, py-spy's version and each
    profiled stage's wall time."""
    spy = py_spy()
    walls = {}
    for name, stage in yaml.safe_load((proj / "dvc.yaml").read_text())["stages"].items():
        if name in BENCHMARK_ONLY:
            continue
        cmd = [sys.executable if word == "python" else word for word in stage["cmd"].split()]
        profiled = name in DEFENSE
        if profiled:
            cmd = [spy, "record", "--rate", str(RATE), "--nonblocking", "--format", "raw", "--output", str(out / f"{name}.txt"), "--", *cmd]
        print(f"stage {name}", flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, cwd=proj, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if profiled:
            walls[name] = round(time.perf_counter() - start, 1)
    version = subprocess.run([spy, "--version"], capture_output=True, text=True).stdout.split()[-1]
    (out / "run.json").write_text(json.dumps({"py_spy": version, "walls": walls}, indent=2) + "\n")


def stages_of(raws: Path) -> tuple[str, dict]:
    """py-spy's version and, per profiled stage, its wall time and summarised samples."""
    run = json.loads((raws / "run.json").read_text())
    return run["py_spy"], {name: {"wall_s": wall, **summarise(raws / f"{name}.txt")} for name, wall in run["walls"].items()}


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "n/a"


KIND_ORDER = ["forward", "backward", "optimizer", "files", "imports", "other"]


def markdown(doc: dict) -> str:
    stages = doc["stages"]
    total = sum(s["samples"] for s in stages.values())
    overall = Counter()
    for s in stages.values():
        overall.update(s["kinds"])
    head = markdown_table(
        ["stage", "wall s", "share of samples", *KIND_ORDER],
        [[n, s["wall_s"], pct(s["samples"], total), *(pct(s["kinds"].get(k, 0), s["samples"]) for k in KIND_ORDER)] for n, s in stages.items()]
        + [["**all defense stages**", round(sum(s["wall_s"] for s in stages.values()), 1), "100 %", *(pct(overall.get(k, 0), total) for k in KIND_ORDER)]],
    )
    parts = []
    for n, s in stages.items():
        rows = [[f"`{f}`", pct(sum(k.values()), s["samples"]), ", ".join(f"{kind} {pct(c, sum(k.values()))}" for kind, c in sorted(k.items(), key=lambda kc: -kc[1]))] for f, k in list(s["functions"].items())[:TOP]]
        parts.append(f"**{n}** ({s['wall_s']} s):\n\n" + markdown_table(["innermost function of ours", "of the stage", "below it"], rows))
    return (
        "# Where the time goes: a py-spy profile of the default pipeline\n\n"
        f"Command: `{doc['command']}`. Machine: {doc['machine']}. py-spy {doc['py_spy']}, {RATE} samples a second, every defense stage of one fresh run.\n\n"
        "Each sample is filed under the innermost function of this project on its Python stack and under what ran below it: "
        "the model's **forward** pass (torch.nn), autograd's **backward** pass, the **optimizer** step, **files** (Parquet, model and store I/O), "
        "**imports** at start-up, or **other**: tensor and NumPy calls made from our own lines (batching, conversions, clustering arithmetic). "
        "Only the Python thread is sampled; the time torch's own threads spend inside an operator counts under the Python line that called it.\n\n"
        + head
        + "\nPer stage, the functions that hold the most samples:\n\n"
        + "\n".join(parts)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "runs")
    parser.add_argument("--raw", type=Path, help="summarise the samples an earlier run left in this folder instead of profiling again")
    args = parser.parse_args()
    raws = args.raw
    if raws is None:
        proj = args.workdir / "profile"
        if proj.exists():
            shutil.rmtree(proj)
        make_project(proj, {}, dvc=False)
        raws = proj / "profile"
        raws.mkdir()
        profile_run(proj, raws)
    version, stages = stages_of(raws)
    doc = {"command": "python benchmarks/profiling.py", "machine": machine(), "py_spy": version, "rate": RATE, "stages": stages}
    out = REPO / "benchmarks" / "results"
    (out / "profile.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    (out / "profile.md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    sys.exit(main())
