"""Stage `ingest`: load the dataset, poison its train split for benchmark runs, and write the
sample store. The ground truth and the attacker's test-time inputs go to files of their own that
only evaluation reads."""

import numpy as np
import polars as pl

from stages import main


def run(cfg, paths) -> None:
    from sanitizer.attacks import build_attack
    from sanitizer.datasets import load_dataset, require_trainable
    from sanitizer.io import atomic_path
    from sanitizer.manifest import write_manifest
    from sanitizer.store import RawDataset, write_store

    raw = load_dataset(cfg["data"])
    require_trainable(raw)
    if not (raw.images.flags.writeable and raw.labels.flags.writeable):  # a read-only buffer from the source
        raw = RawDataset(raw.images.copy(), raw.labels.copy(), raw.splits, raw.sample_ids, raw.classes, raw.name)
    attack_cfg = cfg["attack"]
    attack = build_attack(attack_cfg, raw.images.shape[1:], len(raw.classes))
    train, test = raw.split("train"), raw.split("test")
    clean_labels = raw.labels[train]
    poisoned = attack.poison(raw.images[train], clean_labels)
    # Into the loaded arrays in place: a copy of the whole dataset would double ingest's memory.
    raw.images[train], raw.labels[train] = poisoned.images, poisoned.labels
    write_store(paths.store, raw)
    truth = pl.DataFrame(
        {
            "sample_id": raw.sample_ids[train].astype(str),
            "is_poison": poisoned.is_poison,
            "is_cover": poisoned.is_cover,
            "original_label": clean_labels.astype(np.int64),
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
        np.save(tmp / "images.npy", np.ascontiguousarray(attack.trigger_test(raw.images[asr])))  # test rows: never poisoned
        np.save(tmp / "targets.npy", attack.target_labels(raw.labels[asr]).astype(np.int64))


if __name__ == "__main__":
    main("ingest")
