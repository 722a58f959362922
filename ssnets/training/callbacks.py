"""The `callbacks` config group: Keras callbacks composed from config, and the ones every run has.

`cfg.callbacks` maps a name to a callback config with a `_target_` (as in
lightning-hydra-template); each entry is instantiated in order, and an entry that
is null, or whose factory returns None (early stopping without a patience), adds
nothing. The default set is the LR schedule (`lr_schedule: ${scheduler}`) and early
stopping; a user adds one with `+callbacks.NAME._target_=my.module.Callback` or a
YAML of their own in `conf/callbacks/`. A callback that also implements
`restore_history(history)` is handed the per-epoch logs of the epochs a resumed
run already trained, so it carries on from them.

Around these the training loop adds its own: the epoch checkpoint first (an epoch is
committed before anything logs it), the compile timer, the NaN stop, and last the
tracker's epoch logger and the per-epoch prediction picture (`epoch_pictures`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import keras
from hydra.utils import instantiate
from omegaconf import DictConfig

from ssnets.tracking.base import Tracker
from ssnets.training.monitor import Monitor


@runtime_checkable
class ResumableCallback(Protocol):
    def restore_history(self, history: Mapping[str, Sequence[float]]) -> None:
        """Take up the state the epochs in `history` (metric name -> one value per epoch) would have left."""


def build_callbacks(
    callbacks_cfg: DictConfig, history: Mapping[str, Sequence[float]] | None = None
) -> list[keras.callbacks.Callback]:
    """The configured callbacks in config order; resumable ones restored from `history` when given."""
    callbacks = []
    for entry in callbacks_cfg.values():
        callback = instantiate(entry) if entry is not None else None
        if callback is None:
            continue
        if history and isinstance(callback, ResumableCallback):
            callback.restore_history(history)
        callbacks.append(callback)
    return callbacks


def early_stopping(monitor: str, mode: str, patience: int | None, min_delta: float) -> ResumableEarlyStopping | None:
    """callbacks.early_stopping: stop after `patience` epochs without a gain of the monitor (None: never stop)."""
    if patience is None:
        return None
    # Stopping only: the best epoch is restored by fit from best.keras (trainer.restore_best),
    # so early stopping and restore_best agree on which weights the run ends with.
    return ResumableEarlyStopping(monitor=monitor, mode=mode, patience=patience, min_delta=min_delta, verbose=1)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """keras EarlyStopping that a resumed run starts from the best score, and the epochs waited since it,
    of the epochs it already trained."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.previous_best: float | None = None
        self.previous_wait = 0

    def restore_history(self, history: Mapping[str, Sequence[float]]) -> None:
        rule = Monitor(self.monitor, self.mode)
        best, wait = None, 0
        for score in history.get(self.monitor, []):
            wait += 1
            if rule.improves(float(score), best, abs(self.min_delta)):
                best, wait = float(score), 0
        self.previous_best, self.previous_wait = best, wait

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.previous_best is not None:
            self.best, self.wait = self.previous_best, self.previous_wait


class EpochMetricsLogger(keras.callbacks.Callback):
    """Every epoch's Keras logs (loss, val_*, learning_rate, compile_seconds) to the tracker at step = epoch,
    from `first_epoch` on (a resumed run's earlier epochs are logged already)."""

    def __init__(self, tracker: Tracker, first_epoch: int = 0):
        super().__init__()
        self.tracker = tracker
        self.first_epoch = first_epoch

    def on_epoch_end(self, epoch, logs=None):
        if logs and epoch >= self.first_epoch:
            self.tracker.log_metrics({name: float(value) for name, value in logs.items()}, step=epoch)
