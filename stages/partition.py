"""Stage `partition`: the most trusted samples seed the trusted set D_s (Alg. 1). Four filters
keep poisons out of it: in a class that looks like a backdoor target, samples with a high
purification gap, the smaller of its two activation clusters, and the one of its pixels'
two populations the other classes lack (a trigger: column `trigger`) are barred from D_s, and
in a class none of these names, the carriers of a pixel stamp its smaller cluster shares; so
are the samples of a target that stands out from the other classes whose label the suspect
does not fit. A class keeps its share of the seed: what the bars took is made up from the middle of
its trust order, and a class only the gap singles out takes its whole share from there. A
class that the named classes' clusters all point toward (their cover samples moved toward the
target by its trigger) takes its share from its samples least far in that direction, and
those classes are no longer suspected as targets."""

import numpy as np
import polars as pl

from stages import main


def run(cfg, paths) -> None:
    from sanitizer.manifest import aligned, read_manifest, write_manifest
    from sanitizer.methods.advrbd import bar_by_gap, bar_unfit, image_bars, middle_classes, standout_classes
    from sanitizer.methods.advrbd import partition as split_seed
    from sanitizer.progress import log
    from sanitizer.store import SampleStore
    from sanitizer.training import TrainSet, predict

    part = cfg["partition"]
    store = SampleStore(paths.store)
    train = store.rows("train")  # labels only: the images are not needed for the gap filter
    scores = aligned(read_manifest(paths.scores, ["sample_id", "score", "loss", "gap"]), train["sample_id"].to_numpy(), paths.scores)
    labels, classes = train["label"].to_numpy(), store.classes
    score, loss = scores["score"].to_numpy(), scores["loss"].to_numpy()
    bars = {}
    if part.max_gap is not None:
        bars["gap"] = bar_by_gap(scores["gap"].to_numpy(), labels, len(classes), part)
    # Both image filters read the train images: load them once.
    data = TrainSet(paths.store, cfg["model"].arch) if part.clusters or part.pattern_kurtosis is not None else None
    if data is not None:
        features = predict(data.load(paths.suspect), data.x, features=True, desc="suspect features") if part.clusters else None
        bars.update(image_bars(features, data.split.images, labels, len(classes), part))
    barred = np.zeros(len(labels), dtype=bool)
    for by, bar in bars.items():
        _report(by, bar, labels, classes)
        barred |= bar.barred
    if part.target_fit is not None:
        unfit = bar_unfit(loss, labels, standout_classes(bars), part.target_fit)
        if unfit.any():
            log(f"partition: {int((unfit & ~barred).sum())} more samples barred from D_s: in a target that stands out from the other classes, the suspect gives their label less than {part.target_fit}")
        barred |= unfit
    middle = middle_classes(bars)
    for c in middle:
        log(f"partition: {classes[c]}'s share of D_s comes from the middle of its trust order: the purification gap singles it out, but its activation clusters do not")
    own = {c: bars["shift"].trust for c in bars["shift"].seeded} if "shift" in bars else {}
    seed = split_seed(score, loss, part.rate, part.by, ~barred, labels, middle, own)
    share = split_seed(score, loss, part.rate, part.by)  # the places before the bars, for the log
    for c in np.setdiff1d(np.unique(labels[share & barred]), [*middle, *own]):
        log(f"partition: {int((share & barred & (labels == c)).sum())} of {classes[c]}'s {int((share & (labels == c)).sum())} places in D_s are barred: made up from the middle of its trust order")
    subset = np.where(seed, "seed", np.where(barred, "barred", "rest"))
    trigger = bars["pattern"].barred if "pattern" in bars else np.zeros(len(labels), dtype=bool)
    df = pl.DataFrame({"sample_id": scores["sample_id"], "subset": subset, "trigger": trigger})
    targets = {by: [classes[c] for c in bar.targets] for by, bar in bars.items()}
    covers = [classes[c] for c in bars["shift"].covers] if "shift" in bars else []
    suspected = sorted({c for found in targets.values() for c in found} - set(covers), key=classes.index)
    write_manifest(df, paths.partition, "partition", {"suspected_targets": suspected, "suspected_by": targets, **({"cover_classes": covers} if covers else {})})


SIGNALS = {"gap": "purification gap", "clusters": "activation clusters"}


def _report(by: str, bar, labels: np.ndarray, classes: list[str]) -> None:
    from sanitizer.progress import log

    if by == "pattern":
        if np.isnan(bar.anomaly).all():
            log("partition: no class's pixels vary, so none is searched for a pattern")
            return
        top = int(np.nanargmax(bar.anomaly))
        if not len(bar.targets):
            log(f"partition: no class's pixels hold two populations (flattest independent component: excess kurtosis {-bar.anomaly[top]:.2f}, {classes[top]}; a uniform's is -1.2)")
        for c in bar.targets:
            log(f"partition: {classes[c]}'s pixels hold two populations (flattest independent component: excess kurtosis {-bar.anomaly[c]:.2f}); {int((bar.barred & (labels == c)).sum())} samples in the population the other classes lack barred from D_s as carrying a trigger")
        return
    if by == "shift":
        _report_shift(bar, classes)
        return
    if by == "stamp":
        for c in bar.targets:
            log(f"partition: {classes[c]}'s smaller activation cluster shares a stamp in its pixels that its images hold whole or not at all (count valley {-bar.anomaly[c]:.2f}); its {int((bar.barred & (labels == c)).sum())} carriers barred from D_s as carrying a trigger")
        if not len(bar.targets):
            log("partition: no further class's smaller activation cluster shares a stamp its images hold whole or not at all")
        return
    top = int(np.argmax(bar.anomaly))
    if not len(bar.targets):
        log(f"partition: no class looks like a backdoor target by {SIGNALS[by]} (highest anomaly index {bar.anomaly[top]:.1f}, {classes[top]})")
    for c in bar.targets:
        contrast = "" if bar.contrast is None else f", {bar.contrast[c]:.1f}x a Gaussian's split, {bar.axis[c]:.1f}x along the clusters' axis, valley {bar.valley[c]:.2f}"
        log(f"partition: {classes[c]} looks like a backdoor target by {SIGNALS[by]} (anomaly index {bar.anomaly[c]:.1f}{contrast}); {int((bar.barred & (labels == c)).sum())} of its samples barred from D_s")


def _report_shift(bar, classes: list[str]) -> None:
    from sanitizer.progress import log

    if not len(bar.seeded):
        top = int(np.argmax(bar.anomaly))
        log(f"partition: named classes' activation clusters split alike, but no class lies far out that way (highest anomaly index {bar.anomaly[top]:.1f}, {classes[top]})")
        return
    target = bar.seeded[0]
    found = "now suspected as the backdoor's target" if target in bar.targets else "a suspected target already"
    split = ", ".join(classes[c] for c in bar.covers) or "named classes"
    log(f"partition: {split} split toward {classes[target]} (anomaly index {bar.anomaly[target]:.1f}), {found}: its share of D_s comes from its samples least far that way")
    if len(bar.covers):
        log(f"partition: {split} hold the trigger's cover samples (its images under their own label) in their smaller clusters, so they are no targets; their barred samples stay suspected")


if __name__ == "__main__":
    main("partition")
