"""Where each epoch's time goes: training steps, validation, the checkpoint, and the callbacks after it.

The training steps are the work; the rest is a fixed cost per epoch, which on a
small dataset (or a fast GPU) can rival the steps themselves. `EpochPhaseTimer`
places its marks around the checkpoint callback; every epoch's logs get
`steps_seconds`, `validation_seconds` and `checkpoint_seconds` (so the tracker
logs them with the epoch), and the log gets one line per epoch with all four.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import keras

log = logging.getLogger(__name__)

PHASES = ("steps", "validation", "checkpoint", "callbacks")


class EpochPhaseTimer:
    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {phase: [] for phase in PHASES}
        self._marks: dict[str, float] = {}

    def around(
        self, checkpoint: keras.callbacks.Callback, others: Sequence[keras.callbacks.Callback]
    ) -> list[keras.callbacks.Callback]:
        """The callbacks to give fit(): the checkpoint first, then `others`, with this timer's marks between."""
        return [_EpochStart(self), checkpoint, _CheckpointDone(self), *others, _EpochDone(self)]

    def mark(self, name: str) -> None:
        self._marks[name] = time.perf_counter()

    def between(self, start: str, end: str) -> float:
        return self._marks[end] - self._marks[start]

    def fixed_cost_share(self) -> float:
        """Share of the epochs' time outside the training steps (validation, checkpoint, callbacks)."""
        total = sum(sum(values) for values in self.seconds.values())
        return 1.0 - sum(self.seconds["steps"]) / total if total else 0.0


class _EpochStart(keras.callbacks.Callback):
    def __init__(self, timer: EpochPhaseTimer):
        super().__init__()
        self.timer = timer
        self.validated = False

    def on_epoch_begin(self, epoch, logs=None):
        self.timer.mark("epoch")
        self.validated = False

    def on_test_begin(self, logs=None):
        self.timer.mark("validation")
        self.validated = True

    def on_epoch_end(self, epoch, logs=None):
        self.timer.mark("callbacks")
        if not self.validated:  # no validation this epoch: the steps end where the callbacks start
            self.timer.mark("validation")


class _CheckpointDone(keras.callbacks.Callback):
    def __init__(self, timer: EpochPhaseTimer):
        super().__init__()
        self.timer = timer

    def on_epoch_end(self, epoch, logs=None):
        timer = self.timer
        timer.mark("checkpointed")
        phases = {
            "steps": timer.between("epoch", "validation"),
            "validation": timer.between("validation", "callbacks"),
            "checkpoint": timer.between("callbacks", "checkpointed"),
        }
        for phase, seconds in phases.items():
            timer.seconds[phase].append(seconds)
            if logs is not None:
                logs[f"{phase}_seconds"] = seconds


class _EpochDone(keras.callbacks.Callback):
    def __init__(self, timer: EpochPhaseTimer):
        super().__init__()
        self.timer = timer

    def on_epoch_end(self, epoch, logs=None):
        timer = self.timer
        timer.mark("done")
        timer.seconds["callbacks"].append(timer.between("checkpointed", "done"))
        latest = {phase: values[-1] for phase, values in timer.seconds.items()}
        log.info(
            "Epoch %d took %.1f s: steps %.1f s, validation %.1f s, checkpoint %.1f s, callbacks and logging %.1f s",
            epoch + 1,
            sum(latest.values()),
            *latest.values(),
        )
