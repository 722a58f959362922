"""Hold out part of the training split for validation (trainer.val_fraction)."""

from __future__ import annotations

import numpy as np

from ssnets.common.errors import UserError
from ssnets.data.types import Split, StreamedSplit


def hold_out_validation(
    splits: dict[str, Split | StreamedSplit], fraction: float, seed: int
) -> dict[str, Split | StreamedSplit]:
    """`splits` with round(fraction * len(train)) training images, drawn by `seed`, moved into a new val split."""
    if "val" in splits:
        raise UserError(
            f"The data already has a val split ({len(splits['val'])} images) and trainer.val_fraction={fraction} "
            "would make another; set trainer.val_fraction=null or use data without a val split."
        )
    train = splits["train"]
    held_out = round(fraction * len(train))
    if not 0 < held_out < len(train):
        raise UserError(
            f"trainer.val_fraction={fraction} of {len(train)} training images leaves no validation or no "
            "training image; choose a fraction between 0 and 1 that leaves at least one of each."
        )
    order = np.random.default_rng(seed).permutation(len(train))
    kept, moved = np.sort(order[held_out:]), np.sort(order[:held_out])
    return {**splits, "train": train.subset(kept), "val": train.subset(moved)}
