"""Confusion-matrix metrics against values worked out by hand."""

import math

import numpy as np
import pytest

from ssnets.task.metrics import confusion_matrix, segmentation_metrics

# 2x4 image: truth vs prediction
#   truth  0 0 1 1     pred  0 1 1 1
#          0 0 0 1           0 0 1 0
TRUTH = np.array([[0, 0, 1, 1], [0, 0, 0, 1]])
PRED = np.array([[0, 1, 1, 1], [0, 0, 1, 0]])


def test_confusion_matrix_counts_by_hand():
    # true 0: predicted 0 three times, 1 twice; true 1: predicted 1 twice, 0 once
    np.testing.assert_array_equal(confusion_matrix(TRUTH, PRED, 2), [[3, 2], [1, 2]])


def test_metrics_by_hand():
    m = segmentation_metrics(confusion_matrix(TRUTH, PRED, 2), ["background", "iris"])
    # IoU0 = 3 / (3+2+1) = 0.5 ; IoU1 = 2 / (2+2+1) = 0.4
    assert m["iou_background"] == pytest.approx(0.5)
    assert m["iou_iris"] == pytest.approx(0.4)
    assert m["miou"] == pytest.approx(0.45)
    assert m["pixel_accuracy"] == pytest.approx(5 / 8)
    assert m["e1"] == pytest.approx(3 / 8)


def test_ignore_index_pixels_are_left_out():
    truth = np.array([[0, 255, 1], [1, 255, 0]])
    pred = np.array([[0, 1, 1], [0, 0, 0]])
    cm = confusion_matrix(truth, pred, 2, ignore_index=255)
    np.testing.assert_array_equal(cm, [[2, 0], [1, 1]])
    m = segmentation_metrics(cm, ["a", "b"])
    assert m["e1"] == pytest.approx(1 / 4)


def test_class_absent_everywhere_does_not_enter_the_mean():
    truth = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 1, 0])
    m = segmentation_metrics(confusion_matrix(truth, pred, 3), ["a", "b", "c"])
    assert math.isnan(m["iou_c"])
    # IoU a = 2/3, IoU b = 1/2
    assert m["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_perfect_prediction():
    m = segmentation_metrics(confusion_matrix(TRUTH, TRUTH, 2), ["a", "b"])
    assert m["miou"] == 1.0 and m["e1"] == 0.0


def test_matches_keras_mean_iou():
    import keras

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, size=(4, 8, 8))
    pred = rng.integers(0, 3, size=(4, 8, 8))
    keras_miou = keras.metrics.MeanIoU(num_classes=3)
    keras_miou.update_state(truth, pred)
    ours = segmentation_metrics(confusion_matrix(truth, pred, 3), ["a", "b", "c"])["miou"]
    assert ours == pytest.approx(float(keras_miou.result()), abs=1e-6)


def test_dice_by_hand():
    m = segmentation_metrics(confusion_matrix(TRUTH, PRED, 2), ["background", "iris"])
    # Dice = 2 TP / (|truth| + |prediction|): background 2*3 / (5 + 4), iris 2*2 / (3 + 4)
    assert m["dice_background"] == pytest.approx(6 / 9)
    assert m["dice_iris"] == pytest.approx(4 / 7)
    assert m["mean_dice"] == pytest.approx((6 / 9 + 4 / 7) / 2)
    # Dice = 2 IoU / (1 + IoU) per class
    assert m["dice_iris"] == pytest.approx(2 * m["iou_iris"] / (1 + m["iou_iris"]))


def test_dice_of_a_class_absent_everywhere_is_nan_and_left_out():
    truth = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 1, 0])
    m = segmentation_metrics(confusion_matrix(truth, pred, 3), ["a", "b", "c"])
    assert math.isnan(m["dice_c"])
    # Dice a = 2*2 / (2 + 3), Dice b = 2*1 / (2 + 1)
    assert m["mean_dice"] == pytest.approx((4 / 5 + 2 / 3) / 2)


def test_keras_mean_dice_matches_the_confusion_matrix_one():
    from ssnets.task.metrics import MeanDice

    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, size=(4, 8, 8))
    truth[0, 0] = 255
    probabilities = rng.random(size=(4, 8, 8, 3)).astype(np.float32)
    metric = MeanDice(num_classes=3, sparse_y_pred=False, ignore_class=255)
    metric.update_state(truth, probabilities)
    expected = segmentation_metrics(
        confusion_matrix(truth, probabilities.argmax(-1), 3, ignore_index=255), ["a", "b", "c"]
    )["mean_dice"]
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)
