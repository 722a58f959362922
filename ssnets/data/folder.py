"""Read a segmentation dataset laid out as root/{train,val,test}/{img,mask}/NAME.*.

Images and masks are paired by base name. Masks are single-channel images of
class indices (0..num_classes-1); binary masks stored as 0/255 become 0/1;
`ignore_index` (e.g. 255) marks void pixels that loss and metrics skip.
Everything is read, checked and resized once, in parallel, before training
starts, so a bad file stops the run with one sentence naming it.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from skimage import io as skio
from skimage.color import gray2rgb, rgb2gray
from skimage.transform import resize

from ssnets.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
REQUIRED_SPLITS = ("train", "val")
OPTIONAL_SPLITS = ("test",)


@dataclass(frozen=True)
class Split:
    """One split held in memory: images uint8 (N,H,W,C), masks uint8 (N,H,W)."""

    images: np.ndarray
    masks: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class MaskSpec:
    """How mask values are read: class count and the optional void label."""

    num_classes: int
    ignore_index: int | None = None


def load_folder(
    root: str | os.PathLike,
    image_size: int,
    channels: int,
    mask_spec: MaskSpec,
    require_val: bool = True,
) -> dict[str, Split]:
    """Read train and val (required, unless not `require_val`) and test (when present) from `root`."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(
            f"data.root {root} does not exist; point data.root at a folder holding "
            "train/ and val/, each with img/ and mask/."
        )
    splits = {}
    for split in REQUIRED_SPLITS + OPTIONAL_SPLITS:
        if not (root / split).is_dir():
            if split in REQUIRED_SPLITS and (require_val or split != "val"):
                raise UserError(
                    f"{root / split} is missing; data.root needs train/ and val/ folders, "
                    "each with img/ and mask/."
                )
            continue
        splits[split] = load_split(root / split, image_size, channels, mask_spec)
        log.info("Loaded %d %s images from %s", len(splits[split]), split, root / split)
    return splits


def load_split(split_dir: Path, image_size: int, channels: int, mask_spec: MaskSpec) -> Split:
    pairs = pair_files(split_dir)
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        samples = list(
            pool.map(
                lambda pair: read_pair(*pair, image_size=image_size, channels=channels, mask_spec=mask_spec),
                pairs,
            )
        )
    images, masks = zip(*samples)
    return Split(np.stack(images), np.stack(masks), tuple(image.stem for image, _ in pairs))


def pair_files(split_dir: Path) -> list[tuple[Path, Path]]:
    """(image, mask) paths sharing a base name, sorted by name."""
    found = {}
    for kind in ("img", "mask"):
        folder = split_dir / kind
        if not folder.is_dir():
            raise UserError(f"{folder} is missing; each split folder needs img/ and mask/ subfolders.")
        found[kind] = {}
        for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            if path.stem in found[kind]:
                raise UserError(
                    f"{found[kind][path.stem]} and {path} share a base name, so it is unclear which one pairs; "
                    "keep one of them."
                )
            found[kind][path.stem] = path
    images, masks = found["img"], found["mask"]
    if not images:
        raise UserError(f"{split_dir / 'img'} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    for stem, path in sorted(images.items()):
        if stem not in masks:
            raise UserError(f"Image {path} has no mask; add {split_dir / 'mask' / stem}.png or remove the image.")
    for stem, path in sorted(masks.items()):
        if stem not in images:
            raise UserError(f"Mask {path} has no image; add the image to {split_dir / 'img'} or remove the mask.")
    return [(images[stem], masks[stem]) for stem in sorted(images)]


def read_pair(
    image_path: Path, mask_path: Path, *, image_size: int, channels: int, mask_spec: MaskSpec
) -> tuple[np.ndarray, np.ndarray]:
    image = to_uint8_channels(read_file(image_path), channels, image_path)
    mask = mask_to_labels(read_file(mask_path), mask_spec, mask_path)
    if mask.shape != image.shape[:2]:
        raise UserError(
            f"Mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image is "
            f"{image.shape[1]}x{image.shape[0]}; masks must have their image's size."
        )
    return resize_image(image, image_size), resize_mask(mask, image_size)


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
            raise UserError(f"Mask {path} has several different channels; save it as a single-channel PNG of class indices.")
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


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[:2] == (size, size):
        return image
    resized = resize(image, (size, size), order=1, preserve_range=True, anti_aliasing=True)
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    if mask.shape == (size, size):
        return mask
    return resize(mask, (size, size), order=0, preserve_range=True, anti_aliasing=False).astype(np.uint8)
