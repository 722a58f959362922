"""Each epoch's time split into steps, validation, checkpoint and the callbacks after it; per-epoch pictures
spaced so that they stay a small part of short epochs."""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssnets.training.checkpoint import EpochCheckpoint, Progress
from ssnets.training.epoch_pictures import EpochPictures
from ssnets.training.epoch_timing import EpochPhaseTimer
from ssnets.training.monitor import Monitor


class Sleep(keras.callbacks.Callback):
    """Stands for a slow phase: sleeps at the end of every epoch (or of every validation)."""

    def __init__(self, seconds: float, on_test: bool = False):
        super().__init__()
        self.seconds, self.on_test = seconds, on_test

    def on_test_end(self, logs=None):
        if self.on_test:
            time.sleep(self.seconds)

    def on_epoch_end(self, epoch, logs=None):
        if not self.on_test:
            time.sleep(self.seconds)


class KeepLogs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.logs: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs))


def test_phases_add_up_to_the_epoch_and_reach_the_logs(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((16, 4), "float32"), np.ones((16, 1), "float32")
    timer, kept = EpochPhaseTimer(), KeepLogs()
    checkpoint = EpochCheckpoint(tmp_path, Progress(), Monitor("val_loss", "min"))
    started = time.perf_counter()
    model.fit(
        x,
        y,
        validation_data=(x, y),
        batch_size=4,
        epochs=2,
        verbose=0,
        callbacks=timer.around(checkpoint, [Sleep(0.3, on_test=True), kept, Sleep(0.2)]),
    )
    wall = time.perf_counter() - started
    assert all(len(values) == 2 for values in timer.seconds.values())
    assert min(timer.seconds["validation"]) >= 0.3 and min(timer.seconds["callbacks"]) >= 0.2
    assert sum(sum(values) for values in timer.seconds.values()) == pytest.approx(wall, rel=0.2)
    assert [set(logs) >= {"steps_seconds", "validation_seconds", "checkpoint_seconds"} for logs in kept.logs] == [
        True
    ] * 2
    assert kept.logs[1]["validation_seconds"] == timer.seconds["validation"][1]
    assert 0.0 < timer.fixed_cost_share() < 1.0


class PictureRecorder:
    def __init__(self):
        self.steps: list[int] = []

    def log_image(self, key, image, step):
        self.steps.append(step)


def test_epoch_pictures_are_spaced_by_their_interval_but_the_first_and_last_are_kept():
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1, activation="softmax")(inputs))
    images, masks = np.zeros((2, 8, 8, 3), "float32"), np.zeros((2, 8, 8), "int32")
    val = tf.data.Dataset.from_tensor_slices((images, masks)).batch(2)
    recorder = PictureRecorder()
    pictures = EpochPictures(recorder, val, count=2, interval_seconds=3600)
    pictures.set_model(model)
    pictures.set_params({"epochs": 5})
    for epoch in range(5):
        pictures.on_epoch_end(epoch)
    assert recorder.steps == [0, 4]
    every_epoch = EpochPictures(recorder := PictureRecorder(), val, count=2, first_epoch=2, interval_seconds=0)
    every_epoch.set_model(model)
    every_epoch.set_params({"epochs": 5})
    for epoch in range(5):
        every_epoch.on_epoch_end(epoch)
    assert recorder.steps == [2, 3, 4]  # a resumed run's earlier epochs have their pictures already
