"""Config value checks that run before any heavy work, each failing with one UserError sentence.

What only a builder or a data source can judge (image_size divisibility for a
model, weights files, image files) is checked there, with UserErrors of its own;
this module covers the plain values and the one check that needs the loaded
training set.
"""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import MISSING, DictConfig, OmegaConf

from ssnets.common.errors import UserError
from ssnets.data.types import Split
from ssnets.tracking.params import flatten

POSITIVE_INTEGERS = ("data.image_size", "data.batch_size", "data.num_classes", "trainer.epochs")
POSITIVE_NUMBERS = ("optimizer.lr",)


def check_config(cfg: DictConfig) -> None:
    # Unresolved, because resolving an interpolation of a missing value raises before it can be named.
    missing = sorted(key for key, value in flatten(OmegaConf.to_container(cfg)).items() if value == MISSING)
    if missing:
        raise UserError(f"{missing[0]} has no value; set it on the command line, e.g. {missing[0]}=...")
    for key in POSITIVE_INTEGERS:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{key}={value!r} must be a whole number of at least 1.")
    for key in POSITIVE_NUMBERS:
        value = OmegaConf.select(cfg, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise UserError(f"{key}={value!r} must be a number above 0, e.g. {key}=1e-4.")
    # (None: data.class_names are resolved from the data, data/class_names.py.)
    if cfg.data.class_names is not None and len(cfg.data.class_names) != cfg.data.num_classes:
        raise UserError(
            f"data.class_names lists {len(cfg.data.class_names)} names but data.num_classes is "
            f"{cfg.data.num_classes}; give one name per class."
        )


def check_splits(data_cfg: DictConfig, splits: Mapping[str, Split]) -> None:
    train_size = len(splits["train"])
    if data_cfg.batch_size > train_size:
        # Training drops the last incomplete batch, so a larger batch leaves no step at all.
        raise UserError(
            f"data.batch_size={data_cfg.batch_size} is larger than the {train_size} training images; "
            f"use data.batch_size={train_size} or less."
        )
