"""Stage `partition`: the most trusted samples seed the trusted set D_s (Alg. 1). Two filters
keep poisons out of it: in a class that looks like a backdoor target, samples with a high
purification gap, and the smaller of its two activation clusters, are barred from D_s."""

import numpy as np
import polars as pl

from stages import main


def run(cfg, paths) -> None:
    from sanitizer.manifest import aligned, read_manifest, write_manifest
    from sanitizer.methods.advrbd import partition as split_seed
    from sanitizer.store import SampleStore

    part = cfg["partition"]
    store = SampleStore(paths.store)
    train = store.rows("train")  # labels only: the images are not needed here
    scores = aligned(read_manifest(paths.scores, ["sample_id", "score", "loss", "gap"]), train["sample_id"].to_numpy(), paths.scores)
    labels = train["label"].to_numpy()
    barred, targets = np.zeros(len(scores), dtype=bool), {}
    if part.max_gap is not None:
        by_gap, targets["gap"] = bar_by_gap(part, scores["gap"].to_numpy(), labels, store.classes)
        barred |= by_gap
    if part.cluster_anomaly is not None:
        by_cluster, targets["clusters"] = bar_by_cluster(cfg, paths, labels, store.classes)
        barred |= by_cluster
    seed = split_seed(scores["score"].to_numpy(), scores["loss"].to_numpy(), part.rate, part.by, eligible=~barred)
    subset = np.where(seed, "seed", np.where(barred, "barred", "rest"))
    df = pl.DataFrame({"sample_id": scores["sample_id"], "subset": subset})
    suspected = sorted({c for found in targets.values() for c in found}, key=store.classes.index)
    write_manifest(df, paths.partition, "partition", {"suspected_targets": suspected, "suspected_by": targets})


def bar_by_gap(part, gap: np.ndarray, labels: np.ndarray, classes: list[str]) -> tuple[np.ndarray, list[str]]:
    """Samples barred from D_s: a high purification gap inside a suspected target class."""
    from sanitizer.purification import class_anomaly

    anomaly = class_anomaly(gap, labels, len(classes), part.target_gap)
    targets = np.flatnonzero(anomaly > part.min_anomaly)
    return _report("purification gap", np.isin(labels, targets) & (gap > part.max_gap), anomaly, targets, labels, classes)


def bar_by_cluster(cfg, paths, labels: np.ndarray, classes: list[str]) -> tuple[np.ndarray, list[str]]:
    """Samples barred from D_s: the smaller activation cluster of a class whose two clusters lie
    unusually far apart (the suspect's penultimate features)."""
    from sanitizer.methods.clustering import separation
    from sanitizer.metrics import mad_anomaly
    from sanitizer.training import TrainSet, predict

    data = TrainSet(paths.store, cfg["model"].arch)
    features = predict(data.load(paths.suspect), data.x, features=True, desc="suspect features")
    sep, small = separation(features, labels, len(classes), cfg["partition"].cluster_dims)
    anomaly = mad_anomaly(sep, 1e-12)
    targets = np.flatnonzero(anomaly > cfg["partition"].cluster_anomaly)
    return _report("activation clusters", np.isin(labels, targets) & small, anomaly, targets, labels, classes)


def _report(signal: str, barred: np.ndarray, anomaly: np.ndarray, targets: np.ndarray, labels: np.ndarray, classes: list[str]) -> tuple[np.ndarray, list[str]]:
    from sanitizer.progress import log

    top = int(np.argmax(anomaly))
    if not len(targets):
        log(f"partition: no class looks like a backdoor target by {signal} (highest anomaly index {anomaly[top]:.1f}, {classes[top]})")
    for c in targets:
        log(f"partition: {classes[c]} looks like a backdoor target by {signal} (anomaly index {anomaly[c]:.1f}); {int((barred & (labels == c)).sum())} of its samples barred from D_s")
    return barred, [classes[c] for c in targets]


if __name__ == "__main__":
    main("partition")
