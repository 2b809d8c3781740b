"""More than one process, under `torchrun`: each rank scores its share of the batches and rank 0
merges them and writes the manifest. The batches are the single-process ones, dealt out
round-robin, so every sample is scored in the same batch, with the same mask and model, as in
one process, and the merged manifest is byte-identical to a single-process run's (a test runs
both on CPU with gloo). One process (no torchrun) is the default and needs none of this."""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")


def world() -> tuple[int, int]:
    """This process's rank and the number of processes (0, 1 without torchrun)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main() -> bool:
    return world()[0] == 0


def setup() -> None:
    """Join the process group torchrun started (NCCL on GPUs, gloo on CPUs); once."""
    import torch
    import torch.distributed as dist

    if world()[1] > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def teardown() -> None:
    """Wait for every rank, then leave the group: a rank that exits while gloo's threads still
    run can abort ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(n: int) -> range:
    """The indices of n batches this rank computes."""
    rank, size = world()
    return range(rank, n, size)


def gather(parts: dict[int, T]) -> dict[int, T]:
    """Every rank's {batch index: result}, merged, on every rank."""
    if world()[1] == 1:
        return parts
    import torch.distributed as dist

    setup()
    everyone: list = [None] * world()[1]
    dist.all_gather_object(everyone, parts)
    merged: dict[int, T] = {}
    for p in everyone:
        merged.update(p)
    return merged
