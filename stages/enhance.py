"""Stage `enhance`: backdoor-enhanced training (Eq. 4, Alg. 2), growing D_s each round; writes each
sample's consistency and the round it joined D_s, the enhanced model, and E and C of every round."""

import polars as pl

from stages import main


def run(cfg, paths) -> None:
    import torch

    from sanitizer.methods.advrbd import enhance
    from sanitizer.io import atomic_path
    from sanitizer.manifest import read_aligned, write_manifest
    from sanitizer.training import TrainSet, save_model

    data = TrainSet(paths.store, cfg["model"].arch)
    subset = read_aligned(paths.partition, ["subset"], data.split.sample_ids)["subset"].to_numpy()
    new_model = lambda: data.new_model(cfg["train"].seed)  # noqa: E731
    result = enhance(data.load(paths.suspect), new_model, data.x, data.y, subset == "seed", cfg["enhance"], cfg["train"], barred=subset == "barred")
    df = pl.DataFrame({"sample_id": data.split.sample_ids, "joined_round": result.joined_round, "consistency": result.consistency})
    write_manifest(df, paths.rounds, "enhance", {"joined_round": "round the sample entered D_s; 0 = seed, -1 = never"})
    save_model(result.enhanced, paths.enhanced)
    with atomic_path(paths.snapshots) as tmp:
        tmp.mkdir()
        for k, (enhanced, clean) in enumerate(result.snapshots, start=1):
            torch.save(enhanced, tmp / f"round-{k}-enhanced.pt")
            torch.save(clean, tmp / f"round-{k}-clean.pt")


if __name__ == "__main__":
    main("enhance")
