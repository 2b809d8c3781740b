"""Stage `score`: per train sample, the suspect's loss at the given label, the purification gap
and, with `score.robustness`, the Eq. 3 robustness score R of the suspect's prediction (null
without). Under `torchrun --nproc-per-node N -m stages.score` the ranks share the R and loss
batches."""

import polars as pl

from stages import main


def run(cfg, paths) -> None:
    from sanitizer.adversarial import robustness_scores
    from sanitizer import distributed
    from sanitizer.manifest import write_manifest
    from sanitizer.purification import purification_gap
    from sanitizer.training import TrainSet

    data = TrainSet(paths.store, cfg["model"].arch)
    suspect = data.load(paths.suspect)
    scores = robustness_scores(suspect, data.x, data.y, cfg["score"])
    if not distributed.is_main():  # under torchrun: rank 0 computes the rest and writes
        return
    gap = purification_gap(suspect, data.x, data.y, cfg["purify"], suspect_loss=scores.loss)
    df = pl.DataFrame({"sample_id": data.split.sample_ids, "score": pl.Series(scores.robustness, nan_to_null=True), "loss": scores.loss, "gap": gap})
    meta = {"score": "robustness R (Eq. 3); low = suspicious; null unless score.robustness", "loss": "CE at given label", "gap": "purification gap, nats; high = suspicious"}
    write_manifest(df, paths.scores, "score", meta)


if __name__ == "__main__":
    main("score")
