"""Segmentation metrics computed from a confusion matrix over a whole split.

`miou` is the mean over classes of intersection-over-union, taken over the
classes that occur in the ground truth or the prediction (as Keras' MeanIoU
does); `mean_dice` is the same mean of per-class Dice (F1) = 2|A&B| / (|A| + |B|);
`e1` is the NICE-I error, the fraction of misclassified pixels. `MeanDice`
is mean_dice as a Keras metric, so it is reported every epoch like Keras' MeanIoU.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops


def confusion_matrix(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, ignore_index: int | None = None
) -> np.ndarray:
    """Counts[i, j] = pixels of true class i predicted as class j (int64).

    Pixels whose true label equals `ignore_index` are left out.
    """
    y_true = np.asarray(y_true).ravel().astype(np.int64)
    y_pred = np.asarray(y_pred).ravel().astype(np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} pixels but y_pred has {y_pred.size}.")
    keep = y_true != ignore_index if ignore_index is not None else slice(None)
    y_true, y_pred = y_true[keep], y_pred[keep]
    if y_true.size and (y_true.max() >= num_classes or y_pred.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}.")
    flat = y_true * num_classes + y_pred
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_metrics(cm: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """miou, iou_<class>, mean_dice, dice_<class>, pixel_accuracy and e1 from a confusion matrix.

    A class absent from both ground truth and prediction has no defined IoU or
    Dice: its iou_<class> and dice_<class> are NaN and it does not enter the means.
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.shape != (len(class_names), len(class_names)):
        raise ValueError(f"confusion matrix {cm.shape} does not match {len(class_names)} class names.")
    true_positives = np.diag(cm)
    sizes = cm.sum(axis=0) + cm.sum(axis=1)
    union = sizes - true_positives
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positives / union, np.nan)
        dice = np.where(sizes > 0, 2 * true_positives / sizes, np.nan)
    total = cm.sum()
    pixel_accuracy = float(true_positives.sum() / total) if total else float("nan")
    metrics = {"miou": float(np.nanmean(iou)) if np.any(union > 0) else float("nan")}
    metrics.update({f"iou_{name}": float(value) for name, value in zip(class_names, iou, strict=True)})
    metrics["mean_dice"] = float(np.nanmean(dice)) if np.any(sizes > 0) else float("nan")
    metrics.update({f"dice_{name}": float(value) for name, value in zip(class_names, dice, strict=True)})
    metrics["pixel_accuracy"] = pixel_accuracy
    metrics["e1"] = 1.0 - pixel_accuracy
    return metrics


@keras.saving.register_keras_serializable(package="ssnets")
class MeanDice(keras.metrics.MeanIoU):
    """mean_dice from the confusion matrix MeanIoU accumulates (same classes, same ignore_class)."""

    def result(self):
        cm = ops.cast(self.total_cm, "float32")
        sizes = ops.sum(cm, axis=0) + ops.sum(cm, axis=1)
        present = ops.cast(sizes > 0, "float32")
        dice = 2.0 * ops.diagonal(cm) / ops.maximum(sizes, 1.0)
        return ops.sum(dice * present) / ops.maximum(ops.sum(present), 1.0)
