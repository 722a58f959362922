"""A trained model's final metrics over whole splits, its size, and a picture of its predictions."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ssnets.data.types import Split
from ssnets.task.metrics import confusion_matrix, segmentation_metrics
from ssnets.task.pictures import prediction_grid, save_png


def parameter_counts(model: keras.Model) -> dict[str, int]:
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return {"total_params": model.count_params(), "trainable_params": trainable}


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
    """miou, iou_<class>, mean_dice, dice_<class>, pixel_accuracy and e1 over the whole split."""
    truths, predictions = predict_labels(model, dataset)
    cm = confusion_matrix(truths, predictions, num_classes, ignore_index)
    return segmentation_metrics(cm, class_names)


def write_model_summary(model: keras.Model, path: Path) -> Path:
    """Keras' layer-by-layer summary (nested encoders expanded) as text."""
    lines: list[str] = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line), expand_nested=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_preview(model: keras.Model, split: Split, count: int, path: Path) -> Path:
    """input | truth | prediction for the first `count` images of `split`, as one PNG."""
    images, truths = split.images[:count], split.masks[:count]
    predictions = np.argmax(keras.ops.convert_to_numpy(model.predict_on_batch(images.astype(np.float32))), axis=-1)
    return save_png(path, prediction_grid(images, truths, predictions))
