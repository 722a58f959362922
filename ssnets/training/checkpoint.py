"""Per-epoch training checkpoints that survive a process killed at any moment.

A run directory holds `checkpoint/state.json` and the weights file it names
(model and optimizer variables, as `model.save_weights` writes them for a
compiled model), plus `best.keras`, the best epoch by trainer.monitor. Every file
is written to a temporary name and renamed into place; state.json is written
last and is the commit point, so it always names a complete weights file and
a kill between two writes leaves the previous epoch's checkpoint in force.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras

from ssnets.common.errors import UserError
from ssnets.common.files import remove_partial_writes, write_atomically
from ssnets.common.run_files import BEST_MODEL, CHECKPOINT_DIR, STATE_FILE
from ssnets.training.monitor import Monitor

log = logging.getLogger(__name__)


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


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch: best.keras when the monitored metric improved, the epoch's weights, then state.json."""

    def __init__(self, run_dir: Path, progress: Progress, monitor: Monitor):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.directory = self.run_dir / CHECKPOINT_DIR
        self.progress = progress
        self.monitor = monitor

    def on_train_begin(self, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        # Left by a process killed while writing; never read, only in the way.
        remove_partial_writes(self.run_dir)
        remove_partial_writes(self.directory)
        # Written before the first epoch too, so a run killed early can still be resumed by its directory.
        self._commit()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None):
        logs = {name: float(value) for name, value in (logs or {}).items()}
        progress = self.progress
        for name, value in logs.items():
            progress.history.setdefault(name, []).append(value)
        score = logs.get(self.monitor.name)
        if self.monitor.improves(score, progress.best_score):
            write_atomically(self.run_dir / BEST_MODEL, self.model.save)
            progress.best_score, progress.best_epoch = score, epoch
        previous = progress.weights
        progress.weights = f"epoch-{epoch + 1:04d}.weights.h5"
        write_atomically(self.directory / progress.weights, self.model.save_weights)
        progress.epoch = epoch + 1
        self._commit()
        if previous and previous != progress.weights:
            (self.directory / previous).unlink(missing_ok=True)

    def _commit(self) -> None:
        write_atomically(state_path(self.run_dir), lambda path: path.write_text(json.dumps(asdict(self.progress))))


def restore(model: keras.Model, run_dir: Path, progress: Progress) -> None:
    """Load the weights and optimizer state `progress` names into a compiled model."""
    if progress.weights is None:
        return
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(Path(run_dir) / CHECKPOINT_DIR / progress.weights)
    log.info("Resumed from %s after epoch %d", run_dir, progress.epoch)
