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
from pathlib import Path

import numpy as np

from ssnets.common.errors import UserError
from ssnets.data.images import (
    IMAGE_SUFFIXES,
    check_mask_size,
    mask_to_labels,
    read_file,
    resize_image,
    resize_mask,
    to_uint8_channels,
)
from ssnets.data.types import MaskSpec, Split

log = logging.getLogger(__name__)

REQUIRED_SPLITS = ("train", "val")
OPTIONAL_SPLITS = ("test",)


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
                    f"{root / split} is missing; data.root needs train/ and val/ folders, each with img/ and mask/."
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
    images, masks = zip(*samples, strict=True)
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
    check_mask_size(mask.shape, image.shape, mask_path)
    return resize_image(image, image_size), resize_mask(mask, image_size)
