"""Pictures of predictions: masks overlaid on their images, in a grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage import io as skio

# RGB tint per class; class 0 (background) stays untinted, class 1 (iris) is green.
PALETTE = np.array(
    [[0, 0, 0], [0, 255, 0], [255, 0, 0], [0, 96, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255], [255, 128, 0]],
    dtype=np.float32,
)


def as_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """uint8 RGB picture of `image` with every non-zero class tinted in its colour."""
    labels = np.asarray(labels)
    tint = PALETTE[labels % len(PALETTE)]
    weight = alpha * (labels > 0)[..., None]
    blended = (1.0 - weight) * as_rgb(image).astype(np.float32) + weight * tint
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def prediction_grid(images: np.ndarray, truths: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """One row per sample: input | ground truth overlay | prediction overlay."""
    rows = [
        np.concatenate([as_rgb(image), overlay(image, truth), overlay(image, prediction)], axis=1)
        for image, truth, prediction in zip(images, truths, predictions, strict=True)
    ]
    return np.concatenate(rows, axis=0)


def save_png(path: Path, picture: np.ndarray) -> Path:
    skio.imsave(path, picture, check_contrast=False)
    return path
