"""Read a segmentation dataset laid out as root/{train,val,test}/{img,mask}/NAME.*.

Images and masks are paired by base name. Masks are single-channel images of
class indices (0..num_classes-1); binary masks stored as 0/255 become 0/1;
`ignore_index` (e.g. 255) marks void pixels that loss and metrics skip.

In memory (data.in_memory=true, or auto below in_memory_limit_gb): everything is
read, checked and resized once, in parallel, before training starts. Streamed
(false, or auto above the limit): every file is checked up front as well, the
images by their headers (size, pixel type, PNG checksums) and the masks by
their values, and each sample is decoded and resized again when the tf.data
pipeline reads it, by the same functions, so both give the same arrays; with
`stream_cache` each decoded sample is kept on disk for later epochs and runs.
Either way a bad file stops the run before training with one sentence naming it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ssnets.common.errors import UserError
from ssnets.common.files import write_atomically
from ssnets.data.images import (
    IMAGE_SUFFIXES,
    check_mask_size,
    mask_to_labels,
    read_file,
    resize_image,
    resize_mask,
    to_uint8_channels,
)
from ssnets.data.types import MaskSpec, Split, StreamedSplit

log = logging.getLogger(__name__)

REQUIRED_SPLITS = ("train", "val")
OPTIONAL_SPLITS = ("test",)
IN_MEMORY_CHOICES = (True, False, "auto")

Pair = tuple[Path, Path]


def load_folder(
    root: str | os.PathLike,
    image_size: int,
    channels: int,
    mask_spec: MaskSpec,
    require_val: bool = True,
    in_memory: bool | str = "auto",
    in_memory_limit_gb: float = 4.0,
    stream_cache: str | os.PathLike | None = None,
) -> dict[str, Split | StreamedSplit]:
    """Read train and val (required, unless not `require_val`) and test (when present) from `root`.

    `in_memory`: True, False (stream from disk) or "auto" (stream when the decoded
    images and masks of all splits would take more than `in_memory_limit_gb`).
    `stream_cache`: a folder for the decoded samples of streamed splits (None: none).
    """
    if in_memory not in IN_MEMORY_CHOICES:
        raise UserError(f"data.in_memory={in_memory!r} must be true, false or auto.")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(
            f"data.root {root} does not exist; point data.root at a folder holding "
            "train/ and val/, each with img/ and mask/."
        )
    pairs = {}
    for split in REQUIRED_SPLITS + OPTIONAL_SPLITS:
        if not (root / split).is_dir():
            if split in REQUIRED_SPLITS and (require_val or split != "val"):
                raise UserError(
                    f"{root / split} is missing; data.root needs train/ and val/ folders, each with img/ and mask/."
                )
            continue
        pairs[split] = pair_files(root / split)
    decoded_gb = sum(map(len, pairs.values())) * image_size * image_size * (channels + 1) / 1e9
    stream = in_memory is False or (in_memory == "auto" and decoded_gb > in_memory_limit_gb)
    if stream:
        log.info("Streaming %s from disk (%.1f GB decoded; data.in_memory=%s)", root, decoded_gb, in_memory)
    cache = cache_folder(stream_cache) if stream and stream_cache is not None else None
    splits = {}
    for split, split_pairs in pairs.items():
        if stream:
            splits[split] = stream_split(split_pairs, image_size, channels, mask_spec, cache)
        else:
            splits[split] = read_split(split_pairs, image_size, channels, mask_spec)
        log.info("Loaded %d %s images from %s", len(splits[split]), split, root / split)
    return splits


def read_split(pairs: list[Pair], image_size: int, channels: int, mask_spec: MaskSpec) -> Split:
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        samples = list(
            pool.map(
                lambda pair: read_pair(*pair, image_size=image_size, channels=channels, mask_spec=mask_spec),
                pairs,
            )
        )
    images, masks = zip(*samples, strict=True)
    return Split(np.stack(images), np.stack(masks), tuple(image.stem for image, _ in pairs))


def stream_split(
    pairs: list[Pair], image_size: int, channels: int, mask_spec: MaskSpec, cache: Path | None
) -> StreamedSplit:
    """Check every pair up front (without decoding the images), then leave them on disk.

    A pair already in the cache is not checked again: its key covers both files' size and modification time.
    """
    cache_files = (
        tuple(cache / f"{sample_key(pair, image_size, channels, mask_spec)}.npz" for pair in pairs) if cache else None
    )
    unchecked = [pair for i, pair in enumerate(pairs) if cache_files is None or not cache_files[i].exists()]
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        list(pool.map(lambda pair: check_pair(*pair, channels=channels, mask_spec=mask_spec), unchecked))
    reader = FolderReader(tuple(pairs), image_size, channels, mask_spec, cache_files)
    return StreamedSplit(reader, np.arange(len(pairs)), tuple(image.stem for image, _ in pairs))


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


# Files whose header is enough to trust them: read_file decodes these formats with Pillow too, and
# to_uint8_channels takes these modes as they are. Any other file is decoded up front instead.
HEADER_CHECKED_FORMATS = {"PNG", "JPEG", "BMP"}
HEADER_CHECKED_MODES = {"L", "RGB", "RGBA", "I;16", "I;16B", "I;16L"}
JPEG_END = b"\xff\xd9"


def check_pair(image_path: Path, mask_path: Path, *, channels: int, mask_spec: MaskSpec) -> None:
    """What read_pair would reject, found while decoding only the mask (and images the header cannot vouch for)."""
    image_shape = shape_from_header(image_path)
    if image_shape is None:
        image_shape = to_uint8_channels(read_file(image_path), channels, image_path).shape
    mask = mask_to_labels(read_file(mask_path), mask_spec, mask_path)
    check_mask_size(mask.shape, image_shape, mask_path)


def shape_from_header(path: Path) -> tuple[int, int] | None:
    """(height, width) when the file's header (and for PNG its checksums) shows a readable image, else None."""
    try:
        with Image.open(path) as image:
            if image.format not in HEADER_CHECKED_FORMATS or image.mode not in HEADER_CHECKED_MODES:
                return None
            width, height = image.size
            if image.format == "PNG":
                image.verify()  # every chunk's CRC: a truncated or damaged file fails here
            elif image.format == "JPEG" and not ends_with(path, JPEG_END):
                return None  # possibly truncated; decoding tells
    except (OSError, SyntaxError, ValueError):
        # Unreadable: read_file's decoding gives the sentence that names the problem.
        return None
    return height, width


def ends_with(path: Path, marker: bytes) -> bool:
    with open(path, "rb") as file:
        file.seek(0, os.SEEK_END)
        file.seek(max(file.tell() - len(marker), 0))
        return file.read() == marker


def cache_folder(stream_cache: str | os.PathLike) -> Path:
    folder = Path(stream_cache).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"data.stream_cache={stream_cache} cannot be created ({error.strerror or error}); "
            "point it at a writable folder or set data.stream_cache=null."
        ) from error
    if not os.access(folder, os.W_OK):
        raise UserError(f"data.stream_cache={stream_cache} is not writable; point it at a writable folder.")
    return folder


def sample_key(pair: Pair, image_size: int, channels: int, mask_spec: MaskSpec) -> str:
    """What decides a cached sample's arrays: both files (path, size, modification time) and the reading settings."""
    parts = [f"{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime_ns}" for path in pair]
    parts += [str(image_size), str(channels), str(mask_spec.num_classes), str(mask_spec.ignore_index)]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class FolderReader:
    """Sample i of a streamed folder split, read by read_pair exactly as read_split reads it (a SampleReader)."""

    pairs: tuple[Pair, ...]
    image_size: int
    channels: int
    mask_spec: MaskSpec
    cache_files: tuple[Path, ...] | None  # one .npz per sample, or no cache

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        cached = self.cached(index, "image", "mask")
        if cached is not None:
            return cached
        image, mask = read_pair(
            *self.pairs[index], image_size=self.image_size, channels=self.channels, mask_spec=self.mask_spec
        )
        if self.cache_files is not None:
            write_atomically(self.cache_files[index], lambda path: np.savez(path, image=image, mask=mask))
        return image, mask

    def read_mask(self, index: int) -> np.ndarray:
        cached = self.cached(index, "mask")
        if cached is not None:
            return cached[0]
        mask_path = self.pairs[index][1]
        return resize_mask(mask_to_labels(read_file(mask_path), self.mask_spec, mask_path), self.image_size)

    def cached(self, index: int, *names: str) -> tuple[np.ndarray, ...] | None:
        """The named arrays of sample `index` from the cache (a complete file: written atomically), or None."""
        if self.cache_files is None or not self.cache_files[index].exists():
            return None
        with np.load(self.cache_files[index]) as arrays:
            return tuple(arrays[name] for name in names)
