"""What the camera adds to the painted scene: uneven light, white balance, blur, tone curve and sensor noise."""

from __future__ import annotations

import math

import numpy as np
import skimage.draw
import skimage.filters
import skimage.util
from scipy import ndimage

from ssnets.data.iris.appearance import Look


def apply_camera(rng: np.random.Generator, look: Look, planes: np.ndarray) -> np.ndarray:
    """Uneven light, white balance, blur, tone curve and sensor noise: (3, s, s) -> (s, s, 3) in [0, 1]."""
    size = planes.shape[-1]
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    xx, yy = np.meshgrid(coords, coords)
    direction = rng.uniform(0, 2 * np.pi)
    gradient = 1 + rng.uniform(0, 0.4) * (xx * math.cos(direction) + yy * math.sin(direction))
    vx, vy = rng.uniform(-0.4, 0.4, 2)
    vignette = 1 - rng.uniform(0, 0.45) * ((xx - vx) ** 2 + (yy - vy) ** 2) / 2
    image = np.moveaxis(planes * (rng.uniform(0.6, 1.25) * gradient * vignette), 0, -1)
    if look.nir:
        image = image[..., :1]
    else:
        # White balance errs mostly along the amber-blue (colour temperature) axis, a little along green-magenta.
        temperature, tint = rng.normal(0.0, 0.06), rng.normal(0.0, 0.015)
        image = image * np.array([1 + temperature, 1 + tint, 1 - temperature], np.float32)
        grey = image.mean(-1, keepdims=True)
        image = grey + rng.uniform(0.75, 1.2) * (image - grey)

    scale = size / 224
    blur = rng.choice(["sharp", "defocus", "motion"], p=[0.45, 0.4, 0.15])
    if blur == "defocus":
        image = skimage.filters.gaussian(image, sigma=rng.uniform(0.4, 1.8) * scale, channel_axis=-1)
    elif blur == "motion":
        image = ndimage.convolve(image, _motion_kernel(rng, rng.uniform(2, 8) * scale)[..., None], mode="nearest")

    image = np.clip(image, 0, 1) ** rng.uniform(0.75, 1.3)
    noise_sigma = rng.uniform(0.004, 0.03) * (1.5 if look.nir else 1.0)
    image = skimage.util.random_noise(image, mode="gaussian", var=noise_sigma**2, rng=rng)
    return np.repeat(image, 3, axis=-1) if look.nir else image


def _motion_kernel(rng: np.random.Generator, length: float) -> np.ndarray:
    half = max(1, math.ceil(length / 2))
    angle = rng.uniform(0, np.pi)
    dr, dc = round(half * math.sin(angle)), round(half * math.cos(angle))
    kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    rows, cols, weights = skimage.draw.line_aa(half - dr, half - dc, half + dr, half + dc)
    kernel[rows, cols] = weights
    return kernel / kernel.sum()
