"""Learning-rate schedules: the `scheduler` config group.

Each is a Keras LearningRateScheduler callback setting the rate at the start of
every epoch; Keras writes the epoch's `learning_rate` into the epoch logs, which
the tracker then logs at step = epoch with the other per-epoch metrics.
`scheduler=plateau` is keras.callbacks.ReduceLROnPlateau itself.
"""

from __future__ import annotations

import math

import keras


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
