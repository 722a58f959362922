"""How long the first epoch of a process spends compiling (tracing + XLA), logged as `compile_seconds`.

The first train and first validation batch of a process build and compile
their step functions; every later batch of the same shapes reuses them. The
extra cost is each first batch's time minus the median of the other batches
of that epoch. A resumed run compiles again, so its first epoch gets its own
figure.
"""

from __future__ import annotations

import statistics
import time

import keras


class CompileTimer(keras.callbacks.Callback):
    """Adds `compile_seconds` to the logs of the first epoch it sees (the trackers then log it at that step)."""

    def __init__(self) -> None:
        super().__init__()
        self.compile_seconds: float | None = None
        self._durations: dict[str, list[float]] = {"train": [], "test": []}
        self._started = 0.0

    @property
    def _timing(self) -> bool:
        return self.compile_seconds is None

    def on_train_batch_begin(self, batch, logs=None):
        self._started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._record("train", logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._started = time.perf_counter()

    def on_test_batch_end(self, batch, logs=None):
        self._record("test", logs)

    def _record(self, kind: str, logs) -> None:
        if not self._timing:
            return
        # The loss is ready only once the step ran: waiting for it keeps asynchronous
        # backends (GPU, JAX) from timing just the dispatch. First epoch only.
        if logs and "loss" in logs:
            keras.ops.convert_to_numpy(logs["loss"])
        self._durations[kind].append(time.perf_counter() - self._started)

    def on_epoch_end(self, epoch, logs=None):
        if not self._timing:
            return
        self.compile_seconds = sum(first_batch_excess(durations) for durations in self._durations.values())
        if logs is not None:
            logs["compile_seconds"] = self.compile_seconds


def first_batch_excess(durations: list[float]) -> float:
    """The first duration minus the median of the rest (all of the first one when it is alone)."""
    if not durations:
        return 0.0
    typical = statistics.median(durations[1:]) if len(durations) > 1 else 0.0
    return max(durations[0] - typical, 0.0)
