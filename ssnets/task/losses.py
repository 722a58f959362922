"""Segmentation losses: the `loss` config group.

Every loss takes softmax probabilities (B,H,W,K) and integer masks (B,H,W),
is written in `keras.ops` (any backend), skips pixels labelled `ignore_index`
and weighs class c by `class_weights[c]`. Each reduces a whole batch to one
number, so pixels, not images, are what is averaged.

The losses are registered Keras objects, so a model compiled with one loads
without custom_objects once `ssnets.task.losses` is imported (as its layers need
`ssnets.models`), or anywhere with `compile=False`.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from hydra.utils import instantiate
from keras import ops
from numpy.typing import ArrayLike
from omegaconf import DictConfig, ListConfig

from ssnets.common.errors import UserError


def share_of_replica(loss):
    """A batch-reduced loss as one TensorFlow replica's share: loss / replicas inside a replica context.

    Keras divides a loss by the replica count only when it reduces per-sample
    values itself; a loss that returns one number (every ssnets loss) is summed
    over replicas unscaled, which doubled the gradients on 2 devices.
    """
    if keras.backend.backend() != "tensorflow":
        return loss
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / replicas if replicas > 1 else loss


# Probabilities are clipped to [EPSILON, 1 - EPSILON] before log() and (1 - p)**gamma, so values
# and gradients stay finite where a probability reaches 0 or 1.
EPSILON = 1e-7


def resolve_class_weights(loss_cfg: DictConfig, data_cfg: DictConfig, train_masks: ArrayLike) -> list[float] | None:
    """loss.class_weights as one float per class: a given list, `auto` from the training masks, or None.

    Only `auto` reads `train_masks` (all of them, when a streamed split reads them on access).
    """
    weights = loss_cfg.class_weights
    if weights is None:
        return None
    if weights == "auto":
        masks = np.asarray(train_masks)
        return inverse_frequency_weights(masks, data_cfg.num_classes, data_cfg.ignore_index, data_cfg.class_names)
    if not isinstance(weights, ListConfig):
        raise UserError(
            f"loss.class_weights={weights} is neither a list nor auto; give one weight per class, e.g. [1,5]."
        )
    if len(weights) != data_cfg.num_classes:
        raise UserError(
            f"loss.class_weights has {len(weights)} values but data.num_classes is {data_cfg.num_classes}; "
            f"give one weight per class ({', '.join(data_cfg.class_names)}) or auto."
        )
    return [float(weight) for weight in weights]


def inverse_frequency_weights(
    masks: np.ndarray, num_classes: int, ignore_index: int | None, class_names: Sequence[str]
) -> list[float]:
    """pixels / (classes * pixels of class c), over the non-ignored pixels: a class at the average
    frequency 1/K gets 1, rarer classes more (scikit-learn's "balanced" weights)."""
    labels = masks[masks != ignore_index] if ignore_index is not None else masks.ravel()
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes)
    missing = [name for name, count in zip(class_names, counts, strict=True) if count == 0]
    if missing:
        raise UserError(
            f"loss.class_weights=auto cannot weigh class {', '.join(missing)}: it has no pixel in the "
            "training masks; give loss.class_weights as a list instead."
        )
    return (counts.sum() / (num_classes * counts)).tolist()


def class_weight_params(class_weights: list[float] | None, class_names: Sequence[str]) -> dict[str, float]:
    """class_weight_<class> MLflow params of the weights the loss uses (none without weights)."""
    if class_weights is None:
        return {}
    return {f"class_weight_{name}": weight for name, weight in zip(class_names, class_weights, strict=True)}


def build_loss(loss_cfg: DictConfig, ignore_index: int | None, class_weights: list[float] | None) -> keras.losses.Loss:
    """The configured loss; `class_weights` (resolved by resolve_class_weights) replaces loss.class_weights."""
    return instantiate(loss_cfg, ignore_index=ignore_index, class_weights=class_weights, _convert_="all")


class SegmentationLoss(keras.losses.Loss):
    """Flattens a batch to one-hot targets (pixels, classes), ignored pixels all 0, for `segmentation_loss`."""

    def __init__(
        self, ignore_index: int | None = None, class_weights: Sequence[float] | None = None, name: str | None = None
    ):
        super().__init__(name=name)
        self.ignore_index = ignore_index
        self.class_weights = None if class_weights is None else [float(weight) for weight in class_weights]

    def call(self, y_true, y_pred):
        num_classes = y_pred.shape[-1]
        probabilities = ops.reshape(ops.cast(y_pred, "float32"), (-1, num_classes))
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        if self.ignore_index is None:
            valid = ops.ones_like(labels, dtype="float32")
        else:
            is_valid = ops.not_equal(labels, self.ignore_index)
            valid = ops.cast(is_valid, "float32")
            labels = ops.where(is_valid, labels, 0)
        targets = ops.one_hot(labels, num_classes, dtype="float32") * valid[:, None]
        weights = ops.ones((num_classes,)) if self.class_weights is None else ops.convert_to_tensor(self.class_weights)
        return share_of_replica(self.segmentation_loss(targets, probabilities, valid, weights))

    def segmentation_loss(self, targets, probabilities, valid, weights):
        """targets (N,K) one-hot, 0 on ignored pixels; probabilities (N,K); valid (N,); weights (K,)."""
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, "ignore_index": self.ignore_index, "class_weights": self.class_weights}


def weighted_pixel_mean(per_pixel, targets, weights):
    """Mean of a per-pixel loss with each pixel weighted by its class's weight (0 for ignored pixels)."""
    pixel_weights = ops.sum(targets * weights, axis=-1)
    return ops.sum(pixel_weights * per_pixel) / ops.maximum(ops.sum(pixel_weights), EPSILON)


def cross_entropy_term(targets, probabilities, weights):
    true_class_log_probability = ops.sum(targets * ops.log(ops.clip(probabilities, EPSILON, 1.0 - EPSILON)), axis=-1)
    return weighted_pixel_mean(-true_class_log_probability, targets, weights)


def soft_dice_term(targets, probabilities, valid, weights, smooth):
    """1 - the class-weighted mean of per-class soft Dice over the batch; `smooth` keeps absent classes at Dice 1."""
    probabilities = probabilities * valid[:, None]
    intersection = ops.sum(targets * probabilities, axis=0)
    sizes = ops.sum(targets, axis=0) + ops.sum(probabilities, axis=0)
    dice = (2.0 * intersection + smooth) / (sizes + smooth)
    return 1.0 - ops.sum(weights * dice) / ops.sum(weights)


@keras.saving.register_keras_serializable(package="ssnets")
class CrossEntropy(SegmentationLoss):
    """-log p(true class), averaged over pixels weighted by their class weight (as torch's CrossEntropyLoss)."""

    def __init__(self, ignore_index=None, class_weights=None, name="cross_entropy"):
        super().__init__(ignore_index, class_weights, name)

    def segmentation_loss(self, targets, probabilities, valid, weights):
        return cross_entropy_term(targets, probabilities, weights)


@keras.saving.register_keras_serializable(package="ssnets")
class FocalLoss(SegmentationLoss):
    """Cross-entropy scaled by (1 - p(true class))**gamma, so confidently right pixels count less (Lin et al. 2017)."""

    def __init__(self, gamma: float = 2.0, ignore_index=None, class_weights=None, name="focal"):
        super().__init__(ignore_index, class_weights, name)
        self.gamma = float(gamma)

    def segmentation_loss(self, targets, probabilities, valid, weights):
        true_class_probability = ops.clip(ops.sum(targets * probabilities, axis=-1), EPSILON, 1.0 - EPSILON)
        per_pixel = -((1.0 - true_class_probability) ** self.gamma) * ops.log(true_class_probability)
        return weighted_pixel_mean(per_pixel, targets, weights)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="ssnets")
class DiceLoss(SegmentationLoss):
    """1 - soft Dice (2|P*T| + s) / (|P| + |T| + s) per class over the batch, class-weighted mean."""

    def __init__(self, smooth: float = 1.0, ignore_index=None, class_weights=None, name="dice"):
        super().__init__(ignore_index, class_weights, name)
        self.smooth = float(smooth)

    def segmentation_loss(self, targets, probabilities, valid, weights):
        return soft_dice_term(targets, probabilities, valid, weights, self.smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="ssnets")
class CrossEntropyDiceLoss(SegmentationLoss):
    """ce_weight * CrossEntropy + dice_weight * DiceLoss, both with the same class weights."""

    def __init__(
        self, ce_weight=1.0, dice_weight=1.0, smooth=1.0, ignore_index=None, class_weights=None, name="ce_dice"
    ):
        super().__init__(ignore_index, class_weights, name)
        self.ce_weight, self.dice_weight, self.smooth = float(ce_weight), float(dice_weight), float(smooth)

    def segmentation_loss(self, targets, probabilities, valid, weights):
        return self.ce_weight * cross_entropy_term(targets, probabilities, weights) + self.dice_weight * soft_dice_term(
            targets, probabilities, valid, weights, self.smooth
        )

    def get_config(self):
        weights = {"ce_weight": self.ce_weight, "dice_weight": self.dice_weight}
        return {**super().get_config(), **weights, "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="ssnets")
class LovaszSoftmaxLoss(SegmentationLoss):
    """Lovasz-softmax (Berman et al. 2018): the convex surrogate of 1 - IoU, per class over the batch,
    averaged (class-weighted) over the classes present in the batch's masks.

    Ignored pixels get error 0 and so sort after every pixel that counts: they
    change the Jaccard steps only where the error they multiply is 0.
    """

    def __init__(self, ignore_index=None, class_weights=None, name="lovasz"):
        super().__init__(ignore_index, class_weights, name)

    def segmentation_loss(self, targets, probabilities, valid, weights):
        errors = ops.abs(targets - probabilities) * valid[:, None]
        order = ops.argsort(-errors, axis=0)
        sorted_errors = ops.take_along_axis(errors, order, axis=0)
        sorted_targets = ops.take_along_axis(targets, order, axis=0)
        class_pixels = ops.sum(targets, axis=0)
        intersection = class_pixels - ops.cumsum(sorted_targets, axis=0)
        union = class_pixels + ops.cumsum(1.0 - sorted_targets, axis=0)
        jaccard = 1.0 - intersection / union
        jaccard_steps = ops.concatenate([jaccard[:1], jaccard[1:] - jaccard[:-1]], axis=0)
        per_class = ops.sum(sorted_errors * jaccard_steps, axis=0)
        present_weights = weights * ops.cast(class_pixels > 0, "float32")
        return ops.sum(present_weights * per_class) / ops.maximum(ops.sum(present_weights), EPSILON)
