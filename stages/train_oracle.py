"""Stage `train_oracle`: the benchmark's upper bound, the same recipe on the truly clean subset.
It reads the ground truth, so it is no defense stage."""

import numpy as np

from stages import main


def run(cfg, paths) -> None:
    import torch

    from sanitizer.manifest import read_aligned
    from sanitizer.training import TrainSet, fit, save_model

    data = TrainSet(paths.store, cfg["model"].arch)
    truth = read_aligned(paths.truth, ["is_poison"], data.split.sample_ids)
    keep = torch.from_numpy(np.flatnonzero(~truth["is_poison"].to_numpy()))
    model = fit(data.new_model(cfg["train"].seed), data.x[keep], data.y[keep], cfg["train"], desc="training the oracle")
    save_model(model, paths.oracle)


if __name__ == "__main__":
    main("train_oracle")
