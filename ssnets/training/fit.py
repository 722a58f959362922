"""Compile and fit a segmentation model, checkpointing every epoch."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ssnets.common.run_files import BEST_MODEL
from ssnets.task.losses import build_loss
from ssnets.task.metrics import MeanDice
from ssnets.training.checkpoint import EpochCheckpoint, Progress
from ssnets.training.compile_time import CompileTimer
from ssnets.training.divergence import StopOnNonFiniteLoss
from ssnets.training.monitor import Monitor


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
) -> FitResult:
    """Train up to `epochs`, from `progress` when resuming, checkpointing every epoch into run_dir.

    The best epoch by `monitor` is kept in run_dir/best.keras; with `restore_best`
    the model ends with its weights, which is what the final evaluation then
    measures. The first epoch's logs get `compile_seconds`. `callbacks` (the
    config's, then the tracker's logger) run after the checkpoint, so an epoch is
    committed before anything logs it: a resumed run never logs an epoch twice.
    """
    first_epoch, start = progress.epoch, time.perf_counter()
    model.fit(
        train,
        validation_data=val,
        epochs=epochs,
        initial_epoch=progress.epoch,
        shuffle=False,  # the tf.data pipeline shuffles (Keras would only warn that it ignores shuffle=True)
        # compile_seconds joins the first epoch's logs after the checkpoint (not part of the resumable history).
        callbacks=[EpochCheckpoint(run_dir, progress, monitor), CompileTimer(), StopOnNonFiniteLoss(), *callbacks],
        verbose=verbose,
    )
    train_seconds = time.perf_counter() - start
    if restore_best and progress.best_epoch is not None:
        model.load_weights(Path(run_dir) / BEST_MODEL)
    return FitResult(
        progress.history, train_seconds, progress.epoch - first_epoch, progress.best_epoch, progress.best_score
    )
