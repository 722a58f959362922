"""Dataset sources and the input pipeline.

A data config names its loader under `loader._target_`; every loader returns
{"train": Split, "val": Split, ["test": Split]} read through `folder.load_folder`,
so real and synthetic data share one code path after loading.
"""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from ssnets.data.folder import MaskSpec, Split


def load_splits(data_cfg: DictConfig) -> dict[str, Split]:
    return instantiate(
        data_cfg.loader,
        image_size=data_cfg.image_size,
        channels=data_cfg.channels,
        mask_spec=MaskSpec(data_cfg.num_classes, data_cfg.ignore_index),
    )
