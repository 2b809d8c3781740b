"""Stage `relabel`: relabel suspected samples with the clean model, keep the false alarms it
predicts with their given label, drop what it is unsure of (Eq. 5), what the suspect model
answers unlike the clean model on blends with other classes' images and what the method found
carrying a trigger in its image (a trigger either way), let a person's reviews overrule that,
and fine-tune on the rest.
Writes decisions.parquet, one keep / drop / relabel decision per train sample, with its source
(method or review)."""

import numpy as np
import polars as pl

from stages import main


def run(cfg, paths) -> None:
    import torch

    from sanitizer import reviews
    from sanitizer.decisions import decide, doubted, overrule, persisting
    from sanitizer.manifest import read_aligned, write_manifest
    from sanitizer.steps import tuning_lr
    from sanitizer.training import TrainSet, fit, predict, save_model

    data = TrainSet(paths.store, cfg["model"].arch)
    rel = cfg["relabel"]
    ids, labels, classes = data.split.sample_ids, data.split.labels, data.store.classes
    suspicion = read_aligned(paths.suspicion, ["suspected", "trigger"], ids)
    suspected, trigger = suspicion["suspected"].to_numpy(), suspicion["trigger"].to_numpy()
    model = data.load(paths.clean)
    said = reviews.load(paths.reviews, ids, labels, classes)
    logits = predict(model, data.x)
    persists = None
    if rel.persistence_partners:
        confirmed = suspected & ~doubted(logits, labels, rel.evidence)  # the only suspects the check can drop
        persists = persisting(data.load(paths.suspect), model, data.x, labels, suspected, confirmed, rel.persistence_partners, rel.persistence_reference, cfg["train"].seed)
    method = decide(logits, labels, suspected, rel.min_confidence, rel.auto_relabel, rel.evidence, persists, trigger)
    dec = overrule(method, said)
    df = pl.DataFrame(
        {
            "sample_id": ids,
            "label": labels,
            "decision": dec.decision,
            "new_label": dec.new_label,
            "confidence": dec.confidence,
            "reason": dec.reason,
            "source": dec.source,
            # What the method alone decided: a benchmark measures it, whatever people overruled.
            "method_decision": method.decision,
        }
    )
    write_manifest(df, paths.decisions, "relabel", {"classes": classes})
    kept = torch.from_numpy(np.flatnonzero(dec.decision != "drop"))
    labels = torch.from_numpy(dec.new_label)[kept]
    model = fit(model, data.x[kept], labels, cfg["train"], lr=tuning_lr(model, rel.lr), epochs=rel.epochs, ema=rel.ema, desc="fine-tuning on clean + relabelled")
    save_model(model, paths.defended)


if __name__ == "__main__":
    main("relabel")
