"""Stage `identify`: flag the samples the enhanced model fits but the clean reference rejects
(in the classes partition suspects as targets, with identify.scope `targets`), those
partition barred from D_s, and those of a suspected target whose pixels carry the stamp its
barred samples share (sanitizer/stamp.py); pass on which of them partition found carrying a
trigger."""

import numpy as np
import polars as pl

from stages import main


def run(cfg, paths) -> None:
    from sanitizer.manifest import aligned, meta_value, read_manifest, write_manifest
    from sanitizer.methods.advrbd import identify
    from sanitizer.progress import log
    from sanitizer.stamp import stamps
    from sanitizer.store import SampleStore

    ident = cfg["identify"]
    store = SampleStore(paths.store)
    train = store.rows("train")  # labels only
    ids = train["sample_id"].to_numpy()
    consistency = aligned(read_manifest(paths.rounds, ["sample_id", "consistency"]), ids, paths.rounds)["consistency"].to_numpy()
    part = aligned(read_manifest(paths.partition, ["sample_id", "subset", "trigger"]), ids, paths.partition)
    barred = part["subset"].to_numpy() == "barred"
    labels, classes = train["label"].to_numpy(), store.classes
    targets = meta_value(paths.partition, "suspected_targets", default=[])
    target_ids = [classes.index(c) for c in targets]
    in_target = None
    if ident.scope == "targets":
        in_target = np.isin(labels, target_ids)
        log(f"identify: the consistency flags only in {', '.join(targets)}, suspected as backdoor target(s) by partition" if targets else "identify: partition suspects no class as a backdoor target, so only barred samples are flagged")
    suspected = identify(consistency, ident.threshold, barred, in_target)
    images = store.images("train", len(ids)) if targets else None
    for c, stamp in stamps(images, labels, barred, target_ids, len(classes)).items():
        if stamp.found:
            log(f"identify: {classes[c]}'s barred samples share a stamp of {len(stamp.pixels)} pixel values; {int(stamp.carriers.sum())} of its samples carry at least half as many as their median, {int((stamp.carriers & ~suspected).sum())} of them not yet flagged")
            suspected |= stamp.carriers
    df = pl.DataFrame({"sample_id": ids, "consistency": consistency, "suspected": suspected, "trigger": part["trigger"].to_numpy()})
    write_manifest(df, paths.identify, "identify")


if __name__ == "__main__":
    main("identify")
