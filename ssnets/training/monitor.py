"""trainer.monitor: the one metric (name and mode) every selection uses.

The best checkpoint (best.keras), early stopping, plateau, the value a sweep job
returns and `ssnets.compare`'s ranking all read it, so changing it in one place
changes what "best" means everywhere. Default: val_miou, higher is better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ssnets.common.errors import UserError

MODES = ("max", "min")


@dataclass(frozen=True)
class Monitor:
    name: str = "val_miou"
    mode: str = "max"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"trainer.monitor.mode={self.mode!r} is not one of {', '.join(MODES)}.")

    @classmethod
    def from_config(cls, monitor_cfg: Mapping[str, Any]) -> Monitor:
        return cls(str(monitor_cfg["name"]), str(monitor_cfg["mode"]))

    def improves(self, value: float | None, best: float | None, min_delta: float = 0.0) -> bool:
        """Whether `value` beats `best` by more than `min_delta` (any finite value beats no best yet)."""
        if value is None or not math.isfinite(value):
            return False
        if best is None:
            return True
        return value - min_delta > best if self.mode == "max" else value + min_delta < best

    def sort_key(self, value: float | None) -> float:
        """Ascending order of this key is best first; a missing value sorts last."""
        if value is None or not math.isfinite(value):
            return math.inf
        return -value if self.mode == "max" else value

    def best(self, values: Sequence[float]) -> float | None:
        best = None
        for value in values:
            if self.improves(value, best):
                best = value
        return best
