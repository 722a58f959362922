"""Training callbacks chosen by the config: the learning-rate scheduler and early stopping.

Each scheduler is a Keras callback that writes the epoch's `learning_rate`
into the epoch logs; they run before the tracker's callbacks, which log it
to MLflow at step=epoch with the other per-epoch metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
from hydra.utils import instantiate
from omegaconf import DictConfig


def recipe_callbacks(cfg: DictConfig, previous_scores: Sequence[float] = ()) -> list[keras.callbacks.Callback]:
    """The `scheduler` group's callback, then early stopping when trainer.early_stopping.patience is set.

    `previous_scores`: the val_miou of the epochs a resumed run already trained, so that early
    stopping counts on from them rather than from zero.
    """
    callbacks = [instantiate(cfg.scheduler)]
    stopping = cfg.trainer.early_stopping
    if stopping.patience is not None:
        # Stopping only: the best epoch is restored by training.fit from best.keras (trainer.restore_best),
        # so early stopping and restore_best agree on which weights the run ends with.
        callbacks.append(
            ResumableEarlyStopping(
                previous_scores,
                monitor="val_miou",
                mode="max",
                patience=stopping.patience,
                min_delta=stopping.min_delta,
                verbose=1,
            )
        )
    return callbacks


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """keras EarlyStopping that starts from the best score and the epochs waited since it in
    `previous_scores` (the monitored value of each epoch trained before a resume)."""

    def __init__(self, previous_scores: Sequence[float], **kwargs):
        super().__init__(**kwargs)
        self.previous_scores = [float(score) for score in previous_scores]

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if not self.previous_scores:
            return
        self._set_monitor_op()
        for score in self.previous_scores:
            self.wait += 1
            if self._is_improvement(score, self.best):
                self.best, self.wait = score, 0


def constant_schedule(base_lr: float) -> keras.callbacks.LearningRateScheduler:
    """scheduler=constant: optimizer.lr every epoch."""
    return keras.callbacks.LearningRateScheduler(lambda epoch: float(base_lr))


def cosine_schedule(
    base_lr: float, epochs: int, warmup_epochs: int, min_lr: float
) -> keras.callbacks.LearningRateScheduler:
    """scheduler=cosine: see cosine_learning_rate."""
    return keras.callbacks.LearningRateScheduler(
        lambda epoch: cosine_learning_rate(epoch, base_lr, epochs, warmup_epochs, min_lr)
    )


def cosine_learning_rate(epoch: int, base_lr: float, epochs: int, warmup_epochs: int, min_lr: float) -> float:
    """Linear warm-up to base_lr over warmup_epochs (epoch e gets base_lr*(e+1)/(warmup_epochs+1)), then
    half a cosine from base_lr towards min_lr over the remaining epochs."""
    if epoch < warmup_epochs:
        return base_lr * (epoch + 1) / (warmup_epochs + 1)
    progress = (epoch - warmup_epochs) / max(epochs - warmup_epochs, 1)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def step_schedule(base_lr: float, step_epochs: int, gamma: float) -> keras.callbacks.LearningRateScheduler:
    """scheduler=step: base_lr * gamma**(epoch // step_epochs)."""
    return keras.callbacks.LearningRateScheduler(lambda epoch: float(base_lr * gamma ** (epoch // step_epochs)))
