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

from ssnets.metrics import confusion_matrix, segmentation_metrics

BEST_CHECKPOINT = "best.keras"


def build_optimizer(optimizer_cfg: DictConfig) -> keras.optimizers.Optimizer:
    """The configured keras optimizer, with `lr` passed as its learning_rate."""
    params = OmegaConf.to_container(optimizer_cfg, resolve=True)
    return instantiate(params, learning_rate=params.pop("lr"))


def compile_model(model: keras.Model, cfg: DictConfig) -> None:
    data = cfg.data
    model.compile(
        optimizer=build_optimizer(cfg.optimizer),
        loss=keras.losses.SparseCategoricalCrossentropy(ignore_class=data.ignore_index),
        metrics=[
            keras.metrics.MeanIoU(
                num_classes=data.num_classes, name="miou", sparse_y_pred=False, ignore_class=data.ignore_index
            )
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
) -> FitResult:
    """Train for `epochs`, keeping the best epoch by val mIoU in run_dir/best.keras.

    With `restore_best` the model ends with the best epoch's weights, which is
    what the final evaluation then measures.
    """
    checkpoint = keras.callbacks.ModelCheckpoint(
        run_dir / BEST_CHECKPOINT, monitor="val_miou", mode="max", save_best_only=True
    )
    start = time.perf_counter()
    history = model.fit(
        train, validation_data=val, epochs=epochs, callbacks=[checkpoint, *callbacks], verbose=verbose
    ).history
    train_seconds = time.perf_counter() - start
    best_epoch = int(np.argmax(history["val_miou"])) if history.get("val_miou") else None
    if restore_best and best_epoch is not None:
        model.load_weights(run_dir / BEST_CHECKPOINT)
    return FitResult(history, train_seconds, best_epoch)


def predict_labels(model: keras.Model, dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(true masks, predicted class ids) over a whole dataset, both (N,H,W)."""
    truths, predictions = [], []
    for images, masks in dataset:
        probabilities = model.predict_on_batch(images)
        predictions.append(np.argmax(keras.ops.convert_to_numpy(probabilities), axis=-1).astype(np.uint8))
        truths.append(keras.ops.convert_to_numpy(masks).astype(np.uint8))
    return np.concatenate(truths), np.concatenate(predictions)


def evaluate(
    model: keras.Model, dataset: tf.data.Dataset, num_classes: int, class_names: list[str], ignore_index: int | None
) -> dict[str, float]:
    """miou, iou_<class>, pixel_accuracy and e1 over the whole split."""
    truths, predictions = predict_labels(model, dataset)
    cm = confusion_matrix(truths, predictions, num_classes, ignore_index)
    return segmentation_metrics(cm, class_names)
