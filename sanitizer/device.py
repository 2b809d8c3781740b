"""Device choice: CUDA when present, else CPU with every core."""

from __future__ import annotations

import os

import torch


def default_device() -> torch.device:
    """Under torchrun, a rank's own GPU, or its share of the cores."""
    local = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))
    return torch.device("cpu")
