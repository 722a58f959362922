"""What the camera adds to the painted scene: light, white balance, blur, resolution, tone curve, noise, JPEG.

Real iris cameras differ in all of these and no single setting is "right", so
each is drawn from a wide range (domain randomisation): a model that has seen
them all should not care which one a real sensor has.
"""

from __future__ import annotations

import io
import math

import imageio.v3 as imageio
import numpy as np
import skimage.draw
import skimage.filters
from scipy import ndimage

from ssnets.data.iris.appearance import Look

JPEG_FRACTION = 0.45
LOW_RESOLUTION_FRACTION = 0.25


def apply_camera(rng: np.random.Generator, look: Look, planes: np.ndarray) -> np.ndarray:
    """(3, H, W) scene radiance -> (H, W, 3) image in [0, 1]."""
    image = np.moveaxis(planes * _illumination(rng, planes.shape[-2:]), 0, -1)
    if look.nir:
        image = image[..., :1]
    else:
        # White balance errs mostly along the amber-blue (colour temperature) axis, a little along green-magenta.
        temperature, tint = rng.normal(0.0, 0.06), rng.normal(0.0, 0.015)
        image = image * np.array([1 + temperature, 1 + tint, 1 - temperature], np.float32)
        grey = image.mean(-1, keepdims=True)
        image = grey + rng.uniform(0.75, 1.2) * (image - grey)

    scale = image.shape[0] / 224
    image = _blur(rng, image, scale)
    if rng.random() < LOW_RESOLUTION_FRACTION:
        image = _low_resolution(rng, image)
    # Contrast and black level of the sensor's tone curve, then its gamma.
    mean = float(image.mean())
    image = mean + rng.uniform(0.75, 1.3) * (image - mean) + rng.uniform(-0.04, 0.06)
    image = np.clip(image, 0, 1) ** rng.uniform(0.65, 1.5)
    image = _sensor_noise(rng, image, look.nir)
    if rng.random() < JPEG_FRACTION:
        image = _jpeg(rng, image)
    return np.repeat(image, 3, axis=-1) if look.nir else image


def _illumination(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Exposure times a directional gradient times an off-centre fall-off (the illuminator's hot spot)."""
    rows = (np.arange(shape[0], dtype=np.float32) + 0.5) / shape[0] * 2 - 1
    cols = (np.arange(shape[1], dtype=np.float32) + 0.5) / shape[1] * 2 - 1
    xx, yy = np.meshgrid(cols, rows)
    direction = rng.uniform(0, 2 * np.pi)
    gradient = 1 + rng.uniform(0, 0.5) * (xx * math.cos(direction) + yy * math.sin(direction))
    vx, vy = rng.uniform(-0.5, 0.5, 2)
    falloff = 1 - rng.uniform(0, 0.6) * ((xx - vx) ** 2 + (yy - vy) ** 2) / 2
    # Log-uniform exposure: under-exposed captures and ones whose bright skin saturates.
    exposure = math.exp(rng.uniform(math.log(0.65), math.log(1.5)))
    return np.float32(exposure) * gradient * np.maximum(falloff, 0.2)


def _blur(rng: np.random.Generator, image: np.ndarray, scale: float) -> np.ndarray:
    blur = rng.choice(["sharp", "defocus", "motion"], p=[0.4, 0.45, 0.15])
    if blur == "defocus":
        return skimage.filters.gaussian(image, sigma=rng.uniform(0.4, 2.5) * scale, channel_axis=-1)
    if blur == "motion":
        return ndimage.convolve(image, _motion_kernel(rng, rng.uniform(2, 9) * scale)[..., None], mode="nearest")
    return image


def _low_resolution(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A sensor (or crop) coarser than the output: average down by a random factor, interpolate back up."""
    factor = rng.uniform(1.3, 2.8)
    small = ndimage.zoom(image, (1 / factor, 1 / factor, 1), order=1, grid_mode=True, mode="nearest")
    zoom = (image.shape[0] / small.shape[0], image.shape[1] / small.shape[1], 1)
    return ndimage.zoom(small, zoom, order=1, grid_mode=True, mode="nearest")[: image.shape[0], : image.shape[1]]


def _sensor_noise(rng: np.random.Generator, image: np.ndarray, nir: bool) -> np.ndarray:
    """Read noise plus shot noise (which grows with brightness); NIR sensors are a little noisier."""
    gain = 1.2 if nir else 1.0
    read = rng.uniform(0.003, 0.03) * gain
    shot = rng.uniform(0.0, 0.03) * gain
    sigma = read + shot * np.sqrt(image)
    return np.clip(image + sigma * rng.standard_normal(image.shape, dtype=np.float32), 0, 1)


def _jpeg(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Round trip through a JPEG of random quality (blocking and ringing of compressed captures)."""
    pixels = np.round(image * 255).astype(np.uint8)
    buffer = io.BytesIO()
    imageio.imwrite(
        buffer, pixels[..., 0] if pixels.shape[-1] == 1 else pixels, extension=".jpg", quality=int(rng.integers(20, 95))
    )
    decoded = imageio.imread(buffer.getvalue(), extension=".jpg")
    return (decoded.reshape(pixels.shape) / np.float32(255)).astype(np.float32)


def _motion_kernel(rng: np.random.Generator, length: float) -> np.ndarray:
    half = max(1, math.ceil(length / 2))
    angle = rng.uniform(0, np.pi)
    dr, dc = round(half * math.sin(angle)), round(half * math.cos(angle))
    kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    rows, cols, weights = skimage.draw.line_aa(half - dr, half - dc, half + dr, half + dc)
    kernel[rows, cols] = weights
    return kernel / kernel.sum()
