"""Stage `identify`: flag the samples the enhanced model fits but the clean reference rejects
(in the classes partition suspects as targets, with identify.scope `targets`), and those
partition barred from D_s; pass on which of them partition found carrying a trigger."""

import numpy as np
import polars as pl

from stages import main


def run(cfg, paths) -> None:
    from sanitizer.manifest import aligned, meta_value, read_manifest, write_manifest
    from sanitizer.methods.advrbd import identify
    from sanitizer.progress import log
    from sanitizer.store import SampleStore

    ident = cfg["identify"]
    store = SampleStore(paths.store)
    train = store.rows("train")  # labels only
    ids = train["sample_id"].to_numpy()
    consistency = aligned(read_manifest(paths.rounds, ["sample_id", "consistency"]), ids, paths.rounds)["consistency"].to_numpy()
    part = aligned(read_manifest(paths.partition, ["sample_id", "subset", "trigger"]), ids, paths.partition)
    barred = part["subset"].to_numpy() == "barred"
    in_target = None
    if ident.scope == "targets":
        targets = meta_value(paths.partition, "suspected_targets", default=[])
        in_target = np.isin(train["label"].to_numpy(), [store.classes.index(c) for c in targets])
        log(f"identify: the consistency flags only in {', '.join(targets)}, suspected as backdoor target(s) by partition" if targets else "identify: partition suspects no class as a backdoor target, so only barred samples are flagged")
    suspected = identify(consistency, ident.threshold, barred, in_target)
    df = pl.DataFrame({"sample_id": ids, "consistency": consistency, "suspected": suspected, "trigger": part["trigger"].to_numpy()})
    write_manifest(df, paths.identify, "identify")


if __name__ == "__main__":
    main("identify")
