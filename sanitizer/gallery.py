"""One PNG that shows every attack's trigger: per attack, a clean train image, the same image
as the attacker poisoned it, its test-time version, and the train-time change amplified (so an
invisible trigger such as WaNet's warp can still be checked by eye)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .attacks import ATTACKS, build_attack
from .config import config
from .datasets import load_dataset
from .errors import SanitizerError
from .io import atomic_path

COLUMNS = ("clean", "poisoned (train)", "trigger (test)", "|train - clean| x5")
GALLERY_SAMPLES = 2000  # enough for every attack's candidates, small enough to fit a generator fast


def attack_row(params: dict, name: str, images: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    cfg = dataclasses.replace(config("attack", params), name=name)
    attack = build_attack(cfg, images.shape[1:], int(labels.max()) + 1)
    poisoned = attack.poison(images, labels)
    touched = np.flatnonzero(poisoned.is_poison)
    if len(touched) == 0:
        raise SanitizerError(f"gallery: attack {name} poisoned nothing at rate {cfg.rate}")
    i = touched[0]
    clean, train = images[i].astype(np.int16), poisoned.images[i].astype(np.int16)
    test = attack.trigger_test(images[i : i + 1])[0]
    return [images[i], poisoned.images[i], test, np.clip(np.abs(train - clean) * 5, 0, 255).astype(np.uint8)]


def render(rows: dict[str, list[np.ndarray]], scale: int = 4):
    from PIL import Image, ImageDraw

    c, h, w = next(iter(rows.values()))[0].shape
    cell, label_w, head_h, pad = h * scale, 130, 20, 6
    canvas = Image.new("RGB", (label_w + len(COLUMNS) * (cell + pad), head_h + len(rows) * (cell + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    for j, title in enumerate(COLUMNS):
        draw.text((label_w + j * (cell + pad), 4), title, fill="black")
    for r, (name, images) in enumerate(rows.items()):
        y = head_h + r * (cell + pad)
        draw.text((4, y + cell // 2 - 6), name, fill="black")
        for j, image in enumerate(images):
            tile = Image.fromarray(image[0] if c == 1 else image.transpose(1, 2, 0)).convert("RGB")
            canvas.paste(tile.resize((cell, cell), Image.NEAREST), (label_w + j * (cell + pad), y))
    return canvas


def write_gallery(params: dict, out: str | Path, names: list[str] | None = None) -> Path:
    names = names or [n for n in ATTACKS.names() if n != "none"]
    data_cfg = dataclasses.replace(config("data", params), limit=GALLERY_SAMPLES)
    raw = load_dataset(data_cfg)
    train = raw.split("train")
    rows = {name: attack_row(params, name, raw.images[train], raw.labels[train]) for name in names}
    out = Path(out)
    with atomic_path(out) as tmp:
        render(rows).save(tmp, format="PNG")
    return out
