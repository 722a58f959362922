"""Steady-state images/s of training, inference, the input pipeline and the synthetic generator.

Each figure is the median over several timed windows of `window_steps` steps,
taken after a warm-up that absorbs tracing and compilation, so one slow
window (another process on the machine, a GC pause) does not move it. Every
window ends by waiting for the device, so asynchronous dispatch is not
mistaken for speed.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from ssnets.data.augment import Augmenter
from ssnets.data.iris import ensure_dataset
from ssnets.data.pipeline import make_dataset
from ssnets.data.types import Split
from ssnets.perf.inference import compiled_forward, wait_for


@dataclass(frozen=True)
class Windows:
    """How a measurement is timed: `count` windows of `steps` steps each, after one warm-up window."""

    count: int
    steps: int


@dataclass(frozen=True)
class Throughput:
    images_per_second: float
    first_step_seconds: float  # the first step of the process: tracing, compiling and one step


def median_rate(window_seconds: list[float], images_per_window: int) -> float:
    return images_per_window / statistics.median(window_seconds)


def device_batches(images: np.ndarray, masks: np.ndarray, batch_size: int, count: int) -> tuple[Any, Any]:
    """`count` batches of the samples (repeated as needed), as float32/int32 tensors on the backend's device."""
    indices = np.resize(np.arange(len(images)), batch_size * count)
    return (
        keras.ops.convert_to_tensor(images[indices].astype(np.float32)),
        keras.ops.convert_to_tensor(masks[indices].astype(np.int32)),
    )


class WindowTimer(keras.callbacks.Callback):
    """Times each epoch of fit() (one epoch = one window) and the first batch of the first."""

    def __init__(self) -> None:
        super().__init__()
        self.epoch_seconds: list[float] = []
        self.first_step_seconds: float | None = None
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.first_step_seconds is None:
            keras.ops.convert_to_numpy(logs["loss"])  # wait for the step, not its dispatch
            self.first_step_seconds = time.perf_counter() - self._epoch_start

    def on_epoch_end(self, epoch, logs=None):
        # fit() has turned the epoch's metrics into numbers by now, so the device work is done.
        self.epoch_seconds.append(time.perf_counter() - self._epoch_start)


def fit_throughput(model: keras.Model, images: Any, masks: Any, batch_size: int, windows: Windows) -> Throughput:
    """Training images/s through model.fit on device-resident data; the model must be compiled."""
    timer = WindowTimer()
    model.fit(
        images,
        masks,
        batch_size=batch_size,
        epochs=windows.count + 1,
        shuffle=False,
        callbacks=[timer],
        verbose=0,
    )
    rate = median_rate(timer.epoch_seconds[1:], batch_size * windows.steps)
    return Throughput(rate, timer.first_step_seconds)


def loop_throughput(model: keras.Model, images: Any, masks: Any, batch_size: int, windows: Windows) -> float:
    """Training images/s of a minimal hand-written loop (train_on_batch) over the same batches as fit_throughput."""
    batches = [
        (images[i * batch_size : (i + 1) * batch_size], masks[i * batch_size : (i + 1) * batch_size])
        for i in range(windows.steps)
    ]

    def window() -> None:
        for batch_images, batch_masks in batches:
            model.train_on_batch(batch_images, batch_masks)  # returns numbers: waits for each step

    return median_rate(timed(window, windows.count + 1)[1:], batch_size * windows.steps)


def inference_throughput(model: keras.Model, batch: Any, windows: Windows, jit_compile: bool) -> Throughput:
    """Images/s of the compiled forward pass on one device-resident batch, outputs left on the device."""
    forward = compiled_forward(model, jit_compile)
    started = time.perf_counter()
    wait_for(forward(batch))
    first_step_seconds = time.perf_counter() - started

    def window() -> None:
        for _ in range(windows.steps):
            outputs = forward(batch)
        wait_for(outputs)

    rate = median_rate(timed(window, windows.count), len(batch) * windows.steps)
    return Throughput(rate, first_step_seconds)


def pipeline_throughput(
    split: Split, batch_size: int, augmenter: Augmenter | None, seed: int, windows: Windows
) -> float:
    """Images/s the training input pipeline (make_dataset: shuffle, batch, augment, prefetch) delivers on its own."""
    batches = iter(make_dataset(split, batch_size, training=True, augmenter=augmenter, seed=seed).repeat())

    def window() -> None:
        # Eager tf.data hands over finished tensors, so no wait is needed.
        for _ in range(windows.steps):
            next(batches)

    return median_rate(timed(window, windows.count + 1)[1:], batch_size * windows.steps)


def generator_throughput(image_size: int, count: int, seed: int) -> float:
    """Images/s of the synthetic iris generator writing `count` training samples (image + mask PNG), all cores."""
    with tempfile.TemporaryDirectory(prefix="ssnets-bench-") as directory:
        started = time.perf_counter()
        ensure_dataset(directory, image_size, count, 0, 0, seed)
        return count / (time.perf_counter() - started)


def timed(window: Callable[[], None], count: int) -> list[float]:
    """Seconds of each of `count` calls of `window`."""
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        window()
        seconds.append(time.perf_counter() - started)
    return seconds
