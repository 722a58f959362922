"""Dataset sources and the input pipeline.

A data config names its loader under `loader._target_`; every loader returns
{"train": Split, "val": Split, ["test": Split]} (ssnets' own through
`folder.load_folder`, so real and synthetic data share one code path after
loading; a user project's loader may build its Splits any way); with
`require_val=False` (trainer.val_fraction set) a missing val split is allowed.
A folder too large for memory comes as StreamedSplits (data.in_memory), which
`pipeline.make_dataset` reads from disk batch by batch.
"""

from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from ssnets.common.errors import UserError
from ssnets.data.splitting import hold_out_validation
from ssnets.data.types import MaskSpec, Split, StreamedSplit


def load_splits(
    data_cfg: DictConfig, val_fraction: float | None = None, seed: int = 0
) -> dict[str, Split | StreamedSplit]:
    """The data's splits; with `val_fraction`, val is held out of train by `seed` (the data must have no val)."""
    try:
        splits = instantiate(
            data_cfg.loader,
            image_size=data_cfg.image_size,
            channels=data_cfg.channels,
            mask_spec=MaskSpec(data_cfg.num_classes, data_cfg.ignore_index),
            require_val=val_fraction is None,
        )
    except InstantiationException as error:
        # Hydra wraps whatever the loader raised; a UserError's one sentence is what the user must see.
        if isinstance(error.__cause__, UserError):
            raise error.__cause__ from None
        raise
    return splits if val_fraction is None else hold_out_validation(splits, val_fraction, seed)
