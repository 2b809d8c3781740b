"""Device choice: CUDA when present, else CPU with every core."""

from __future__ import annotations

import os

import torch


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    torch.set_num_threads(os.cpu_count() or 1)
    return torch.device("cpu")
