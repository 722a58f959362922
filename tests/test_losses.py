"""The `loss` group's losses and class weights against values worked out by hand."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssnets.common.errors import UserError
from ssnets.task.losses import (
    CrossEntropy,
    CrossEntropyDiceLoss,
    DiceLoss,
    FocalLoss,
    LovaszSoftmaxLoss,
    build_loss,
    inverse_frequency_weights,
    resolve_class_weights,
)

from conftest import compose_config

# One 2x2 image, 2 classes, the last pixel void (255):
#   truth  0 1      p(class 1)  0.2 0.6
#          1 255                0.9 0.5
# so the true-class probabilities of the three pixels that count are 0.8, 0.6, 0.9.
TRUTH = np.array([[[0, 1], [1, 255]]], np.int32)
P_IRIS = np.array([0.2, 0.6, 0.9, 0.5], np.float32)
PROBS = np.stack([1 - P_IRIS, P_IRIS], axis=-1).reshape(1, 2, 2, 2)
LN = math.log

ALL_LOSSES = [CrossEntropy, FocalLoss, DiceLoss, CrossEntropyDiceLoss, LovaszSoftmaxLoss]


def value(loss: keras.losses.Loss, truth=TRUTH, probs=PROBS) -> float:
    return float(keras.ops.convert_to_numpy(loss(truth, probs)))


def test_cross_entropy_by_hand():
    assert value(CrossEntropy(ignore_index=255)) == pytest.approx(-(LN(0.8) + LN(0.6) + LN(0.9)) / 3, rel=1e-5)
    # class weights [1, 3]: a weighted mean over pixels, divided by the weights' sum 1 + 3 + 3
    weighted = -(1 * LN(0.8) + 3 * LN(0.6) + 3 * LN(0.9)) / 7
    assert value(CrossEntropy(ignore_index=255, class_weights=[1, 3])) == pytest.approx(weighted, rel=1e-5)


def test_unweighted_cross_entropy_equals_keras():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    truth = rng.integers(0, 3, size=(2, 8, 8)).astype(np.int32)
    truth[0, :2] = 255
    ours = value(CrossEntropy(ignore_index=255, class_weights=[1, 1, 1]), truth, probs)
    theirs = float(keras.losses.SparseCategoricalCrossentropy(ignore_class=255)(truth, probs))
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_focal_by_hand():
    # (1 - p)^2 * -ln p per pixel, averaged
    expected = (0.2**2 * -LN(0.8) + 0.4**2 * -LN(0.6) + 0.1**2 * -LN(0.9)) / 3
    assert value(FocalLoss(gamma=2.0, ignore_index=255)) == pytest.approx(expected, rel=1e-5)
    # gamma 0 is plain cross-entropy
    assert value(FocalLoss(gamma=0.0, ignore_index=255)) == pytest.approx(value(CrossEntropy(ignore_index=255)))


def test_dice_by_hand():
    # background: truth {px0}, probs (0.8, 0.4, 0.1): (2*0.8 + 1) / (1 + 1.3 + 1)
    # iris: truth {px1, px2}, probs (0.2, 0.6, 0.9): (2*1.5 + 1) / (2 + 1.7 + 1)
    dice_background, dice_iris = 2.6 / 3.3, 4.0 / 4.7
    assert value(DiceLoss(smooth=1.0, ignore_index=255)) == pytest.approx(1 - (dice_background + dice_iris) / 2)
    weighted = 1 - (1 * dice_background + 3 * dice_iris) / 4
    assert value(DiceLoss(smooth=1.0, ignore_index=255, class_weights=[1, 3])) == pytest.approx(weighted)


def test_ce_dice_is_the_weighted_sum():
    ce, dice = value(CrossEntropy(ignore_index=255)), value(DiceLoss(ignore_index=255))
    combined = CrossEntropyDiceLoss(ce_weight=0.5, dice_weight=2.0, ignore_index=255)
    assert value(combined) == pytest.approx(0.5 * ce + 2.0 * dice, rel=1e-5)


def test_lovasz_by_hand():
    # Errors |truth - p| are 0.2, 0.4, 0.1 for both classes; sorted descending: px1, px0, px2.
    # background (truth {px0}): Jaccard losses of the growing sets 1/2, 1, 1 -> steps 1/2, 1/2, 0
    #   -> 0.4*1/2 + 0.2*1/2 + 0.1*0 = 0.3
    # iris (truth {px1, px2}): Jaccard losses 1/2, 2/3, 1 -> steps 1/2, 1/6, 1/3
    #   -> 0.4/2 + 0.2/6 + 0.1/3 = 0.8/3
    assert value(LovaszSoftmaxLoss(ignore_index=255)) == pytest.approx((0.3 + 0.8 / 3) / 2, rel=1e-5)
    weighted = (1 * 0.3 + 3 * 0.8 / 3) / 4
    assert value(LovaszSoftmaxLoss(ignore_index=255, class_weights=[1, 3])) == pytest.approx(weighted, rel=1e-5)


def test_lovasz_averages_only_classes_present():
    truth = np.zeros((1, 2, 2), np.int32)  # iris absent
    probs = np.stack([1 - P_IRIS, P_IRIS], axis=-1).reshape(1, 2, 2, 2)
    # background errors 0.2, 0.6, 0.9, 0.5 sorted: 0.9, 0.6, 0.5, 0.2; Jaccard losses 1/4, 2/4, 3/4, 1
    assert value(LovaszSoftmaxLoss(), truth, probs) == pytest.approx((0.9 + 0.6 + 0.5 + 0.2) / 4, rel=1e-5)


@pytest.mark.parametrize("loss_class", ALL_LOSSES)
def test_ignored_pixels_change_nothing(loss_class):
    """The void pixel, whatever it predicts, gives the loss of the three other pixels alone."""
    three_pixels_truth = TRUTH.reshape(1, 1, 4)[:, :, :3]
    three_pixels_probs = PROBS.reshape(1, 1, 4, 2)[:, :, :3]
    other_void_prediction = PROBS.copy()
    other_void_prediction[0, 1, 1] = [0.99, 0.01]
    expected = value(loss_class(), three_pixels_truth, three_pixels_probs)
    assert value(loss_class(ignore_index=255)) == pytest.approx(expected, rel=1e-5)
    assert value(loss_class(ignore_index=255), TRUTH, other_void_prediction) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("loss_class", ALL_LOSSES)
def test_perfect_prediction_is_the_minimum_and_gradients_are_finite(loss_class):
    truth = np.array([[[0, 1, 2], [2, 1, 255]]], np.int32)
    perfect = np.eye(3, dtype=np.float32)[np.where(truth == 255, 0, truth)]
    loss = loss_class(ignore_index=255, class_weights=[1, 2, 3])
    assert value(loss, truth, perfect) == pytest.approx(0.0, abs=1e-6)

    # One-hot (exactly 0 and 1) and near-uniform predictions: the gradient is finite everywhere.
    for probs in (perfect, np.full_like(perfect, 1 / 3)):
        variable = tf.Variable(probs)
        with tf.GradientTape() as tape:
            result = loss(truth, variable)
        gradient = tape.gradient(result, variable).numpy()
        assert np.all(np.isfinite(gradient)) and np.isfinite(float(result))
    assert np.any(gradient != 0)


@pytest.mark.parametrize("loss_class", ALL_LOSSES)
def test_losses_round_trip_through_keras_serialization(loss_class):
    loss = loss_class(ignore_index=255, class_weights=[1.0, 3.0])
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is loss_class and restored.get_config() == loss.get_config()
    assert value(restored) == pytest.approx(value(loss))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("ce", CrossEntropy),
        ("focal", FocalLoss),
        ("dice", DiceLoss),
        ("ce_dice", CrossEntropyDiceLoss),
        ("lovasz", LovaszSoftmaxLoss),
    ],
)
def test_each_loss_config_builds_its_loss(name, expected):
    cfg = compose_config([f"loss={name}", "data.ignore_index=255"])
    loss = build_loss(cfg.loss, cfg.data.ignore_index, [1.0, 2.0])
    assert type(loss) is expected and loss.ignore_index == 255 and loss.class_weights == [1.0, 2.0]


def test_auto_class_weights_are_inverse_frequencies():
    # 7 pixels count: 4 background, 3 iris -> 7 / (2 * 4) and 7 / (2 * 3)
    masks = np.array([[[0, 0], [0, 1]], [[0, 255], [1, 1]]], np.uint8)
    cfg = compose_config(["loss.class_weights=auto", "data.ignore_index=255"])
    assert resolve_class_weights(cfg.loss, cfg.data, masks) == pytest.approx([7 / 8, 7 / 6])


def test_listed_class_weights_are_used_as_given():
    cfg = compose_config(["loss=dice", "loss.class_weights=[1,4.5]"])
    assert resolve_class_weights(cfg.loss, cfg.data, np.zeros((1, 2, 2))) == [1.0, 4.5]


@pytest.mark.parametrize(
    "weights, match",
    [
        ("[1,2,3]", r"loss.class_weights has 3 values but data.num_classes is 2"),
        ("balanced", r"loss.class_weights=balanced is neither a list nor auto"),
    ],
)
def test_bad_class_weights_are_user_errors(weights, match):
    cfg = compose_config([f"loss.class_weights={weights}"])
    with pytest.raises(UserError, match=match):
        resolve_class_weights(cfg.loss, cfg.data, np.zeros((1, 2, 2)))


def test_auto_class_weights_need_every_class_in_the_training_masks():
    with pytest.raises(UserError, match="cannot weigh class iris: it has no pixel"):
        inverse_frequency_weights(np.zeros((2, 4, 4), np.uint8), 2, None, ["background", "iris"])
