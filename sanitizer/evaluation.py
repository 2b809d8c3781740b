"""The evaluate stage: ACC and ASR of every model, detection quality against ground truth, and
the plot tables. The only place, with train_oracle and inspect, that reads truth.parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from .errors import SanitizerError
from .io import atomic_path, read_json, write_json
from .layout import TIMED_STAGES
from .manifest import meta_value, read_aligned
from .metrics import auroc, detection, roc_curve
from .store import SampleStore
from .training import as_tensor, load_model, predict

MODELS_EVALUATED = {"no_defense": "suspect", "oracle": "oracle", "clean": "clean", "defended": "defended"}


class Bench:
    """Clean test images for ACC and triggered non-target test images for ASR."""

    def __init__(self, arch: str, store: SampleStore, asr: Path):
        test = store.split("test")
        self.arch = arch
        self.store = store
        self.x, self.y = as_tensor(test.images), as_tensor(test.labels)
        try:
            self.x_bd = as_tensor(np.load(asr / "images.npy"))
            self.y_bd = as_tensor(np.load(asr / "targets.npy"))
        except (OSError, ValueError) as e:
            raise SanitizerError(f"{asr} is missing or damaged ({e}); re-run ingest") from None
        if self.x_bd.shape[1:] != self.x.shape[1:] or len(self.x_bd) != len(self.y_bd):
            raise SanitizerError(f"{asr} holds images of shape {tuple(self.x_bd.shape[1:])}, the store {tuple(self.x.shape[1:])}: it comes from another run; re-run ingest")

    def model(self, path: Path):
        return load_model(path, self.arch, self.store.image_shape, len(self.store.classes))

    def measure(self, model) -> dict:
        acc = (predict(model, self.x).argmax(1) == self.y).float().mean().item()
        asr = (predict(model, self.x_bd).argmax(1) == self.y_bd).float().mean().item() if len(self.y_bd) else None
        return {"acc": acc, "asr": asr}



def evaluate(cfg, paths) -> None:
    store = SampleStore(paths.store)
    bench = Bench(cfg["model"].arch, store, paths.asr)
    # Every manifest must describe this store's train split, in its order: one left over from
    # another run would otherwise give a silently wrong metrics.json.
    ids = store.rows("train")["sample_id"].to_numpy()
    truth = read_aligned(paths.truth, ["is_poison", "is_cover", "original_label"], ids)
    # The attack ingest actually ran, not today's params: a run by hand with other params must
    # not treat a clean store's (all-False) truth as a benchmark, or a benchmark's as clean.
    has_truth = meta_value(paths.truth, "attack") != "none"
    decisions = read_aligned(paths.decisions, ["decision", "new_label", "label"], ids)
    scores = read_aligned(paths.scores, ["score", "loss", "gap"], ids)
    rounds = read_aligned(paths.rounds, ["consistency", "joined_round"], ids)
    is_poison, is_cover = truth["is_poison"].to_numpy(), truth["is_cover"].to_numpy()
    flagged = decisions["decision"].to_numpy() != "keep"

    metrics: dict = {name: bench.measure(bench.model(getattr(paths, attr))) for name, attr in MODELS_EVALUATED.items()}
    metrics["decisions"] = {d: int((decisions["decision"] == d).sum()) for d in ("keep", "drop", "relabel")}
    metrics["decisions"]["dropped_fraction"] = metrics["decisions"]["drop"] / len(decisions)
    metrics["flagged_per_class"] = _flagged_per_class(decisions, store.classes)
    metrics["wall_seconds"] = _wall_seconds(paths.root)
    if has_truth:
        metrics["detection"] = {
            **detection(flagged, is_poison),
            "auroc": auroc(rounds["consistency"].to_numpy(), is_poison),
            "auroc_robustness_score": auroc(-scores["score"].to_numpy(), is_poison),
            "auroc_loss_baseline": auroc(-scores["loss"].to_numpy(), is_poison),
            "auroc_purification_gap": auroc(scores["gap"].to_numpy(), is_poison),
            "relabel_accuracy": _relabel_accuracy(decisions, truth),
            # Cover samples keep their true label: flagging them costs data, not safety.
            "cover_flagged": float(flagged[is_cover].mean()) if is_cover.any() else None,
        }
    else:
        metrics["detection"] = {"flagged": int(flagged.sum()), "fpr": float(flagged.mean())}
    round_rows = _round_rows(bench, paths)
    metrics["rounds"] = round_rows
    write_json(paths.metrics, metrics)
    _write_plots(paths.plots, scores, rounds, is_poison if has_truth else None, round_rows)


def _flagged_per_class(decisions: pl.DataFrame, classes: list[str]) -> dict:
    counts = decisions.filter(pl.col("decision") != "keep").group_by("label").len()
    by_label = dict(zip(counts["label"].to_list(), counts["len"].to_list()))
    return {name: int(by_label.get(i, 0)) for i, name in enumerate(classes)}


def _relabel_accuracy(decisions: pl.DataFrame, truth: pl.DataFrame) -> float | None:
    joined = decisions.join(truth, on="sample_id").filter((pl.col("decision") == "relabel") & pl.col("is_poison"))
    if len(joined) == 0:
        return None
    return float((joined["new_label"] == joined["original_label"]).mean())


def _wall_seconds(root: Path) -> dict:
    out = {}
    for name in TIMED_STAGES:
        timing = root / name / "timing.json"
        if timing.exists():
            out[name] = read_json(timing)["wall_seconds"]
    out["total"] = round(sum(out.values()), 2)
    return out


def _round_rows(bench: Bench, paths) -> list[dict]:
    rows = []
    for enhanced in sorted(paths.snapshots.glob("round-*-enhanced.pt"), key=lambda p: int(p.name.split("-")[1])):
        k = int(enhanced.name.split("-")[1])
        e = bench.measure(bench.model(enhanced))
        c = bench.measure(bench.model(enhanced.with_name(f"round-{k}-clean.pt")))
        rows.append({"round": k, "enhanced_acc": e["acc"], "enhanced_asr": e["asr"], "clean_acc": c["acc"], "clean_asr": c["asr"]})
    return rows


def _write_plots(directory: Path, scores: pl.DataFrame, rounds: pl.DataFrame, is_poison, round_rows) -> None:
    with atomic_path(directory) as tmp:
        tmp.mkdir()
        log_r = np.log10(np.clip(scores["score"].to_numpy(), 1e-12, None))
        edges = np.linspace(log_r.min(), log_r.max() + 1e-9, 41)
        groups = {"all": np.ones(len(log_r), bool)} if is_poison is None else {"clean": ~is_poison, "poisoned": is_poison}
        hist = [
            {"log10_score": float((edges[i] + edges[i + 1]) / 2), "group": g, "count": int(c)}
            for g, m in groups.items()
            for i, c in enumerate(np.histogram(log_r[m], edges)[0])
        ]
        pl.DataFrame(hist).write_csv(tmp / "score_distribution.csv")
        if is_poison is not None:
            roc = [
                {**row, "score": name}
                for name, s in (("consistency", rounds["consistency"].to_numpy()), ("robustness", -scores["score"].to_numpy()), ("loss", -scores["loss"].to_numpy()), ("purification gap", scores["gap"].to_numpy()))
                for row in roc_curve(s, is_poison)
            ]
            pl.DataFrame(roc).write_csv(tmp / "roc.csv")
        if round_rows:
            pl.DataFrame(round_rows).write_csv(tmp / "rounds.csv")
