"""Compile, fit and evaluate a segmentation model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ssnets.checkpoint import BEST_MODEL, EpochCheckpoint, Progress
from ssnets.compile_time import CompileTimer
from ssnets.losses import build_loss
from ssnets.metrics import MeanDice, confusion_matrix, segmentation_metrics


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
            MeanDice(num_classes=data.num_classes, name="mean_dice", sparse_y_pred=False, ignore_class=data.ignore_index),
        ],
        jit_compile=cfg.trainer.jit_compile,
    )


@dataclass
class FitResult:
    history: dict[str, list[float]]
    train_seconds: float
    best_epoch: int | None


def fit(
    model: keras.Model,
    train: tf.data.Dataset,
    val: tf.data.Dataset,
    *,
    epochs: int,
    run_dir: Path,
    callbacks: list[keras.callbacks.Callback],
    restore_best: bool,
    verbose: str | int,
    progress: Progress | None = None,
) -> FitResult:
    """Train up to `epochs`, from `progress` when resuming, checkpointing every epoch into run_dir.

    The best epoch by val mIoU is kept in run_dir/best.keras; with
    `restore_best` the model ends with its weights, which is what the final
    evaluation then measures. The first epoch's logs get `compile_seconds`.
    """
    progress = progress or Progress()
    start = time.perf_counter()
    model.fit(
        train,
        validation_data=val,
        epochs=epochs,
        initial_epoch=progress.epoch,
        shuffle=False,  # the tf.data pipeline shuffles (Keras would only warn that it ignores shuffle=True)
        # The checkpoint commits an epoch before the trackers log it, so a resumed run never logs an epoch twice;
        # compile_seconds joins the first epoch's logs after the checkpoint (not part of the resumable history).
        callbacks=[EpochCheckpoint(run_dir, progress), CompileTimer(), *callbacks],
        verbose=verbose,
    )
    train_seconds = time.perf_counter() - start
    if restore_best and progress.best_epoch is not None:
        model.load_weights(run_dir / BEST_MODEL)
    return FitResult(progress.history, train_seconds, progress.best_epoch)


def predict_labels(model: keras.Model, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(true masks, predicted class ids) over a whole dataset, both (N,H,W)."""
    truths, predictions = [], []
    # NumPy batches: every backend's predict_on_batch takes them (JAX rejects tf tensors).
    for images, masks in dataset.as_numpy_iterator():
        probabilities = model.predict_on_batch(images)
        predictions.append(np.argmax(keras.ops.convert_to_numpy(probabilities), axis=-1).astype(np.uint8))
        truths.append(masks.astype(np.uint8))
    return np.concatenate(truths), np.concatenate(predictions)


def evaluate(
    model: keras.Model, dataset: tf.data.Dataset, num_classes: int, class_names: list[str], ignore_index: int | None
) -> dict[str, float]:
    """miou, iou_<class>, pixel_accuracy and e1 over the whole split."""
    truths, predictions = predict_labels(model, dataset)
    cm = confusion_matrix(truths, predictions, num_classes, ignore_index)
    return segmentation_metrics(cm, class_names)
