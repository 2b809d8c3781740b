"""Training and inference loops shared by every stage that fits or applies a model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from .config import TrainConfig
from .device import default_device
from .errors import SanitizerError
from .io import atomic_path, placeholder_error
from .models import build_model
from .progress import progress_bar
from .steps import descent, step

PREPARE_SAMPLES = 5000  # images fast_cnn's whitening is estimated from (~5M patches)


def to_float(images_u8: torch.Tensor, device) -> torch.Tensor:
    return images_u8.to(device, non_blocking=True).float().div_(255)


def as_tensor(array: np.ndarray) -> torch.Tensor:
    # Arrays from polars or np.load can be read-only; torch needs a writable buffer.
    return torch.from_numpy(np.require(array, requirements=["C", "W"]))


def augment(x: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Per sample: a horizontal flip with probability 1/2 and a shift of up to `shift` pixels
    each way (reflect-padded crop), the standard CIFAR augmentation."""
    n, _, h, w = x.shape
    x = torch.where((torch.rand(n, generator=generator) < 0.5).view(-1, 1, 1, 1).to(x.device), x.flip(3), x)
    if shift == 0:
        return x
    padded = F.pad(x, (shift, shift, shift, shift), mode="reflect")
    dy, dx = (torch.randint(0, 2 * shift + 1, (2, n), generator=generator)).to(x.device)
    # One gather for the whole batch: a loop over offsets with boolean masks made the GPU wait
    # for the host at every offset.
    arange = lambda k: torch.arange(k, device=x.device)  # noqa: E731
    rows = (dy[:, None] + arange(h)).view(n, 1, h, 1)
    cols = (dx[:, None] + arange(w)).view(n, 1, 1, w)
    return padded[arange(n).view(n, 1, 1, 1), arange(x.shape[1]).view(1, -1, 1, 1), rows, cols]


def epoch_order(n: int, generator: torch.Generator, labels: torch.Tensor | None = None) -> torch.Tensor:
    """A shuffled epoch; with `labels`, a class-balanced draw with replacement (balance="draw")."""
    if labels is None:
        return torch.randperm(n, generator=generator)
    counts = torch.bincount(labels)
    weights = 1.0 / counts[labels].double()
    return torch.multinomial(weights, n, replacement=True, generator=generator)


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class loss weights that give every class present the same total weight
    (balance="loss"); 1 for every class of a balanced set, 0 for an absent one."""
    counts = torch.bincount(labels, minlength=num_classes).double()
    present = counts > 0
    weights = torch.zeros_like(counts)
    weights[present] = len(labels) / (int(present.sum()) * counts[present])
    return weights.float()


def cosine_lr(base: float, step: int, total: int) -> float:
    warmup = max(1, total // 20)
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def triangle_lr(base: float, step: int, total: int) -> float:
    """Up linearly over the first 20 % of the steps, then down linearly to 5 % of `base`: on
    CIFAR-10, fast_cnn's 11 epochs reach 85.15 % with it and 84.84 % with cosine (2 seeds each,
    benchmarks/results/cifar10-recipe.md)."""
    warmup = max(1, total // 5)
    if step < warmup:
        return base * (step + 1) / warmup
    return base * (0.05 + 0.95 * (total - step) / max(1, total - warmup))


SCHEDULES = {"cosine": cosine_lr, "triangle": triangle_lr}


def fit(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: TrainConfig,
    *,
    balance: str | None = None,
    lr: float | None = None,
    epochs: int | None = None,
    ema: float | None = None,
    desc: str = "training",
) -> torch.nn.Module:
    """SGD with Nesterov momentum and a learning-rate schedule, by the train section with its nulls
    filled from the model's recipe. `images` uint8 N x C x H x W, `labels` int64.
    `balance` evens out the classes of an imbalanced set: "draw" draws every batch class-balanced
    with replacement, for a set with classes of a few samples (AdvrBD's seed D_s); "loss" sees
    every sample once an epoch and weights the loss by class, for a set with every class well
    filled (the identified-clean set, its target class depleted): on it, "draw" left about a
    third of the samples out of each epoch and cost 0.3-0.4 pt of test accuracy
    (benchmarks/results/final-models.md).
    `ema`, a decay: return the exponential moving average of the weights and batch-norm
    statistics over the steps instead of the last step's model."""
    if balance not in (None, "draw", "loss"):
        raise ValueError(f"balance must be None, 'draw' or 'loss', not {balance!r}")
    if len(images) == 0:
        raise SanitizerError(f"{desc}: no samples to train on")
    cfg = cfg.resolved(getattr(model, "recipe", None))
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    lr = cfg.lr if lr is None else lr
    epochs = cfg.epochs if epochs is None else epochs
    prepare = getattr(model, "prepare", None)
    if prepare is not None:  # data-dependent initialisation, from an evenly strided sample
        prepare(to_float(images[:: max(1, len(images) // PREPARE_SAMPLES)], device))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    weight = class_weights(labels, model.head.out_features).to(device) if balance == "loss" else None
    # Batch-norm statistics averaged with the weights (use_buffers), unlike steps.ema_update's
    # mean teacher, which copies them: on CIFAR-10 Adaptive-Blend copying them gave 83.80 %
    # against 84.35 % averaged.
    average = None if ema is None else AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema), use_buffers=True)
    schedule = SCHEDULES[cfg.schedule]
    steps_per_epoch = math.ceil(len(images) / cfg.batch_size)
    total = epochs * steps_per_epoch
    model.train()
    with progress_bar(desc, total) as advance:
        for epoch in range(epochs):
            order = epoch_order(len(images), generator, labels if balance == "draw" else None)
            for k, start in enumerate(range(0, len(order), cfg.batch_size)):
                idx = order[start : start + cfg.batch_size]
                x = to_float(images[idx], device)
                if cfg.augment:
                    x = augment(x, cfg.shift, generator)
                for group in opt.param_groups:
                    group["lr"] = schedule(lr, epoch * steps_per_epoch + k, total)
                step(opt, descent(model, x, labels[idx].to(device), cfg.label_smoothing, weight))
                if average is not None:
                    average.update_parameters(model)
                advance()
    model = model if average is None else average.module
    model.eval()
    return model


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 1024, desc: str = "predicting", features: bool = False) -> torch.Tensor:
    """Logits (or, with `features`, penultimate features) for uint8 images, on the CPU, in
    input order."""
    device = next(model.parameters()).device
    model.eval()
    apply = model.embed if features else model
    out = []
    with progress_bar(desc, len(images)) as advance:
        for start in range(0, len(images), batch_size):
            out.append(apply(to_float(images[start : start + batch_size], device)).float().cpu())
            advance(min(batch_size, len(images) - start))
    return torch.cat(out) if out else torch.empty(0)


def log_prob_at_label(model, images: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    logits = predict(model, images)
    return F.log_softmax(logits, 1)[torch.arange(len(labels)), labels].double().numpy()


def accuracy(model, images: torch.Tensor, labels: torch.Tensor) -> float:
    if len(images) == 0:
        return float("nan")
    return (predict(model, images).argmax(1) == labels).float().mean().item()


def new_model(arch: str, image_shape, num_classes: int, seed: int = 0) -> torch.nn.Module:
    """A freshly initialised model; the initial weights depend on `seed` alone, so two runs
    of a stage train the same model."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(arch, tuple(image_shape), num_classes)
    if model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.to(default_device())


class TrainSet:
    """The sample store's train split as tensors, and models shaped for its images and classes."""

    def __init__(self, store_path: str | Path, arch: str):
        from .store import SampleStore

        self.store = SampleStore(store_path)
        self.split = self.store.split("train")
        self.x, self.y = as_tensor(self.split.images), as_tensor(self.split.labels)
        self.arch = arch

    def new_model(self, seed: int) -> torch.nn.Module:
        return new_model(self.arch, self.store.image_shape, len(self.store.classes), seed)

    def load(self, path: str | Path) -> torch.nn.Module:
        return load_model(path, self.arch, self.store.image_shape, len(self.store.classes))


def save_model(model: torch.nn.Module, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)


def load_model(path: str | Path, arch: str, image_shape, num_classes: int) -> torch.nn.Module:
    path = Path(path)
    if not path.exists():
        raise SanitizerError(f"missing model {path}: run the stage that trains it first")
    model = new_model(arch, image_shape, num_classes)
    load_state(model, path)
    return model.eval()


def load_state(model: torch.nn.Module, path: str | Path) -> None:
    """Weights from a file into `model`; a damaged file, or one trained for another dataset or
    architecture, is a clear error, not a traceback."""
    try:
        state = torch.load(path, map_location=next(model.parameters()).device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, pickle or not a model file at all
        raise SanitizerError(placeholder_error(path) or f"{path} is damaged or not a model file ({type(e).__name__}); re-run the stage that writes it") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[-1].strip()[:200]
        raise SanitizerError(
            f"{path} does not fit this store's images and classes ({first}); it comes from another run or dataset: re-run the pipeline from the stage that wrote it"
        ) from None
