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
import warnings
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
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
    """After every epoch: best.keras when the monitored metric improved, the epoch's weights, then state.json.

    The epoch's variables are copied in memory at its end and written by a background thread while the
    next epoch trains (trainer.async_checkpoint; the next epoch's end and the end of training wait for
    it), so the files cost the epoch a copy of the weights, not a write to disk. A write that fails
    stops training at the next epoch's end with the write's error, the previous checkpoint in force.
    """

    def __init__(self, run_dir: Path, progress: Progress, monitor: Monitor, background: bool = True):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.directory = self.run_dir / CHECKPOINT_DIR
        self.progress = progress
        self.monitor = monitor
        self._best: keras.Model | None = None  # built once, then given each better epoch's weights
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint") if background else None
        self._pending: Future | None = None

    def on_train_begin(self, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        # Left by a process killed while writing; never read, only in the way.
        remove_partial_writes(self.run_dir)
        remove_partial_writes(self.directory)
        # Written before the first epoch too, so a run killed early can still be resumed by its directory.
        self._commit(asdict(self.progress))

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None):
        self.wait()
        logs = {name: float(value) for name, value in (logs or {}).items()}
        progress = self.progress
        for name, value in logs.items():
            progress.history.setdefault(name, []).append(value)
        score = logs.get(self.monitor.name)
        snapshot = variables_snapshot(self.model)
        best_weights = None
        if self.monitor.improves(score, progress.best_score):
            if self._best is None:
                self._best = inference_model(self.model)
            best_weights = [snapshot[f"model/{index}"] for index in range(len(self.model.weights))]
            progress.best_score, progress.best_epoch = score, epoch
        previous = progress.weights
        progress.weights = f"epoch-{epoch + 1:04d}{WEIGHTS_SUFFIX}"
        progress.epoch = epoch + 1
        args = (best_weights, snapshot, progress.weights, asdict(progress), previous)
        if self._writer is None:
            self._write(*args)
        else:
            self._pending = self._writer.submit(self._write, *args)

    def on_train_end(self, logs=None):
        self.wait()
        if self._writer is not None:
            self._writer.shutdown()

    def wait(self) -> None:
        """Block until the last epoch's files are written; raises the write's error if it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _write(self, best_weights, snapshot, weights_name: str, state: dict, previous: str | None) -> None:
        if best_weights is not None:
            self._best.set_weights(best_weights)
            write_atomically(self.run_dir / BEST_MODEL, self._best.save)
        write_atomically(self.directory / weights_name, lambda path: save_snapshot(path, snapshot))
        self._commit(state)
        if previous and previous != weights_name:
            (self.directory / previous).unlink(missing_ok=True)

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
