"""Stage `train_clean`: a fresh model on the identified-clean samples, class-balanced."""

import numpy as np

from stages import main


def run(cfg, paths) -> None:
    import torch

    from sanitizer.manifest import read_aligned
    from sanitizer.training import TrainSet, fit, save_model

    data = TrainSet(paths.store, cfg["model"].arch)
    suspected = read_aligned(paths.suspicion, ["suspected"], data.split.sample_ids)["suspected"].to_numpy()
    keep = torch.from_numpy(np.flatnonzero(~suspected))
    model = fit(data.new_model(cfg["train"].seed), data.x[keep], data.y[keep], cfg["train"], balanced=True, desc="training on identified-clean samples")
    save_model(model, paths.clean)


if __name__ == "__main__":
    main("train_clean")
