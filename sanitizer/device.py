"""Device choice: CUDA when present, else CPU with every core."""

from __future__ import annotations

import ctypes
import functools
import os

import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def default_device() -> torch.device:
    """Under torchrun, a rank's own GPU; on a CPU every core, for every rank too: a forward
    pass's float results depend on the thread count (Intel Xeon, 2 cores: 49 of 300 suspect
    losses differed in their last bits between 1 and 2 threads), so ranks with a share of the
    cores each would not merge into one process's manifest byte for byte. The ranks then
    oversubscribe the cores: on a CPU torchrun buys exactness checks, not speed."""
    local = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    torch.set_num_threads(os.cpu_count() or 1)
    keep_freed_memory()
    return torch.device("cpu")


@functools.cache
def keep_freed_memory() -> None:
    """glibc hands a freed block of more than 32 MiB back to the kernel and maps it afresh on
    the next allocation, so a large batch's activations page-fault in anew every batch:
    small_cnn predicting 60,000 images at batch 1024 took 6.0 s, and 2.1 s with freed memory
    kept for reuse (its peak RSS 36 MiB higher). Values are unchanged.
    Other C libraries (macOS, musl) are left as they are."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    for option in (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD):
        libc.mallopt(option, 1 << 30)
