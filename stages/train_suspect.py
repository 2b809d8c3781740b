"""Stage `train_suspect`: train on the untrusted set as given. This is also the no-defense model."""

from stages import main


def run(cfg, paths) -> None:
    from sanitizer.training import TrainSet, fit, save_model

    data = TrainSet(paths.store, cfg["model"].arch)
    model = fit(data.new_model(cfg["train"].seed), data.x, data.y, cfg["train"], desc="training on the untrusted set")
    save_model(model, paths.suspect)


if __name__ == "__main__":
    main("train_suspect")
