"""Compile and fit a segmentation model, checkpointing every epoch."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ssnets.task.losses import build_loss
from ssnets.task.metrics import MeanDice
from ssnets.training.checkpoint import EpochCheckpoint, Progress, load_best_weights
from ssnets.training.compile_time import CompileTimer
from ssnets.training.divergence import StopOnNonFiniteLoss
from ssnets.training.epoch_timing import EpochPhaseTimer
from ssnets.training.monitor import Monitor

log = logging.getLogger(__name__)


def build_optimizer(optimizer_cfg: DictConfig) -> keras.optimizers.Optimizer:
    """The configured keras optimizer, with `lr` passed as its learning_rate."""
    params = OmegaConf.to_container(optimizer_cfg, resolve=True)
    return instantiate(params, learning_rate=params.pop("lr"))


def compile_model(model: keras.Model, cfg: DictConfig, class_weights: list[float] | None = None) -> None:
    """Compile with the configured optimizer and loss; `class_weights` are loss.class_weights as
    losses.resolve_class_weights resolved them (None: unweighted)."""
    data = cfg.data
    model.compile(
        optimizer=build_optimizer(cfg.optimizer),
        loss=build_loss(cfg.loss, data.ignore_index, class_weights),
        metrics=[
            keras.metrics.MeanIoU(
                num_classes=data.num_classes, name="miou", sparse_y_pred=False, ignore_class=data.ignore_index
            ),
            MeanDice(
                num_classes=data.num_classes, name="mean_dice", sparse_y_pred=False, ignore_class=data.ignore_index
            ),
        ],
        jit_compile=cfg.trainer.jit_compile,
    )


@dataclass
class FitResult:
    history: dict[str, list[float]]  # every epoch's logs, those of a resumed run's earlier epochs included
    train_seconds: float
    epochs_trained: int  # by this process
    best_epoch: int | None
    best_score: float | None
    phase_seconds: dict[str, list[float]]  # per epoch of this process: steps, validation, checkpoint, callbacks


def progress_verbosity(verbose: str | int) -> str | int:
    """Keras' verbose for fit(): "auto" is the progress bar on a terminal and one line per epoch otherwise,
    since Keras redraws its bar with carriage returns even into a log file (megabytes for a long run)."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return verbose


def fit(
    model: keras.Model,
    train: tf.data.Dataset,
    val: tf.data.Dataset,
    *,
    epochs: int,
    run_dir: Path,
    progress: Progress,
    monitor: Monitor,
    callbacks: list[keras.callbacks.Callback],
    restore_best: bool,
    verbose: str | int,
    checkpoint_interval_s: float = 0.0,
) -> FitResult:
    """Train up to `epochs`, from `progress` when resuming, checkpointing into run_dir at the end of an epoch
    once `checkpoint_interval_s` have passed since the last write (and after the first and the last epoch).

    The best epoch by `monitor` is kept in run_dir/best.keras; with `restore_best`
    the model ends with its weights, which is what the final evaluation then
    measures. The first epoch's logs get `compile_seconds`. `callbacks` (the
    config's, then the tracker's logger) run after the checkpoint. A process killed between writes has
    logged epochs that its resumed run trains again; that run's logger skips what the tracker already has.
    """
    first_epoch, start, timer = progress.epoch, time.perf_counter(), EpochPhaseTimer()
    checkpoint = EpochCheckpoint(run_dir, progress, monitor, checkpoint_interval_s)
    model.fit(
        train,
        validation_data=val,
        epochs=epochs,
        initial_epoch=progress.epoch,
        shuffle=False,  # the tf.data pipeline shuffles (Keras would only warn that it ignores shuffle=True)
        # compile_seconds and the phase times join the epoch's logs after the checkpoint (not part of the
        # resumable history), before the tracker's logger.
        callbacks=timer.around(checkpoint, [CompileTimer(), StopOnNonFiniteLoss(), *callbacks]),
        verbose=progress_verbosity(verbose),
    )
    train_seconds = time.perf_counter() - start
    if restore_best and progress.best_epoch is not None:
        load_best_weights(model, run_dir)
    log.info(
        "Outside the training steps (validation, checkpoint, callbacks): %.0f%% of the epochs' time",
        100 * timer.fixed_cost_share(),
    )
    return FitResult(
        progress.history,
        train_seconds,
        progress.epoch - first_epoch,
        progress.best_epoch,
        progress.best_score,
        timer.seconds,
    )
