"""Stage `train_clean`: a fresh model on the identified-clean samples, class-balanced. A
person's reviews come first: it trains on what they kept or relabelled (with their label),
never on what they dropped."""

import numpy as np

from stages import main


def run(cfg, paths) -> None:
    import torch

    from sanitizer import reviews
    from sanitizer.manifest import read_aligned
    from sanitizer.training import TrainSet, fit, save_model

    data = TrainSet(paths.store, cfg["model"].arch)
    ids, classes = data.split.sample_ids, data.store.classes
    suspected = read_aligned(paths.suspicion, ["suspected"], ids)["suspected"].to_numpy()
    said = reviews.load(paths.reviews, ids, data.split.labels, classes)
    keep = torch.from_numpy(np.flatnonzero(np.where(said.reviewed, said.decision != "drop", ~suspected)))
    labels = torch.from_numpy(said.label)[keep]
    model = fit(data.new_model(cfg["train"].seed), data.x[keep], labels, cfg["train"], balance="loss", desc="training on identified-clean samples")
    save_model(model, paths.clean)


if __name__ == "__main__":
    main("train_clean")
