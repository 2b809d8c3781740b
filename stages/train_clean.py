"""Stage `train_clean`: a fresh model on the identified-clean samples, class-balanced, less a
random held-out share that relabel uses to see how it judges clean data it never saw. A
person's reviews come first: it trains on what they kept or relabelled (with their label),
never on what they dropped."""

import numpy as np
import polars as pl

from stages import main


def run(cfg, paths) -> None:
    import torch

    from sanitizer import reviews
    from sanitizer.decisions import holdout_mask
    from sanitizer.manifest import read_aligned, write_manifest
    from sanitizer.training import TrainSet, fit, save_model

    data = TrainSet(paths.store, cfg["model"].arch)
    ids, classes = data.split.sample_ids, data.store.classes
    suspected = read_aligned(paths.suspicion, ["suspected"], ids)["suspected"].to_numpy()
    said = reviews.load(paths.reviews, ids, data.split.labels, classes)
    trainable = np.where(said.reviewed, said.decision != "drop", ~suspected)
    held = holdout_mask(trainable, cfg["train_clean"].holdout, cfg["train_clean"].seed)
    keep = torch.from_numpy(np.flatnonzero(trainable & ~held))
    labels = torch.from_numpy(said.label)[keep]
    model = fit(data.new_model(cfg["train"].seed), data.x[keep], labels, cfg["train"], balanced=True, desc="training on identified-clean samples")
    save_model(model, paths.clean)
    write_manifest(pl.DataFrame({"sample_id": ids, "held_out": held}), paths.holdout, "train_clean")


if __name__ == "__main__":
    main("train_clean")
