"""The pipeline stages. Each one reads the params sections and files dvc.yaml declares for it,
calls the library, and writes its outputs atomically; a failed stage leaves none behind.
`stages/<name>.py`, `sanitize run <name>` and `dvc repro` all end up here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from .config import config, load_params
from .io import atomic_outputs, atomic_path, write_json
from .manifest import read_manifest, write_manifest
from .registry import Registry

STAGES: Registry = Registry("stage")


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable
    outputs: tuple[str, ...]


def stage(name: str, outputs: tuple[str, ...]):
    def decorator(fn):
        STAGES.register(name)(Stage(name, fn, outputs))
        return fn

    return decorator


class Paths:
    """Where every stage reads and writes, relative to the data root."""

    def __init__(self, root: str | Path = "data"):
        self.root = Path(root)

    def __getattr__(self, name: str) -> Path:
        return self.root / _LAYOUT[name]


_LAYOUT = {
    "store": "ingest/store",
    "truth": "ingest/truth.parquet",
    "asr": "ingest/asr",
    "suspect": "train_suspect/model.pt",
    "oracle": "train_oracle/model.pt",
    "scores": "score/scores.parquet",
    "partition": "partition/partition.parquet",
    "rounds": "enhance/rounds.parquet",
    "enhanced": "enhance/enhanced.pt",
    "snapshots": "enhance/rounds",
    "identify": "identify/identify.parquet",
    "clean": "train_clean/model.pt",
    "decisions": "relabel/decisions.parquet",
    "defended": "relabel/model.pt",
    "metrics": "evaluate/metrics.json",
    "plots": "evaluate/plots",
}


def run_stage(name: str, params_path: str | Path = "params.yaml", root: str | Path = "data") -> None:
    st = STAGES.get(name)
    params = load_params(params_path)
    paths = Paths(root)
    outputs = [paths.root / o for o in st.outputs]
    start = time.perf_counter()
    with atomic_outputs(*outputs, paths.root / name / "timing.json"):
        st.run(params, paths)
        write_json(paths.root / name / "timing.json", {"wall_seconds": round(time.perf_counter() - start, 2)})


# ---------------------------------------------------------------- helpers shared by stages


def _context(params, paths: Paths):
    """Store, train split tensors, and a model factory for the configured architecture."""
    from .store import SampleStore
    from .training import as_tensor, new_model

    store = SampleStore(paths.store)
    train = store.split("train")
    arch = config("model", params).arch
    seed = config("train", params).seed
    factory = lambda: new_model(arch, store.image_shape, len(store.classes), seed)  # noqa: E731
    return store, train, as_tensor(train.images), as_tensor(train.labels), factory


def _load(params, paths: Paths, store, path):
    from .training import load_model

    return load_model(path, config("model", params).arch, store.image_shape, len(store.classes))


def _aligned(df: pl.DataFrame, sample_ids: np.ndarray, what: str) -> pl.DataFrame:
    from .errors import SanitizerError

    if len(df) != len(sample_ids) or not np.array_equal(df["sample_id"].to_numpy(), sample_ids):
        raise SanitizerError(f"{what} does not match the sample store's train split: re-run the pipeline from ingest")
    return df


# ---------------------------------------------------------------- stages


@stage("ingest", ("ingest/store", "ingest/truth.parquet", "ingest/asr"))
def ingest(params, paths: Paths) -> None:
    from .attacks import build_attack
    from .datasets import load_dataset
    from .store import RawDataset, write_store

    raw = load_dataset(config("data", params))
    attack_cfg = config("attack", params)
    attack = build_attack(attack_cfg, raw.images.shape[1:], len(raw.classes))
    train, test = raw.split("train"), raw.split("test")
    poisoned = attack.poison(raw.images[train], raw.labels[train])
    images, labels = raw.images.copy(), raw.labels.copy()
    images[train], labels[train] = poisoned.images, poisoned.labels
    write_store(paths.store, RawDataset(images, labels, raw.splits, raw.sample_ids, raw.classes, raw.name))
    truth = pl.DataFrame(
        {
            "sample_id": raw.sample_ids[train].astype(str),
            "is_poison": poisoned.is_poison,
            "is_cover": poisoned.is_cover,
            "original_label": raw.labels[train].astype(np.int64),
            "attack": [attack_cfg.name] * len(train),
        }
    )
    write_manifest(truth, paths.truth, "ingest", {"attack": attack_cfg.name})
    # The attacker's test-time inputs, made here so evaluation never has to rebuild the attack
    # (a fitted trigger generator could not be rebuilt cheaply). Benchmark-only, like truth.
    asr = test[np.argsort(raw.sample_ids[test], kind="stable")]
    asr = asr[attack.asr_mask(raw.labels[asr])]
    with atomic_path(paths.asr) as tmp:
        tmp.mkdir()
        np.save(tmp / "images.npy", np.ascontiguousarray(attack.trigger_test(raw.images[asr])))
        np.save(tmp / "targets.npy", attack.target_labels(raw.labels[asr]).astype(np.int64))


@stage("train_suspect", ("train_suspect/model.pt",))
def train_suspect(params, paths: Paths) -> None:
    from .training import fit, save_model

    _, _, x, y, new_model = _context(params, paths)
    model = fit(new_model(), x, y, config("train", params), desc="training on the untrusted set")
    save_model(model, paths.suspect)


@stage("train_oracle", ("train_oracle/model.pt",))
def train_oracle(params, paths: Paths) -> None:
    """Benchmark upper bound: the same recipe on the truly clean subset. Reads ground truth."""
    import torch

    from .training import fit, save_model

    _, train, x, y, new_model = _context(params, paths)
    truth = _aligned(read_manifest(paths.truth, ["sample_id", "is_poison"]), train.sample_ids, "truth.parquet")
    keep = torch.from_numpy(np.flatnonzero(~truth["is_poison"].to_numpy()))
    model = fit(new_model(), x[keep], y[keep], config("train", params), desc="training the oracle")
    save_model(model, paths.oracle)


@stage("score", ("score/scores.parquet",))
def score(params, paths: Paths) -> None:
    from .adversarial import robustness_scores
    from .purification import purification_gap

    store, train, x, y, _ = _context(params, paths)
    suspect = _load(params, paths, store, paths.suspect)
    scores = robustness_scores(suspect, x, y, config("score", params))
    gap = purification_gap(suspect, x, y, config("purify", params), suspect_loss=scores.loss)
    df = pl.DataFrame({"sample_id": train.sample_ids, "score": scores.robustness, "loss": scores.loss, "gap": gap})
    write_manifest(
        df,
        paths.scores,
        "score",
        {"score": "robustness R (Eq. 3); low = suspicious", "loss": "CE at given label", "gap": "purification gap, nats; high = suspicious"},
    )


@stage("partition", ("partition/partition.parquet",))
def partition(params, paths: Paths) -> None:
    from .defenses.advrbd import partition as split_seed

    cfg = config("partition", params)
    scores = read_manifest(paths.scores, ["sample_id", "score", "loss", "gap"])
    barred, targets = np.zeros(len(scores), dtype=bool), []
    if cfg.max_gap is not None:
        barred, targets = _bar_by_gap(cfg, paths, scores)
    seed = split_seed(scores["score"].to_numpy(), scores["loss"].to_numpy(), cfg.rate, cfg.by, eligible=~barred)
    subset = np.where(seed, "seed", np.where(barred, "barred", "rest"))
    df = pl.DataFrame({"sample_id": scores["sample_id"], "subset": subset})
    write_manifest(df, paths.partition, "partition", {"suspected_targets": targets})


def _bar_by_gap(cfg, paths: Paths, scores: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Samples barred from D_s: a high purification gap inside a suspected target class."""
    from .progress import log
    from .purification import class_anomaly
    from .store import SampleStore

    store = SampleStore(paths.store)
    train = store.rows("train")  # labels only: the images are not needed here
    _aligned(scores, train["sample_id"].to_numpy(), "scores.parquet")
    gap, labels = scores["gap"].to_numpy(), train["label"].to_numpy()
    anomaly = class_anomaly(gap, labels, len(store.classes), cfg.target_gap)
    targets = np.flatnonzero(anomaly > cfg.min_anomaly)
    barred = np.isin(labels, targets) & (gap > cfg.max_gap)
    top = int(np.argmax(anomaly))
    if not len(targets):
        log(f"partition: no class looks like a backdoor target by purification gap (highest anomaly index {anomaly[top]:.1f}, {store.classes[top]})")
    for c in targets:
        log(f"partition: {store.classes[c]} looks like a backdoor target (anomaly index {anomaly[c]:.1f}); {int((barred & (labels == c)).sum())} of its samples barred from D_s")
    return barred, [store.classes[c] for c in targets]


@stage("enhance", ("enhance/rounds.parquet", "enhance/enhanced.pt", "enhance/rounds"))
def enhance(params, paths: Paths) -> None:
    from .defenses.advrbd import enhance as run_enhance
    from .io import atomic_path
    from .training import save_model

    store, train, x, y, new_model = _context(params, paths)
    part = _aligned(read_manifest(paths.partition, ["sample_id", "subset"]), train.sample_ids, "partition.parquet")
    result = run_enhance(
        _load(params, paths, store, paths.suspect),
        new_model,
        x,
        y,
        part["subset"].to_numpy() == "seed",
        config("enhance", params),
        config("train", params),
        barred=part["subset"].to_numpy() == "barred",
    )
    df = pl.DataFrame({"sample_id": train.sample_ids, "joined_round": result.joined_round, "consistency": result.consistency})
    write_manifest(df, paths.rounds, "enhance", {"joined_round": "round the sample entered D_s; 0 = seed, -1 = never"})
    save_model(result.enhanced, paths.enhanced)
    import torch

    with atomic_path(paths.snapshots) as tmp:
        tmp.mkdir()
        for k, (enhanced, clean) in enumerate(result.snapshots, start=1):
            torch.save(enhanced, tmp / f"round-{k}-enhanced.pt")
            torch.save(clean, tmp / f"round-{k}-clean.pt")


@stage("identify", ("identify/identify.parquet",))
def identify(params, paths: Paths) -> None:
    from .defenses.advrbd import identify as flag

    rounds = read_manifest(paths.rounds, ["sample_id", "consistency"])
    suspected = flag(rounds["consistency"].to_numpy(), config("identify", params).threshold)
    df = rounds.select("sample_id", "consistency").with_columns(pl.Series("suspected", suspected))
    write_manifest(df, paths.identify, "identify")


@stage("train_clean", ("train_clean/model.pt",))
def train_clean(params, paths: Paths) -> None:
    import torch

    from .training import fit, save_model

    _, train, x, y, new_model = _context(params, paths)
    ident = _aligned(read_manifest(paths.identify, ["sample_id", "suspected"]), train.sample_ids, "identify.parquet")
    keep = torch.from_numpy(np.flatnonzero(~ident["suspected"].to_numpy()))
    model = fit(new_model(), x[keep], y[keep], config("train", params), balanced=True, desc="training on identified-clean samples")
    save_model(model, paths.clean)


@stage("relabel", ("relabel/decisions.parquet", "relabel/model.pt"))
def relabel(params, paths: Paths) -> None:
    import torch

    from .defenses.advrbd import decide
    from .training import fit, predict, save_model

    store, train, x, y, _ = _context(params, paths)
    cfg = config("relabel", params)
    ident = _aligned(read_manifest(paths.identify, ["sample_id", "suspected"]), train.sample_ids, "identify.parquet")
    model = _load(params, paths, store, paths.clean)
    dec = decide(predict(model, x), train.labels, ident["suspected"].to_numpy(), cfg.min_confidence, cfg.rescue_confidence)
    df = pl.DataFrame(
        {
            "sample_id": train.sample_ids,
            "label": train.labels,
            "decision": dec.decision,
            "new_label": dec.new_label,
            "confidence": dec.confidence,
            "reason": dec.reason,
        }
    )
    write_manifest(df, paths.decisions, "relabel", {"classes": store.classes})
    kept = torch.from_numpy(np.flatnonzero(dec.decision != "drop"))
    train_cfg = config("train", params)
    model = fit(model, x[kept], torch.from_numpy(dec.new_label)[kept], train_cfg, lr=cfg.lr, epochs=cfg.epochs, desc="fine-tuning on clean + relabelled")
    save_model(model, paths.defended)


@stage("evaluate", ("evaluate/metrics.json", "evaluate/plots"))
def evaluate(params, paths: Paths) -> None:
    from .evaluation import evaluate as run_evaluate

    run_evaluate(params, paths)
