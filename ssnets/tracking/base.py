"""The Tracker protocol: what the training job, resume, sweeps and the comparison ask of a logger.

A tracker records runs (params, per-step metrics, the dataset, pictures per step,
artifacts, the model, tags, a final status) and reads them back: resume looks a job
up by its tags, `ssnets.compare` ranks the runs of a sweep. `logger=NAME` picks
`conf/logger/NAME.yaml`, whose `_target_` is the tracker class; its other keys are
the constructor's arguments. The log_* calls must not wait on a remote store (the
training loop calls them between steps): a tracker writes locally and delivers later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import keras
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from ssnets.tracking.datasets import DatasetDescription

FINISHED, FAILED, KILLED, RUNNING = "FINISHED", "FAILED", "KILLED", "RUNNING"
FAILURE_REASON_TAG = "failure_reason"
PARENT_RUN_TAG = "mlflow.parentRunId"


@dataclass(frozen=True)
class RunRecord:
    """One recorded run as a tracker reads it back; metrics hold each metric's latest value."""

    run_id: str
    status: str
    start_time: int  # milliseconds since the epoch, as MLflow counts
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)


@runtime_checkable
class Tracker(Protocol):
    """A logger of runs. `start` opens a run; the log_* calls then go to it until the block ends."""

    run_id: str | None
    records_runs: bool  # False for a tracker that keeps nothing to read back (logger=none)

    def prepare(self) -> None:
        """Create what parallel jobs share (a store, an experiment) once, before they start writing."""

    def start(
        self,
        tags: Mapping[str, str],
        run_id: str | None = None,
        run_name: str | None = None,
        run_dir: Path | None = None,
    ) -> AbstractContextManager[Tracker]:
        """A run (a new one, or `run_id` continued) that ends FINISHED, FAILED when the block raises (the
        reason in the `failure_reason` tag), or KILLED on Ctrl-C/SIGTERM. `run_name` is the name a new run
        gets unless the logger config names it; `run_dir` is the job's directory, where a tracker may keep
        what it has not delivered yet."""

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None: ...

    def log_dataset(self, dataset: DatasetDescription) -> None:
        """The data the run trains on (`datasets.describe_dataset`)."""

    def log_image(self, key: str, image: np.ndarray, step: int) -> None:
        """A uint8 RGB picture (H, W, 3), one per step under `key` (the per-epoch predictions)."""

    def log_artifact(self, path: Path) -> None: ...

    def log_model(self, model: keras.Model, input_example: Any) -> None:
        """The trained model for inference (the caller passes it without optimizer state)."""

    def location(self) -> str:
        """Where the current run (or, before one starts, the experiment) is recorded, in words for the log."""

    def search_runs(self, tags: Mapping[str, str] | None = None) -> list[RunRecord]:
        """The runs of this tracker's experiment carrying every given tag, newest first."""

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def metric_history(self, run_id: str, name: str) -> list[tuple[int, float]]:
        """(step, value) of every logged value of metric `name`, in logging order."""

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    def comparison_links(self, runs: Sequence[RunRecord], metric: str, mode: str) -> dict[str, str]:
        """Links to `runs` side by side in the tracker's UI, ranked by `metric` (`mode` max or min), keyed by
        what each shows; {} for a tracker without a UI."""


def run_status_of(error: Exception) -> str:
    """How a run that `error` ended is recorded: FAILED, unless the exception says otherwise with a
    `run_status` attribute (a pruned search trial is stopped on purpose: KILLED)."""
    return getattr(error, "run_status", FAILED)


def build_tracker(logger_cfg: DictConfig) -> Tracker:
    """The configured tracker (the `logger` group's `_target_`); a tracker checks its store is reachable here."""
    return instantiate(logger_cfg, _convert_="all")


def nest_runs(tracker: Tracker, parent_run_id: str, run_ids: Sequence[str]) -> None:
    """Show `run_ids` under `parent_run_id` (MLflow's parent-run tag; other trackers keep it as a tag)."""
    for run_id in run_ids:
        tracker.set_tags(run_id, {PARENT_RUN_TAG: parent_run_id})
