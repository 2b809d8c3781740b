"""Stage `detect`: run the method params.yaml picks (sanitizer/methods/<name>.py) and write its
verdict as the method-neutral detect/suspicion.parquet (suspicion, suspected, its signals; its
summary in the metadata), and any model it produced under detect/models/."""

from stages import main


def run(cfg, paths) -> None:
    import torch

    from sanitizer.io import atomic_path
    from sanitizer.methods import METHODS, Inputs, load_all
    from sanitizer.methods.base import write_suspicion
    from sanitizer.progress import log
    from sanitizer.training import TrainSet

    load_all()
    method = METHODS.get(cfg["method"].name)
    data = TrainSet(paths.store, cfg["model"].arch)
    sections = {name: cfg.own(name) for name in method.reads}
    det = method().detect(Inputs(data, data.load(paths.suspect), cfg.own(method.section), cfg["train"], paths, sections))
    write_suspicion(det, method, data.split.sample_ids, paths.suspicion)
    with atomic_path(paths.method_models) as tmp:
        tmp.mkdir()
        for name, model in sorted(det.models.items()):
            torch.save(model.state_dict(), tmp / f"{name}.pt")
    log(f"detect ({method.name}): {int(det.suspected.sum())} of {len(det.suspected)} samples suspected")


if __name__ == "__main__":
    main("detect")
