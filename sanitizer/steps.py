"""The training steps every method is built from: shuffled batches, one SGD step, descent,
ascent with a floor, untargeted adversarial examples, and an EMA teacher. training.fit,
AdvrBD's enhancement, the purification gap, PBE and PUD all train through these, so a fix to
one (say, how adversarial examples are crafted) reaches every method."""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F


def batches(indices: torch.Tensor, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """One shuffled pass over `indices`, in batches."""
    order = indices[torch.randperm(len(indices), generator=generator)]
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def num_batches(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def tuning_lr(model, lr: float | None, slower: int = 1) -> float:
    """`lr`, or when it is null the model's fine-tuning rate (models.Recipe.tune_lr) divided by
    `slower`: a method's fine-tuning must scale with how fast the architecture trains
    (fast_cnn's training rate is 20x small_cnn's)."""
    from .models import recipe_of

    return lr if lr is not None else recipe_of(model, "a method section's lr").tune_lr / slower


def sgd(model, lr: float) -> torch.optim.Optimizer:
    """The methods' fine-tuning optimiser."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def descent(model, x: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0, weight: torch.Tensor | None = None) -> torch.Tensor:
    """The loss to minimise to fit labels `y`; `weight`, per class, makes it the weighted mean."""
    return F.cross_entropy(model(x), y, weight=weight, label_smoothing=label_smoothing)


def ascent(model, x: torch.Tensor, y: torch.Tensor, floor: float) -> torch.Tensor:
    """The loss to minimise to unlearn labels `y`: minus the cross-entropy, which stops pushing
    once it exceeds `floor` (flooding), so unlearning cannot run off to infinity."""
    return -torch.clamp(F.cross_entropy(model(x), y), max=floor)


def adversarial(model, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, generator: torch.Generator) -> torch.Tensor:
    """PBE's untargeted L-inf PGD: a random start in the eps-ball, then `steps` steps of eps/5
    that raise the loss at `y`. Crafted with batch-norm and dropout frozen, as in PBE; the
    model's train/eval mode is restored afterwards and its weights get no gradient."""
    was_training = model.training
    model.eval()
    delta = ((torch.rand(x.shape, generator=generator) * 2 - 1) * eps).to(x.device).requires_grad_(True)
    for _ in range(steps):
        (grad,) = torch.autograd.grad(F.cross_entropy(model(torch.clamp(x + delta, 0, 1)), y), delta)
        delta = (delta + eps / 5 * grad.sign()).clamp(-eps, eps).detach().requires_grad_(True)
    model.train(was_training)
    return torch.clamp(x + delta.detach(), 0, 1)


@torch.no_grad()
def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, decay: float) -> None:
    """Mean teacher: teacher <- decay * teacher + (1 - decay) * student. Batch-norm running
    statistics are copied, not averaged: they are already averages."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(decay).add_(s.detach(), alpha=1 - decay)
    for t, s in zip(teacher.buffers(), student.buffers()):
        t.copy_(s)
