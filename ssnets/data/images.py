"""Reading one image or mask file as training and prediction see it.

Images become uint8 with the configured channel count (grey, RGB, RGBA and
16-bit converted); masks become class indices (0/255 binary masks -> 0/1).
Every problem with a file is one UserError sentence naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage import io as skio
from skimage.color import gray2rgb, rgb2gray
from skimage.transform import resize

from ssnets.common.errors import UserError
from ssnets.data.types import MaskSpec

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def read_file(path: Path) -> np.ndarray:
    try:
        return skio.imread(path)
    except (OSError, ValueError, SyntaxError) as error:
        # The imaging libraries' own messages run to several lines and repeat the path.
        reason = getattr(error, "strerror", None) or "not a readable image: corrupt, truncated or of an unknown format"
        raise UserError(f"Cannot read {path} ({reason}); replace or remove the file.") from error


def to_uint8_channels(image: np.ndarray, channels: int, path: Path) -> np.ndarray:
    """8-bit image with `channels` channels: 16-bit is rescaled, alpha dropped, grey/RGB converted."""
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise UserError(f"Image {path} has pixel type {image.dtype}; save it as 8- or 16-bit PNG/JPEG.")
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    if image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 1):
        image = image.reshape(image.shape[:2])
        return image[..., None] if channels == 1 else gray2rgb(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise UserError(f"Image {path} has shape {image.shape}; expected a grey, RGB or RGBA image.")
    if channels == 1:
        return np.round(rgb2gray(image) * 255).astype(np.uint8)[..., None]
    return image


def mask_to_labels(mask: np.ndarray, spec: MaskSpec, path: Path) -> np.ndarray:
    """Class-index mask (uint8, H x W); 0/255 binary masks become 0/1."""
    if mask.ndim == 3:
        if not all(np.array_equal(mask[..., 0], mask[..., c]) for c in range(1, min(mask.shape[-1], 3))):
            raise UserError(
                f"Mask {path} has several different channels; save it as a single-channel PNG of class indices."
            )
        mask = mask[..., 0]
    values = np.unique(mask)
    if spec.ignore_index is None and spec.num_classes == 2 and set(values.tolist()) <= {0, 255}:
        return (mask == 255).astype(np.uint8)
    bad = [int(v) for v in values if v >= spec.num_classes and v != spec.ignore_index]
    if bad:
        raise UserError(
            f"Mask {path} holds values {bad} but data.num_classes is {spec.num_classes}; "
            "fix the mask, raise data.num_classes, or set data.ignore_index for a void label."
        )
    return mask.astype(np.uint8)


def check_mask_size(mask_shape: tuple[int, ...], image_shape: tuple[int, ...], mask_path: Path) -> None:
    """A mask must cover its image pixel for pixel (shapes as (height, width, ...))."""
    if tuple(mask_shape[:2]) != tuple(image_shape[:2]):
        raise UserError(
            f"Mask {mask_path} is {mask_shape[1]}x{mask_shape[0]} but its image is "
            f"{image_shape[1]}x{image_shape[0]}; masks must have their image's size."
        )


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    resized = resize(image, (size, size), order=1, preserve_range=True, anti_aliasing=True)
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    if mask.shape == (size, size):
        return mask
    return resize(mask, (size, size), order=0, preserve_range=True, anti_aliasing=False).astype(np.uint8)
