"""Stage `relabel`: relabel suspected samples with the clean model, keep its confident false
alarms, drop what it is unsure of, and fine-tune on the rest (Eq. 5). Writes decisions.parquet,
one keep / drop / relabel decision per train sample."""

import numpy as np
import polars as pl

from stages import main


def run(cfg, paths) -> None:
    import torch

    from sanitizer.decisions import decide
    from sanitizer.manifest import read_aligned, write_manifest
    from sanitizer.training import TrainSet, fit, predict, save_model

    data = TrainSet(paths.store, cfg["model"].arch)
    rel = cfg["relabel"]
    suspected = read_aligned(paths.suspicion, ["suspected"], data.split.sample_ids)["suspected"].to_numpy()
    model = data.load(paths.clean)
    dec = decide(predict(model, data.x), data.split.labels, suspected, rel.min_confidence, rel.rescue_confidence)
    df = pl.DataFrame(
        {
            "sample_id": data.split.sample_ids,
            "label": data.split.labels,
            "decision": dec.decision,
            "new_label": dec.new_label,
            "confidence": dec.confidence,
            "reason": dec.reason,
        }
    )
    write_manifest(df, paths.decisions, "relabel", {"classes": data.store.classes})
    kept = torch.from_numpy(np.flatnonzero(dec.decision != "drop"))
    labels = torch.from_numpy(dec.new_label)[kept]
    model = fit(model, data.x[kept], labels, cfg["train"], lr=rel.lr, epochs=rel.epochs, desc="fine-tuning on clean + relabelled")
    save_model(model, paths.defended)


if __name__ == "__main__":
    main("relabel")
