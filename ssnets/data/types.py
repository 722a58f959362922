"""What every dataset source hands the training loop."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
