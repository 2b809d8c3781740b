"""The bad-input corpus: what a team's real data, params and artefacts can look like, each run
through `sanitize run <stage>` as a user would. Every case ends in a clear error (exit 1, a
message naming the problem, no traceback, none of the stage's outputs left behind) or in a
correct result that the case checks. The README reports the counts of CASES."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet  # noqa: F401  (pa.parquet)
import pytest
import yaml
from click.testing import CliRunner
from test_datasets import write_image, write_table

from sanitizer.cli import main
from sanitizer.layout import Paths, stage, writer


@dataclass
class Case:
    name: str
    make: Callable[[Path], dict]  # lays out inputs under the folder; returns params overrides
    error: str | None = None  # regex the message must match; None = the run must succeed
    check: Callable[[Path, str], None] | None = None  # for a success: (data root, output)
    stage: str = "ingest"
    before: tuple[str, ...] = ()  # stages that must run first, on good input


def params_file(tmp: Path, overrides: dict) -> Path:
    params = {"attack": {"name": "none"}, "data": {"test_fraction": 0.5}}
    for section, values in overrides.items():
        if isinstance(values, dict) and isinstance(params.get(section), dict):
            params[section] = {**params[section], **values}
        else:
            params[section] = values
    path = tmp / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def sanitize(tmp: Path, stage_name: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(main, ["run", stage_name, "--params", str(tmp / "params.yaml"), "--data", str(tmp / "data")])
    return result.exit_code, result.output, result.exception


# ---------------------------------------------------------------- inputs


def folder(tmp: Path, layout: dict[str, int], shape=(1, 8, 8)) -> Path:
    """An image folder: {relative class folder: number of images}."""
    root = tmp / "images"
    for rel, n in layout.items():
        (root / rel).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            write_image(root / rel / f"{i}.png", 10 * i + 5, shape)
    return root


def imagefolder(layout: dict[str, int], then: Callable[[Path], None] | None = None, **data) -> Callable[[Path], dict]:
    def make(tmp: Path) -> dict:
        root = folder(tmp, layout)
        if then:
            then(root)
        return {"data": {"source": "imagefolder", "path": str(root), **data}}

    return make


def parquet(labels, extra=None, metadata=None, blobs=None, **data) -> Callable[[Path], dict]:
    def make(tmp: Path) -> dict:
        write_table(tmp / "t.parquet", labels, blobs=blobs, extra=extra, metadata=metadata)
        return {"data": {"source": "parquet", "path": str(tmp / "t.parquet"), **data}}

    return make


def params(overrides: dict) -> Callable[[Path], dict]:
    """Good data (an image folder of 2 classes), the given params."""

    def make(tmp: Path) -> dict:
        root = folder(tmp, {"cat": 6, "dog": 6})
        return {"data": {"source": "imagefolder", "path": str(root)}, **overrides}

    return make


MARKUP = "[bold red]x[/]"
SCRIPT = "<script>alert(1)</script>"


def store_of(data: Path):
    from sanitizer.store import SampleStore

    return SampleStore(Paths(data).store)


def classes_are(*names: str) -> Callable[[Path, str], None]:
    def check(data: Path, output: str) -> None:
        assert store_of(data).classes == list(names)

    return check


def told(*phrases: str, classes: tuple[str, ...] | None = None) -> Callable[[Path, str], None]:
    def check(data: Path, output: str) -> None:
        flat = " ".join(output.split())
        for phrase in phrases:
            assert phrase in flat, f"{phrase!r} not in output:\n{output}"
        if classes is not None:
            assert store_of(data).classes == list(classes)

    return check


def train_only_check(data: Path, output: str) -> None:
    told("has train/ but no test/")(data, output)
    store = store_of(data)
    assert store.classes == ["cat", "dog"]
    splits = store.samples["split"].to_list()
    assert splits.count("test") > 0 and splits.count("train") > 0 and len(splits) == 16
    assert all(not sid.startswith("train/") for sid in store.samples["sample_id"].to_list())


def lr_is_a_number(data: Path, output: str) -> None:
    from sanitizer.config import config, load_params

    assert config("train", load_params(data.parent / "params.yaml")).lr == 0.001
    assert store_of(data).classes == ["cat", "dog"]


def truncate(path: Path, keep: float = 0.5) -> None:
    blob = path.read_bytes()
    path.write_bytes(blob[: int(len(blob) * keep)])


def damage(artefact: str, how: Callable[[Path], None], also_ran: tuple[str, ...] = ()) -> Callable[[Path], dict]:
    """Good data, ingested; then one artefact (by its layout name) is damaged or replaced
    before the stage under test runs (`also_ran`: stages to record as run, so that the stage
    under test gets past the check that its inputs come from this store)."""

    def make(tmp: Path) -> dict:
        overrides = params({})(tmp)
        params_file(tmp, overrides)
        assert sanitize(tmp, "ingest")[0] == 0
        paths = Paths(tmp / "data")
        how(getattr(paths, artefact))
        for name in (writer(artefact).name, *also_ran):
            ran(paths, name)
        return overrides

    return make


def ran(paths: Paths, name: str) -> None:
    """The record a stage leaves when it ran on the current store."""
    record = paths.root / stage(name).timing()
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text((paths.root / stage("ingest").timing()).read_text())


def reingested(tmp: Path) -> dict:
    """A model trained on the store, then the data changed and ingest ran again (by hand)."""
    overrides = params({})(tmp)
    params_file(tmp, overrides)
    assert sanitize(tmp, "ingest")[0] == 0
    paths = Paths(tmp / "data")
    write_model(2)(paths.suspect)
    ran(paths, "train_suspect")
    write_image(Path(overrides["data"]["path"]) / "cat" / "new.png", 77, (1, 8, 8))
    assert sanitize(tmp, "ingest")[0] == 0
    return overrides


def write_model(classes: int) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        from sanitizer.training import new_model, save_model

        save_model(new_model("small_cnn", (1, 8, 8), classes), path)

    return write


def garbage(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a model at all")


def foreign_manifest(artefact: str, columns: dict) -> Callable[[Path], None]:
    """A manifest of the right shape from another run: other sample ids."""

    def write(path: Path) -> None:
        import polars as pl

        from sanitizer.manifest import write_manifest

        ids = [f"other/{i}" for i in range(8)]
        write_manifest(pl.DataFrame({"sample_id": ids, **{k: [v] * 8 for k, v in columns.items()}}), path, artefact)

    return write


def chain(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(path: Path) -> None:
        for step in steps:
            step(path)

    return run


def shard(data_store: Path) -> None:
    truncate(data_store / "shards" / "train.npy", 0.6)


def empty_shard(data_store: Path) -> None:
    (data_store / "shards" / "train.npy").write_bytes(b"")


# ---------------------------------------------------------------- the corpus

EVALUATE_READS = tuple(sorted({writer(a).name for a in stage("evaluate").reads}))

CASES = [
    # Layouts a team really has.
    Case("train/ but no test/", imagefolder({"train/cat": 8, "train/dog": 8}), check=train_only_check),
    Case("test/ but no train/", imagefolder({"test/cat": 2, "test/dog": 2}), error="has test/ but no train/"),
    Case("empty class folder", imagefolder({"cat": 4, "dog": 0}), error=r"class folder .*dog has no images"),
    Case("empty class folder in train/", imagefolder({"train/cat": 4, "train/dog": 0, "test/cat": 2}), error=r"dog has no images"),
    Case("class folder named with a dot", imagefolder({"cat": 6, "dog": 6, ".ipynb_checkpoints": 2}), check=told("ignored hidden folder(s) .ipynb_checkpoints", classes=("cat", "dog"))),
    Case("stray folder beside train/ and test/", imagefolder({"train/cat": 4, "train/dog": 4, "test/cat": 2, "test/dog": 2, "val/cat": 2}), check=told("ignored folder(s) val", classes=("cat", "dog"))),
    Case("file that is not an image", imagefolder({"cat": 6, "dog": 6}, then=lambda r: (r / "cat" / "notes.txt").write_text("x")), check=told("that are not images", "notes.txt", classes=("cat", "dog"))),
    Case("image outside any class folder", imagefolder({"cat": 6, "dog": 6}, then=lambda r: write_image(r / "stray.png", 1, (1, 8, 8))), check=told("outside class folders", "stray.png")),
    Case("test/ class the train/ split lacks", imagefolder({"train/cat": 4, "train/dog": 4, "test/bird": 2}), error="unknown class 'bird'"),
    Case("test/ without one of the classes", imagefolder({"train/cat": 4, "train/dog": 4, "test/cat": 2}), check=classes_are("cat", "dog")),
    Case("corrupt image", imagefolder({"cat": 6, "dog": 6}, then=lambda r: (r / "dog" / "0.png").write_bytes(b"\x89PNG\r\n broken")), error=r"corrupt image dog/0.png"),
    Case("images of two sizes", imagefolder({"cat": 6, "dog": 6}, then=lambda r: write_image(r / "dog" / "big.png", 1, (1, 16, 16))), error="must share one size"),
    Case("no class folders", imagefolder({}, then=lambda r: r.mkdir(parents=True, exist_ok=True)), error="no class folders"),
    Case("data.path that does not exist", lambda tmp: {"data": {"source": "imagefolder", "path": str(tmp / "nowhere")}}, error=r"data.path .*nowhere not found"),
    Case("data.path a file, not a folder", lambda tmp: (write_image(tmp / "one.png", 1), {"data": {"source": "imagefolder", "path": str(tmp / "one.png")}})[1], error="is not a folder"),
    Case("class names that look like markup", imagefolder({"[red]cat": 6, "<b>dog": 6}), check=classes_are("<b>dog", "[red]cat")),
    Case("no test samples at all", imagefolder({"cat": 4, "dog": 4}, test_fraction=0.0), error="no test samples"),
    # Labels and classes.
    Case("labels with a gap and no class list", parquet([0, 3, 3, 0]), error=r"no sample has label\(s\) 1, 2"),
    Case("label 50 and no class list", parquet([0, 50, 0, 50]), error=r"no sample has label\(s\) 1, 2, 3, 4, 5 and 44 more"),
    Case("label beyond the class list", parquet([0, 1, 2, 0], metadata={"classes": json.dumps(["a", "b"])}), error=r"label 2 of sample .* out of range 0..1"),
    Case("negative label", parquet(pa.array([0, -1, 1, 0], pa.int64()), metadata={"classes": json.dumps(["a", "b"])}), error="label -1 of sample"),
    Case("class list that is broken JSON", parquet([0, 1], metadata={"classes": '["a", "b"'}), error="not a valid JSON list"),
    Case("class list of objects", parquet([0, 1], metadata={"classes": '[{"a": 1}, "b"]'}), error="must list class names"),
    Case("class list naming a class twice", parquet([0, 1], metadata={"classes": json.dumps(["a", "a"])}), error="names a more than once"),
    Case("class list with an empty name", parquet([0, 1, 2], metadata={"classes": "a,,c"}), error="empty class name"),
    Case("class with no train samples", parquet([0, 1, 0, 1] * 4, metadata={"classes": json.dumps(["a", "b", "c"])}), error=r"class\(es\) c have no train samples"),
    Case("class_name column giving a label two names", parquet([0, 1, 0, 1], extra={"class_name": ["a", "b", "x", "b"]}), error="label 0 is called both 'a' and 'x'"),
    Case("negative label beside a class_name column", parquet(pa.array([0, -1, 1, 0], pa.int64()), extra={"class_name": ["a", "z", "b", "a"]}), error="label -1 of sample"),
    Case("class_name column with a null", parquet([0, 1, 0, 1], extra={"class_name": ["a", None, "a", "b"]}), error="'class_name' has a null"),
    Case("class_name column giving two labels one name", parquet([0, 1, 0, 1], extra={"class_name": ["a", "a", "a", "a"]}), error="one name to several labels"),
    Case("split column with no test rows", parquet([0, 1, 0, 1], extra={"split": ["train"] * 4}), error="no test samples"),
    Case("split column with an unknown split", parquet([0, 1, 0, 1], extra={"split": ["train", "val", "test", "train"]}), error=r"may hold only \['train', 'test'\], found \['val'\]"),
    Case("duplicate sample ids", parquet([0, 1, 0, 1], extra={"sample_id": ["a", "b", "a", "c"]}), error="sample id 'a' appears 2 times"),
    Case("null label", parquet(pa.array([0, None, 1, 0], pa.int64())), error="has no label"),
    Case("labels that are not integers", parquet(pa.array([0.0, 1.0, 0.0, 1.0])), error="must hold integer labels"),
    Case("no label column", lambda tmp: (write_table(tmp / "t.parquet", [0, 1], label_column="y"), {"data": {"source": "parquet", "path": str(tmp / "t.parquet")}})[1], error="has no column 'label'"),
    Case("image column of numbers", lambda tmp: (pa.parquet.write_table(pa.table({"image": [1, 2], "label": [0, 1]}), tmp / "t.parquet"), {"data": {"source": "parquet", "path": str(tmp / "t.parquet")}})[1], error="must hold encoded image bytes"),
    Case("truncated Parquet data file", lambda tmp: (write_table(tmp / "t.parquet", [0, 1] * 4), truncate(tmp / "t.parquet"), {"data": {"source": "parquet", "path": str(tmp / "t.parquet")}})[2], error="not a readable Parquet file"),
    Case("empty table", parquet(pa.array([], pa.int64()), blobs=[]), error="has no rows"),
    # Params: every section is validated before the first stage does any work.
    Case("section that is a number (train: 5)", params({"train": 5}), error=r"\[train\] must be a mapping"),
    Case("learning rate NaN", params({"train": {"lr": float("nan")}}), error=r"\[train\]\.lr must be a finite number"),
    Case("learning rate infinite", params({"relabel": {"lr": float("inf")}}), error=r"\[relabel\]\.lr must be a finite number"),
    Case("learning rate zero", params({"enhance": {"lr": 0}}), error=r"\[enhance\]\.lr must be in \(0.0, 10.0\]"),
    Case("negative epochs", params({"train": {"epochs": -1}}), error=r"\[train\]\.epochs must be in \[1, 10000\]"),
    Case("zero batch size", params({"evaluate": {"batch_size": 0}}), error=r"\[evaluate\]\.batch_size"),
    Case("negative threshold", params({"identify": {"threshold": -2}}), error=r"\[identify\]\.threshold"),
    Case("1e-3, a string to YAML", lambda tmp: {**params({})(tmp), "train": {"lr": "1e-3"}}, check=lr_is_a_number),
    Case("unknown section", params({"trian": {"epochs": 2}}), error=r"unknown section\(s\) \['trian'\]"),
    Case("unknown key", params({"train": {"epoch": 2}}), error=r"\[train\]: unknown key\(s\) \['epoch'\]"),
    Case("unknown attack", params({"attack": {"name": "badnet"}}), error=r"\[attack\]\.name must be one of"),
    Case("unknown architecture", params({"model": {"arch": "vit"}}), error=r"\[model\]\.arch must be one of"),
    Case("attack target beyond the classes", params({"attack": {"name": "badnets", "target": 5}}), error=r"\[attack\]\.target 5 is not a class index \(0..1\)"),
    # Damaged or mismatched artefacts: the message names the file and what to re-run.
    Case("truncated model file", damage("suspect", chain(write_model(2), truncate)), error=r"model.pt is damaged or not a model file.*re-run", stage="score"),
    Case("a file that is not a model", damage("suspect", garbage), error=r"model.pt is damaged or not a model file", stage="score"),
    Case("model for another number of classes", damage("suspect", write_model(3)), error=r"model.pt does not fit this store's images and classes", stage="score"),
    Case("truncated manifest", damage("scores", chain(foreign_manifest("score", {"score": 0.0, "loss": 0.0, "gap": 0.0}), truncate)), error=r"scores.parquet is damaged or not a Parquet file", stage="partition", before=("train_suspect",)),
    Case("manifest from another run", damage("partition", foreign_manifest("partition", {"subset": "seed"})), error=r"partition.parquet does not match the sample store's train split", stage="enhance", before=("train_suspect",)),
    Case("decisions from another run", damage("decisions", foreign_manifest("relabel", {"label": 0, "decision": "keep", "new_label": 0, "confidence": 1.0, "reason": "r", "source": "method", "method_decision": "keep"}), also_ran=EVALUATE_READS), error=r"decisions.parquet does not match", stage="evaluate"),
    Case("truncated image shard", damage("store", shard), error="damaged image shard", stage="train_suspect"),
    Case("empty image shard", damage("store", empty_shard), error="damaged image shard", stage="train_suspect"),
    Case("stage whose inputs were never made", params({}), error=r"train_suspect has not run on this sample store: run it first", stage="score", before=("ingest",)),
    Case("model trained before ingest re-ran", reingested, error=r"stage score: the outputs of train_suspect come from another run.*re-run train_suspect", stage="score"),
    Case("no sample store", lambda tmp: params({})(tmp), error="no sample store", stage="score"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path):
    overrides = case.make(tmp_path)
    params_file(tmp_path, overrides)
    for name in case.before:
        code, output, _ = sanitize(tmp_path, name)
        assert code == 0, output
    code, output, exc = sanitize(tmp_path, case.stage)
    assert "Traceback" not in output
    if case.error is None:
        assert code == 0, f"expected success, got:\n{output}\n{exc!r}"
        case.check(tmp_path / "data", output)
        return
    assert code == 1 and isinstance(exc, SystemExit), f"expected a clear error, got exit {code}:\n{output}\n{exc!r}"
    assert re.search(case.error, " ".join(output.split())), output
    # Nothing half-written: none of the failed stage's outputs, and no temp folders.
    stage_dir = tmp_path / "data" / case.stage
    left = sorted(p.name for p in stage_dir.iterdir()) if stage_dir.exists() else []
    outputs = {p.name for p in Paths(tmp_path / "data").outputs(stage(case.stage))}
    assert not set(left) & outputs and not any(n.startswith(".") for n in left), left


def test_user_text_in_inspect_is_shown_as_text(tmp_path):
    """Class names and sample ids reach the terminal as text: rich markup in them is neither
    applied nor able to break the table."""
    import polars as pl

    from sanitizer.manifest import write_manifest

    paths = Paths(tmp_path)
    classes = [MARKUP, SCRIPT, "[/]"]
    ids = ["[link=x]a[/link]", "b[/]", "c"]
    decisions = {"sample_id": ids, "label": [0, 1, 2], "decision": ["relabel", "drop", "relabel"], "new_label": [1, 1, 0], "confidence": [0.9] * 3, "reason": ["r"] * 3, "source": ["method"] * 3}
    write_manifest(pl.DataFrame(decisions), paths.decisions, "relabel", {"classes": classes})
    meta = {"method": "advrbd", "signals": {"suspicion": "consistency"}, "summary": {}, "models": []}
    write_manifest(pl.DataFrame({"sample_id": ids, "suspicion": [3.0, 2.0, 1.0], "suspected": [True] * 3}), paths.suspicion, "detect", meta)
    result = CliRunner().invoke(main, ["inspect", "--data", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 0, result.output
    for text in [*classes, *ids]:
        assert text in result.output, text


def test_corpus_counts():
    """The README quotes these counts; keep them in step."""
    errors = sum(c.error is not None for c in CASES)
    assert (len(CASES), errors, len(CASES) - errors) == (63, 55, 8), (len(CASES), errors, len(CASES) - errors)
