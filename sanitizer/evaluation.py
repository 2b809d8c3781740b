"""The evaluate stage: ACC, ASR and robust accuracy of every model, detection quality against ground truth, and
the plot tables. The only place, with train_oracle and inspect, that reads truth.parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import torch

from .errors import SanitizerError
from .io import atomic_path, read_json, write_json
from .layout import TIMED_STAGES
from .manifest import meta_value, read_aligned
from .methods.base import signal_names
from .metrics import auroc, detection, roc_curve
from .steps import adversarial
from .store import SampleStore
from .training import as_tensor, load_model, log_prob_at_label, predict, to_float


class Bench:
    """Clean test images for ACC and robust accuracy, triggered non-target test images for ASR."""

    def __init__(self, arch: str, store: SampleStore, asr: Path, cfg):
        test = store.split("test")
        self.arch = arch
        self.store = store
        self.cfg = cfg
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
        bs = self.cfg.batch_size
        acc = (predict(model, self.x, bs).argmax(1) == self.y).float().mean().item()
        asr = (predict(model, self.x_bd, bs).argmax(1) == self.y_bd).float().mean().item() if len(self.y_bd) else None
        return {"acc": acc, "asr": asr, "robust_acc": self.robust_accuracy(model)}

    def robust_accuracy(self, model) -> float | None:
        """Accuracy under untargeted PGD at the true label, on the first `robust_samples` clean
        test images (they are in sample_id order). Seeded, so every model meets the same start."""
        n = min(self.cfg.robust_samples, len(self.x))
        if n == 0:
            return None
        device = next(model.parameters()).device
        generator = torch.Generator().manual_seed(0)
        correct = 0
        for start in range(0, n, self.cfg.batch_size):
            sl = slice(start, min(n, start + self.cfg.batch_size))
            x, y = to_float(self.x[sl], device), self.y[sl].to(device)
            x_adv = adversarial(model, x, y, self.cfg.robust_eps, self.cfg.robust_steps, generator) if self.cfg.robust_eps > 0 else x
            with torch.no_grad():
                correct += int((model(x_adv).argmax(1) == y).sum())
        return correct / n



def evaluate(cfg, paths) -> None:
    store = SampleStore(paths.store)
    ev = cfg["evaluate"]
    bench = Bench(cfg["model"].arch, store, paths.asr, ev)
    # Every manifest must describe this store's train split, in its order: one left over from
    # another run would otherwise give a silently wrong metrics.json.
    ids = store.rows("train")["sample_id"].to_numpy()
    truth = read_aligned(paths.truth, ["is_poison", "is_cover", "original_label"], ids)
    # The attack ingest actually ran, not today's params: a run by hand with other params must
    # not treat a clean store's (all-False) truth as a benchmark, or a benchmark's as clean.
    has_truth = meta_value(paths.truth, "attack") != "none"
    decisions = read_aligned(paths.decisions, ["decision", "new_label", "label", "source", "method_decision"], ids)
    signal_list = signal_names(paths.suspicion)
    suspicion = read_aligned(paths.suspicion, signal_list, ids)
    is_poison, is_cover = truth["is_poison"].to_numpy(), truth["is_cover"].to_numpy()
    # Detection quality is the method's own: a person's overrides are counted apart.
    flagged = decisions["method_decision"].to_numpy() != "keep"

    suspect = bench.model(paths.suspect)
    models = {"no_defense": suspect, "oracle": bench.model(paths.oracle)}
    models.update({p.stem: bench.model(p) for p in sorted(paths.method_models.glob("*.pt"))})
    models.update({"clean": bench.model(paths.clean), "defended": bench.model(paths.defended)})
    metrics: dict = {name: bench.measure(model) for name, model in models.items()}
    metrics["method"] = {"name": meta_value(paths.suspicion, "method"), **meta_value(paths.suspicion, "summary")}
    metrics["decisions"] = {d: int((decisions["decision"] == d).sum()) for d in ("keep", "drop", "relabel")}
    metrics["decisions"]["dropped_fraction"] = metrics["decisions"]["drop"] / len(decisions)
    metrics["decisions"]["reviewed"] = int((decisions["source"] == "review").sum())
    metrics["flagged_per_class"] = _flagged_per_class(decisions, store.classes)
    metrics["wall_seconds"] = _wall_seconds(paths.root)
    metrics["peak_rss_mib"] = _stage_records(paths.root, "peak_rss_mib")
    # Every signal the method declares, beside the loss baseline on the same suspect model.
    signals = {name: suspicion[name].to_numpy() for name in signal_list}
    signals["loss_baseline"] = log_prob_at_label(suspect, *_train_tensors(store))
    if has_truth:
        metrics["detection"] = {
            **detection(flagged, is_poison),
            "suspected_by_method": int(suspicion["suspected"].sum()),
            "auroc": {name: auroc(s, is_poison) for name, s in signals.items()},
            "relabel_accuracy": _relabel_accuracy(decisions, truth),
            # Cover samples keep their true label: flagging them costs data, not safety.
            "cover_flagged": float(flagged[is_cover].mean()) if is_cover.any() else None,
        }
    else:
        metrics["detection"] = {"flagged": int(flagged.sum()), "fpr": float(flagged.mean()), "suspected_by_method": int(suspicion["suspected"].sum())}
    write_json(paths.metrics, metrics)
    _write_plots(paths.plots, signals, is_poison if has_truth else None)


def _train_tensors(store: SampleStore):
    train = store.split("train")
    return as_tensor(train.images), as_tensor(train.labels)


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
    out = _stage_records(root, "wall_seconds")
    out["total"] = round(sum(out.values()), 2)
    return out


def _stage_records(root: Path, key: str) -> dict:
    """One figure of every timed stage's record (timing.json), by stage."""
    out = {}
    for name in TIMED_STAGES:
        timing = root / name / "timing.json"
        if timing.exists() and key in (record := read_json(timing)):
            out[name] = record[key]
    return out


def _write_plots(directory: Path, signals: dict[str, np.ndarray], is_poison) -> None:
    """The suspicion score's distribution (poisoned vs clean when truth exists) and, in a
    benchmark, the ROC of every signal: CSV for `dvc plots`, PNG to look at."""
    from . import plots

    with atomic_path(directory) as tmp:
        tmp.mkdir()
        score = signals["suspicion"]
        edges = np.linspace(score.min(), score.max() + 1e-9, 41)
        groups = {"all": np.ones(len(score), bool)} if is_poison is None else {"clean": ~is_poison, "poisoned": is_poison}
        hist = pl.DataFrame(
            [
                {"suspicion": float((edges[i] + edges[i + 1]) / 2), "group": g, "count": int(c)}
                for g, m in groups.items()
                for i, c in enumerate(np.histogram(score[m], edges)[0])
            ]
        )
        hist.write_csv(tmp / "score_distribution.csv")
        plots.score_distribution(hist, tmp / "score_distribution.png")
        if is_poison is not None:
            roc = pl.DataFrame([{**row, "signal": name} for name, s in signals.items() for row in roc_curve(s, is_poison)])
            roc.write_csv(tmp / "roc.csv")
            plots.roc(roc, {name: auroc(s, is_poison) for name, s in signals.items()}, tmp / "roc.png")
