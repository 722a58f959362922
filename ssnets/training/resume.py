"""What `trainer.resume` asks for, decided before the run starts: a new run, a run to continue, or a finished job.

- null: a new run in Hydra's run directory.
- a run directory or a tracked run id: continue that run from its last
  checkpoint, in its directory and its tracked run.
- auto (for re-running sweeps): find this job's earlier runs by the
  `ssnets.job_hash` tag, a hash of the job's config; the job is finished when one
  of them FINISHED, continued from the latest with a checkpoint otherwise, and
  new when there is none.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ssnets.common.errors import UserError
from ssnets.tracking.base import FINISHED, Tracker
from ssnets.tracking.params import config_params
from ssnets.training.checkpoint import Progress, read_progress

log = logging.getLogger(__name__)

JOB_HASH_TAG = "ssnets.job_hash"
RUN_DIR_TAG = "ssnets.run_dir"
# Keys that say how to run or log a job, not what it computes.
NOT_PART_OF_JOB = ("trainer.resume", "trainer.verbose", "logger.")


class JobState(enum.Enum):
    NEW = "new"  # nothing trained yet: log the params, train from epoch 0
    CONTINUING = "continuing"  # a checkpoint of an unfinished run: train on from it, in its tracked run
    FINISHED = "finished"  # an earlier run finished this job: nothing to train


@dataclass
class Job:
    state: JobState
    run_dir: Path
    progress: Progress
    finished_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def run_id(self) -> str | None:
        """The tracked run this job writes into (None until a new run has started)."""
        return self.progress.job.get("run_id")

    def record_run_id(self, run_id: str | None) -> None:
        """Kept in the checkpoint, so the run directory leads back to its tracked run."""
        self.progress.job["run_id"] = run_id

    def tags(self) -> dict[str, str]:
        return {JOB_HASH_TAG: self.progress.job["hash"], RUN_DIR_TAG: str(self.run_dir.resolve())}


def job_params(cfg: DictConfig) -> dict[str, Any]:
    return {key: value for key, value in config_params(cfg).items() if not key.startswith(NOT_PART_OF_JOB)}


def job_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def resolve(cfg: DictConfig, run_dir: Path, tracker: Tracker) -> Job:
    params = job_params(cfg)
    digest = job_hash(params)
    target = cfg.trainer.resume
    new = Job(JobState.NEW, Path(run_dir), Progress(job={"hash": digest, "params": params}))
    if target is None:
        return new
    target = str(target)
    if Path(target).is_dir():
        return continue_run(Path(target), tracker, params, digest)
    if not tracker.records_runs:
        raise UserError(
            f"trainer.resume={target} looks the run up in the tracker, and this logger records no runs; "
            "use logger=mlflow or logger=csv, or resume by run directory."
        )
    if target == "auto":
        return find_earlier_run(tracker, digest) or new
    return continue_run(run_dir_of(tracker, target), tracker, params, digest)


def find_earlier_run(tracker: Tracker, digest: str) -> Job | None:
    runs = tracker.search_runs({JOB_HASH_TAG: digest})
    finished = [run for run in runs if run.status == FINISHED]
    if finished:
        log.info("Skipping this job: run %s already finished it", finished[0].run_id)
        return Job(JobState.FINISHED, Path(finished[0].tags[RUN_DIR_TAG]), Progress(), dict(finished[0].metrics))
    for run in runs:
        run_dir = Path(run.tags[RUN_DIR_TAG])
        progress = read_progress(run_dir)
        if progress is not None:
            log.info("Continuing unfinished run %s (%s)", run.run_id, run.status)
            return Job(JobState.CONTINUING, run_dir, progress)
    return None


def run_dir_of(tracker: Tracker, run_id: str) -> Path:
    run = tracker.get_run(run_id)
    if run is None:
        raise UserError(
            f"trainer.resume={run_id} is neither a run directory nor a run id in {tracker.location()}; "
            "pass the run's output directory or its run id."
        )
    if RUN_DIR_TAG not in run.tags:
        raise UserError(f"Run {run_id} has no {RUN_DIR_TAG} tag, so it was not started by ssnets.run.")
    return Path(run.tags[RUN_DIR_TAG])


def continue_run(run_dir: Path, tracker: Tracker, params: dict[str, Any], digest: str) -> Job:
    progress = read_progress(run_dir)
    if progress is None:
        raise UserError(
            f"{run_dir} holds no checkpoint (checkpoint/state.json); pass the directory of a run that trained."
        )
    if progress.job["hash"] != digest:
        earlier = progress.job["params"]
        changed = sorted(key for key in params.keys() | earlier.keys() if params.get(key) != earlier.get(key))
        raise UserError(
            f"The run in {run_dir} was started with different {', '.join(changed)}; "
            "resume it with the overrides it was started with."
        )
    run_id = progress.job.get("run_id")
    run = tracker.get_run(run_id) if run_id else None
    if run is not None and run.status == FINISHED:
        raise UserError(f"Run {run_id} ({run_dir}) already finished; there is nothing to resume.")
    return Job(JobState.CONTINUING, run_dir, progress)


def reconcile_logged_epochs(tracker: Tracker, history: Mapping[str, Sequence[float]]) -> int:
    """Log the epochs of `history` (step = epoch) the tracked run lacks, e.g. queued when a process was killed,
    and return how many epochs the run has logged: it can be more than `history` holds (epochs logged while
    their checkpoint was still being written when the process was killed), and the resumed run must not log
    those again."""
    if tracker.run_id is None:
        return 0
    logged_epochs = 0
    for name, values in history.items():
        logged = {step for step, _ in tracker.metric_history(tracker.run_id, name)}
        for epoch, value in enumerate(values):
            if epoch not in logged:
                tracker.log_metrics({name: value}, step=epoch)
        logged_epochs = max(logged_epochs, len(values), max(logged, default=-1) + 1)
    return logged_epochs
