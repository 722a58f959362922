"""Stop training the moment the loss stops being a finite number."""

from __future__ import annotations

import math

import keras

from ssnets.common.errors import UserError


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; usually the learning rate is too high."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raise TrainingDiverged naming the epoch and step of the first NaN/Inf loss.

    keras.callbacks.TerminateOnNaN names only the batch; raising (rather than
    setting stop_training) also keeps the epoch-end callbacks from saving the
    broken weights over the last good checkpoint.
    """

    def __init__(self):
        super().__init__()
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDiverged(
                f"Loss became {float(loss)} at epoch {self.epoch + 1}, step {batch + 1}; lower optimizer.lr "
                "(checkpoints of earlier epochs are kept)."
            )
