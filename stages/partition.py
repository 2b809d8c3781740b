"""Stage `partition`: the most trusted samples seed the trusted set D_s (Alg. 1); with the opt-in
gap filter, high-gap samples of a suspected target class are barred from D_s."""

import numpy as np
import polars as pl

from stages import main


def run(cfg, paths) -> None:
    from sanitizer.methods.advrbd import partition as split_seed
    from sanitizer.manifest import read_manifest, write_manifest

    part = cfg["partition"]
    scores = read_manifest(paths.scores, ["sample_id", "score", "loss", "gap"])
    barred, targets = np.zeros(len(scores), dtype=bool), []
    if part.max_gap is not None:
        barred, targets = bar_by_gap(part, paths, scores)
    seed = split_seed(scores["score"].to_numpy(), scores["loss"].to_numpy(), part.rate, part.by, eligible=~barred)
    subset = np.where(seed, "seed", np.where(barred, "barred", "rest"))
    df = pl.DataFrame({"sample_id": scores["sample_id"], "subset": subset})
    write_manifest(df, paths.partition, "partition", {"suspected_targets": targets})


def bar_by_gap(part, paths, scores: pl.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Samples barred from D_s: a high purification gap inside a suspected target class."""
    from sanitizer.manifest import aligned
    from sanitizer.progress import log
    from sanitizer.purification import class_anomaly
    from sanitizer.store import SampleStore

    store = SampleStore(paths.store)
    train = store.rows("train")  # labels only: the images are not needed here
    gap = aligned(scores, train["sample_id"].to_numpy(), paths.scores)["gap"].to_numpy()
    labels = train["label"].to_numpy()
    anomaly = class_anomaly(gap, labels, len(store.classes), part.target_gap)
    targets = np.flatnonzero(anomaly > part.min_anomaly)
    barred = np.isin(labels, targets) & (gap > part.max_gap)
    top = int(np.argmax(anomaly))
    if not len(targets):
        log(f"partition: no class looks like a backdoor target by purification gap (highest anomaly index {anomaly[top]:.1f}, {store.classes[top]})")
    for c in targets:
        log(f"partition: {store.classes[c]} looks like a backdoor target (anomaly index {anomaly[c]:.1f}); {int((barred & (labels == c)).sum())} of its samples barred from D_s")
    return barred, [store.classes[c] for c in targets]


if __name__ == "__main__":
    main("partition")
