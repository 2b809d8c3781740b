"""dvc.yaml, generated from sanitizer/layout.py. Each stage gets its params sections, the artefacts
it reads and writes, and, as code deps, exactly the project files its code imports: found by
reading the imports of `stages/<name>.py` and of every project module they reach, lazy imports
inside functions included. So editing one stage's code re-runs that stage and what follows it,
and a change to shared code re-runs every stage that runs it.

    python -m sanitizer.dvcfile            # rewrite dvc.yaml
    python -m sanitizer.dvcfile --check    # exit 1 if dvc.yaml is not what the layout gives
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import yaml

from .layout import ARTEFACTS, INPUTS, METRICS, STAGES, TIMED_STAGES, Stage

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("sanitizer", "stages")
DATA = "data"
HEADER = "# Generated from sanitizer/layout.py by `python -m sanitizer.dvcfile`; edit the layout, not this file.\n"
PLOTS = [
    {f"{DATA}/evaluate/plots/score_distribution.csv": {"x": "suspicion", "y": "count", "template": "linear"}},
    {f"{DATA}/evaluate/plots/roc.csv": {"x": "fpr", "y": "tpr", "template": "simple"}},
]


def module_file(module: str) -> Path | None:
    """The project file a module name loads, or None for anything outside the project."""
    parts = module.split(".")
    if parts[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*parts)
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def imported_modules(file: Path) -> set[str]:
    """Absolute names of everything one file imports, anywhere in it. For `from a import b`
    both `a` and `a.b` are listed, since b may be a submodule."""
    rel = file.relative_to(ROOT).with_suffix("")
    package = rel.parts[:-1]  # for __init__.py, the package itself
    names = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def code_deps(module: str) -> list[Path]:
    """Every project file that running `module` can execute, its packages' __init__ included."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        parts = todo.pop().split(".")
        # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
        for k in range(1, len(parts) + 1):
            file = module_file(".".join(parts[:k]))
            if file is not None and file not in seen:
                seen.add(file)
                todo.extend(imported_modules(file))
    return sorted(seen)


def method_sections() -> list[str]:
    """Every params section a shipped method reads: its own and those it `reads`."""
    from .methods import METHODS, load_all

    load_all()
    methods = [METHODS.get(name) for name in METHODS.names()]
    return sorted({m.section for m in methods} - {None} | {s for m in methods for s in m.reads})


def stage_entry(st: Stage, installed: bool = False) -> dict:
    """One stage of dvc.yaml. `installed`: for a project of its own (`sanitize init`), whose
    stages call the installed `sanitize` and so depend on no source file here."""
    modules = [f"stages.{st.name}"]
    params = list(st.params)
    if st.runs_method:
        # It imports the chosen method by name, so it depends on every method's code and params.
        from .methods import module_names

        modules += [f"sanitizer.methods.{m}" for m in module_names()]
        params += method_sections()
    code = [] if installed else [p.relative_to(ROOT).as_posix() for p in sorted(set().union(*map(code_deps, modules)))]
    reads = [INPUTS[a] if a in INPUTS else f"{DATA}/{ARTEFACTS[a]}" for a in st.reads]
    if st.reads_timings:
        reads += [f"{DATA}/{name}/timing.json" for name in TIMED_STAGES]
    outs = [f"{DATA}/{ARTEFACTS[a]}" for a in st.writes if a not in METRICS] + [f"{DATA}/{st.timing()}"]
    cmd = f"sanitize run {st.name}" if installed else f"python -m stages.{st.name}"
    entry = {"cmd": cmd, "deps": code + reads, "params": params, "outs": outs}
    if not entry["deps"]:
        del entry["deps"]
    # Not cached, so git tracks them: `dvc metrics diff` and `dvc exp show` compare commits.
    metrics = [{f"{DATA}/{ARTEFACTS[a]}": {"cache": False}} for a in st.writes if a in METRICS]
    if metrics:
        entry["metrics"] = metrics
    return entry


def render(installed: bool = False, header: str = HEADER, extra_deps: dict[str, list[str]] | None = None) -> str:
    stages = {st.name: stage_entry(st, installed) for st in STAGES}
    for name, deps in (extra_deps or {}).items():
        stages[name]["deps"] = deps + stages[name].get("deps", [])
    doc = {"stages": stages, "plots": PLOTS}
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=120)


def main(argv: list[str]) -> int:
    path = ROOT / "dvc.yaml"
    text = render()
    if "--check" in argv:
        if path.read_text() != text:
            print(f"{path} is stale: run `python -m sanitizer.dvcfile`", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
