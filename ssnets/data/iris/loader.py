"""The Hydra data loader (`data=iris`): the cached synthetic dataset, read through the folder source."""

from __future__ import annotations

import os

from ssnets.data.folder import load_folder
from ssnets.data.iris.cache import ensure_dataset
from ssnets.data.iris.render import DEFAULT_FRAME_ASPECT, DEFAULT_MODE
from ssnets.data.types import MaskSpec, Split


def load(
    cache_dir: str | os.PathLike,
    num_train: int,
    num_val: int,
    num_test: int,
    seed: int,
    image_size: int,
    channels: int,
    mask_spec: MaskSpec,
    require_val: bool = True,
    mode: str = DEFAULT_MODE,
    frame_aspect: float = DEFAULT_FRAME_ASPECT,
) -> dict[str, Split]:
    """The data config's loader: generate (once) at image_size, then read through the folder source."""
    root = ensure_dataset(
        cache_dir, image_size, num_train, num_val, num_test, seed, mode=mode, frame_aspect=frame_aspect
    )
    return load_folder(root, image_size, channels, mask_spec, require_val)
