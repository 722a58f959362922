"""A dataset loader of ssnets' kind: synthetic grey-noise images with one bright disc each (mask 1 = disc)."""

from __future__ import annotations

import numpy as np
from skimage.draw import disk

from ssnets.common.errors import UserError
from ssnets.data.types import MaskSpec, Split


def load_discs(
    image_size: int,
    channels: int,
    mask_spec: MaskSpec,
    require_val: bool = True,
    num_train: int = 128,
    num_val: int = 16,
    seed: int = 0,
) -> dict[str, Split]:
    """{"train", "val"} Splits of uint8 images (N, size, size, channels) and uint8 masks (N, size, size).

    ssnets passes `image_size`, `channels`, `mask_spec` (data.num_classes, data.ignore_index) and
    `require_val`; the other arguments are the loader's keys in conf/data/discs.yaml.
    """
    if mask_spec.num_classes != 2:
        raise UserError(f"data=discs has 2 classes (background, disc), not {mask_spec.num_classes}; drop the override.")
    rng = np.random.default_rng(seed)
    return {
        "train": draw_split(rng, num_train, image_size, channels, "train"),
        "val": draw_split(rng, num_val, image_size, channels, "val"),
    }


def draw_split(rng: np.random.Generator, count: int, size: int, channels: int, prefix: str) -> Split:
    images = rng.normal(90, 25, size=(count, size, size, channels))
    masks = np.zeros((count, size, size), np.uint8)
    for index in range(count):
        radius = rng.uniform(0.1, 0.3) * size
        centre = rng.uniform(radius, size - radius, size=2)
        rows, cols = disk(tuple(centre), radius, shape=(size, size))
        masks[index, rows, cols] = 1
        images[index, rows, cols] += 80
    images = np.clip(images, 0, 255).astype(np.uint8)
    return Split(images, masks, tuple(f"{prefix}{index}" for index in range(count)))
