"""Per-epoch training checkpoints that survive a process killed at any moment.

A run directory holds `checkpoint/state.json` and the weights file it names
(the model's and the optimizer's variables in a NumPy .npz: what resuming needs), plus `best.keras`, the best epoch by
trainer.monitor for inference: the architecture and weights of `inference_model`,
without the optimizer state (Adam's two moments are twice the weights: a default
FastFCN8's best.keras went from 247.5 MB to 82.7 MB) or the loss and metrics.
Every file is written to a temporary name and renamed into place; state.json is
written last and is the commit point, so it always names a complete weights file
and a kill between two writes leaves the previous epoch's checkpoint in force.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ssnets.common.errors import UserError
from ssnets.common.files import remove_partial_writes, write_atomically
from ssnets.common.run_files import BEST_MODEL, CHECKPOINT_DIR, STATE_FILE
from ssnets.training.monitor import Monitor

log = logging.getLogger(__name__)

WEIGHTS_SUFFIX = ".weights.npz"


@dataclass
class Progress:
    """How far a run got: epochs completed, the best epoch so far, every epoch's Keras logs, and the job
    (its config hash and params, and the tracker's run id once the run is recorded)."""

    epoch: int = 0
    weights: str | None = None
    best_score: float | None = None
    best_epoch: int | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    job: dict[str, Any] = field(default_factory=dict)


def weights_file(epoch: int) -> str:
    """The name of the checkpoint's variables file after `epoch` epochs."""
    return f"epoch-{epoch:04d}{WEIGHTS_SUFFIX}"


def state_path(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / STATE_FILE


def read_progress(run_dir: Path) -> Progress | None:
    """The committed progress of a run directory, or None when training never started there."""
    path = state_path(run_dir)
    if not path.is_file():
        return None
    try:
        return Progress(**json.loads(path.read_text()))
    except (ValueError, TypeError) as error:
        raise UserError(
            f"Checkpoint state {path} is unreadable ({error}); delete {path.parent} to start over."
        ) from error


def inference_model(model: keras.Model) -> keras.Model:
    """An uncompiled copy of `model` with its weights: what predicting needs, and no optimizer state.

    (keras.models.clone_model would compile the copy like the original, optimizer included.)
    """
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


class EpochCheckpoint(keras.callbacks.Callback):
    """At the end of an epoch: best.keras when the monitored metric improved, the epoch's weights, then
    state.json, written before the next epoch starts.

    Writing is spaced by `interval_seconds` (trainer.checkpoint_interval_s): an epoch is written when that
    long has passed since the last write, and the first and the last epoch of a fit always are; a better
    epoch's weights wait in memory until then. On a small set, whose epochs take seconds, the files
    (weights, Adam's state and best.keras: 100 MB for MobileNetV2-UNet) then cost a few percent of the
    epochs instead of a tenth of each; a process killed between writes resumes from the last written epoch,
    at most `interval_seconds` of training back. (A background writer was measured slower: the epochs after
    its writes started up to 10 s late, more than the writes themselves cost.)
    """

    def __init__(self, run_dir: Path, progress: Progress, monitor: Monitor, interval_seconds: float = 0.0):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.directory = self.run_dir / CHECKPOINT_DIR
        self.progress = progress
        self.monitor = monitor
        self.interval_seconds = interval_seconds
        self._best: keras.Model | None = None  # built once, then given each better epoch's weights
        self._best_weights: list[np.ndarray] | None = None  # a better epoch's, until they are written
        self._last_write: float | None = None  # None: no epoch of this fit written yet

    def on_train_begin(self, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        # Left by a process killed while writing; never read, only in the way.
        remove_partial_writes(self.run_dir)
        remove_partial_writes(self.directory)
        # Written before the first epoch too, so a run killed early can still be resumed by its directory.
        self._commit(asdict(self.progress))

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None):
        logs = {name: float(value) for name, value in (logs or {}).items()}
        progress = self.progress
        for name, value in logs.items():
            progress.history.setdefault(name, []).append(value)
        score = logs.get(self.monitor.name)
        improved = self.monitor.improves(score, progress.best_score)
        if improved:
            progress.best_score, progress.best_epoch = score, epoch
        progress.epoch = epoch + 1
        due = self._last_write is None or time.monotonic() - self._last_write >= self.interval_seconds
        if due or progress.epoch == (self.params or {}).get("epochs"):
            self._write(best_is_current=improved)
        elif improved:
            self._best_weights = self.model.get_weights()

    def on_train_end(self, logs=None):
        # Early stopping ends a fit at an epoch boundary before its last epoch; a better unwritten epoch's
        # weights already wait in memory.
        if self.progress.weights != weights_file(self.progress.epoch):
            self._write(best_is_current=False)

    def _write(self, best_is_current: bool) -> None:
        """best.keras (when this epoch is the best, or a better one waits in memory), the model's and optimizer's
        variables, then state.json."""
        progress = self.progress
        snapshot = variables_snapshot(self.model)
        if best_is_current:
            self._best_weights = [snapshot[f"model/{index}"] for index in range(len(self.model.weights))]
        if self._best_weights is not None:
            if self._best is None:
                self._best = inference_model(self.model)
            self._best.set_weights(self._best_weights)
            write_atomically(self.run_dir / BEST_MODEL, self._best.save)
            self._best_weights = None
        previous, weights_name = progress.weights, weights_file(progress.epoch)
        write_atomically(self.directory / weights_name, lambda path: save_snapshot(path, snapshot))
        progress.weights = weights_name
        self._commit(asdict(progress))
        if previous and previous != weights_name:
            (self.directory / previous).unlink(missing_ok=True)
        self._last_write = time.monotonic()

    def _commit(self, state: dict) -> None:
        write_atomically(state_path(self.run_dir), lambda path: path.write_text(json.dumps(state)))


def variables_snapshot(model: keras.Model) -> dict[str, np.ndarray]:
    """Copies of a compiled model's variables and its optimizer's (Adam's moments, the step count): what
    resuming needs, keyed by their order, the same for the same config."""
    arrays = {f"model/{index}": value for index, value in enumerate(model.get_weights())}
    if model.optimizer is not None and model.optimizer.built:
        for index, variable in enumerate(model.optimizer.variables):
            arrays[f"optimizer/{index}"] = keras.ops.convert_to_numpy(variable)
    return arrays


def save_snapshot(path: Path, snapshot: Mapping[str, np.ndarray]) -> None:
    with open(path, "wb") as file:
        np.savez(file, **snapshot)


def count_prefixed(names: list[str], prefix: str) -> int:
    return sum(name.startswith(prefix) for name in names)


def load_snapshot(model: keras.Model, path: Path) -> None:
    """Give a compiled model the variables variables_snapshot copied; one sentence when they do not fit."""
    if not path.name.endswith(WEIGHTS_SUFFIX):
        raise UserError(
            f"Checkpoint {path} was written by an earlier ssnets (before {WEIGHTS_SUFFIX} checkpoints); finish "
            "that run with the version that started it, or delete its checkpoint folder to start over."
        )
    with np.load(path) as arrays:
        weights = [arrays[f"model/{index}"] for index in range(count_prefixed(arrays.files, "model/"))]
        optimizer_values = [arrays[f"optimizer/{index}"] for index in range(count_prefixed(arrays.files, "optimizer/"))]
    shapes = [tuple(variable.shape) for variable in model.weights]
    optimizer_variables = model.optimizer.variables if optimizer_values else []
    if [tuple(w.shape) for w in weights] != shapes or len(optimizer_values) != len(optimizer_variables):
        raise UserError(
            f"Checkpoint {path} holds another model's variables; resume with the config that run was started "
            "with, or delete its checkpoint folder to start over."
        )
    model.set_weights(weights)
    for variable, value in zip(optimizer_variables, optimizer_values, strict=True):
        variable.assign(value)


def load_best_weights(model: keras.Model, run_dir: Path) -> None:
    """Give a compiled model the weights of run_dir's best.keras (trainer.restore_best); its optimizer is left
    as it is, since best.keras holds none."""
    with warnings.catch_warnings():
        # Keras notes that the file has no optimizer variables for the compiled model's optimizer: by design.
        warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
        model.load_weights(Path(run_dir) / BEST_MODEL)


def restore(model: keras.Model, run_dir: Path, progress: Progress) -> None:
    """Load the weights and optimizer state `progress` names into a compiled model."""
    if progress.weights is None:
        return
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    load_snapshot(model, Path(run_dir) / CHECKPOINT_DIR / progress.weights)
    log.info("Resumed from %s after epoch %d", run_dir, progress.epoch)
