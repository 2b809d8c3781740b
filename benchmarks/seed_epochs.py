"""Does a longer-trained suspect model give a cleaner seed? Re-trains the suspect model of a
finished grid row for each given number of epochs (the rest of params.yaml unchanged) and counts
poisons and covers in the seed D_s it gives, partitioned by loss as params.yaml does.

    python benchmarks/seed_epochs.py benchmarks/runs/grid-fmnist-tact 3 10"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from sanitizer.config import config
from sanitizer.methods.advrbd import log_prob_at_label, partition
from sanitizer.layout import Paths
from sanitizer.store import SampleStore
from sanitizer.training import as_tensor, fit, new_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished grid row's project folder")
    parser.add_argument("epochs", type=int, nargs="+")
    args = parser.parse_args()
    params = yaml.safe_load((args.run / "params.yaml").read_text())
    paths = Paths(args.run / "data")
    store = SampleStore(paths.store)
    train = store.split("train")
    x, y = as_tensor(train.images), as_tensor(train.labels)
    truth = pl.read_parquet(paths.truth).sort("sample_id")
    assert np.array_equal(truth["sample_id"].to_numpy(), train.sample_ids), "truth.parquet does not match the store"
    poison, cover = truth["is_poison"].to_numpy(), truth["is_cover"].to_numpy()
    cfg, arch = config("train", params), config("model", params).arch
    for epochs in args.epochs:
        start = time.perf_counter()
        model = fit(new_model(arch, store.image_shape, len(store.classes), cfg.seed), x, y, cfg, epochs=epochs)
        loss = -log_prob_at_label(model, x, y)
        seed = partition(loss, loss, config("partition", params).rate, by="loss")  # R unused by "loss"
        print(
            f"{args.run.name}, {epochs} epochs: seed holds {(seed & poison).sum()} poisons, {(seed & cover).sum()} covers; "
            f"poison median loss {np.median(loss[poison]):.4f}, seed loss cut {loss[seed].min():.4f} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
