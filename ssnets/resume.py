"""What `trainer.resume` asks for: a fresh run, a run to continue, or a finished job to skip.

- null: a fresh run in Hydra's run directory.
- a run directory or an MLflow run id: continue that run from its last
  checkpoint, in its directory and its MLflow run.
- auto (for re-running sweeps): find this job's earlier MLflow runs by the
  `ssnets.job_hash` tag, a hash of the job's config; skip the job when one
  FINISHED, continue the latest otherwise, start fresh when there is none.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from ssnets.checkpoint import Progress, read_progress
from ssnets.errors import UserError
from ssnets.tracking import MlflowTracker, NullTracker, config_params

log = logging.getLogger(__name__)

JOB_HASH_TAG = "ssnets.job_hash"
RUN_DIR_TAG = "ssnets.run_dir"
# Keys that say how to run or log a job, not what it computes.
NOT_PART_OF_JOB = ("trainer.resume", "trainer.verbose", "logger.")


def job_params(cfg: DictConfig) -> dict[str, Any]:
    return {key: value for key, value in config_params(cfg).items() if not key.startswith(NOT_PART_OF_JOB)}


def job_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Job:
    run_dir: Path
    progress: Progress
    finished_run: Run | None = None

    @property
    def run_id(self) -> str | None:
        return self.progress.job.get("run_id")

    @property
    def resumed(self) -> bool:
        return self.run_id is not None

    def record_run_id(self, run_id: str | None) -> None:
        """Kept in the checkpoint so the run directory leads back to its MLflow run."""
        self.progress.job["run_id"] = run_id

    def tags(self) -> dict[str, str]:
        return {JOB_HASH_TAG: self.progress.job["hash"], RUN_DIR_TAG: str(self.run_dir.resolve())}


def resolve(cfg: DictConfig, run_dir: Path, tracker: NullTracker) -> Job:
    params = job_params(cfg)
    digest = job_hash(params)
    target = cfg.trainer.resume
    fresh = Job(Path(run_dir), Progress(job={"hash": digest, "params": params}))
    if target is None:
        return fresh
    target = str(target)
    if target == "auto":
        return find_earlier_run(tracker, digest) or fresh
    if Path(target).is_dir():
        return continue_run(Path(target), tracker, params, digest)
    return continue_run(run_dir_of(tracker, target), tracker, params, digest)


def mlflow_client(tracker: NullTracker, what: str) -> MlflowClient:
    if not isinstance(tracker, MlflowTracker):
        raise UserError(f"trainer.resume={what} looks runs up in MLflow; use logger=mlflow or resume by run directory.")
    return MlflowClient(tracker.tracking_uri)


def find_earlier_run(tracker: NullTracker, digest: str) -> Job | None:
    client = mlflow_client(tracker, "auto")
    experiment = client.get_experiment_by_name(tracker.experiment_name)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{JOB_HASH_TAG}` = '{digest}'",
        order_by=["attributes.start_time DESC"],
    )
    finished = [run for run in runs if run.info.status == "FINISHED"]
    if finished:
        log.info("Skipping this job: MLflow run %s already finished it", finished[0].info.run_id)
        return Job(Path(finished[0].data.tags[RUN_DIR_TAG]), Progress(), finished_run=finished[0])
    for run in runs:
        run_dir = Path(run.data.tags[RUN_DIR_TAG])
        progress = read_progress(run_dir)
        if progress is not None:
            log.info("Continuing unfinished MLflow run %s (%s)", run.info.run_id, run.info.status)
            return Job(run_dir, progress)
    return None


def run_dir_of(tracker: NullTracker, run_id: str) -> Path:
    client = mlflow_client(tracker, run_id)
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise UserError(
            f"trainer.resume={run_id} is neither a run directory nor a run id in the MLflow store "
            f"{client.tracking_uri}; pass the run's output directory or its MLflow run id."
        ) from error
    if RUN_DIR_TAG not in run.data.tags:
        raise UserError(f"MLflow run {run_id} has no {RUN_DIR_TAG} tag, so it was not started by ssnets.run.")
    return Path(run.data.tags[RUN_DIR_TAG])


def continue_run(run_dir: Path, tracker: NullTracker, params: dict[str, Any], digest: str) -> Job:
    progress = read_progress(run_dir)
    if progress is None:
        raise UserError(f"{run_dir} holds no checkpoint (checkpoint/state.json); pass the directory of a run that trained.")
    if progress.job["hash"] != digest:
        earlier = progress.job["params"]
        changed = sorted(key for key in params.keys() | earlier.keys() if params.get(key) != earlier.get(key))
        raise UserError(
            f"The run in {run_dir} was started with different {', '.join(changed)}; "
            "resume it with the overrides it was started with."
        )
    run_id = progress.job.get("run_id")
    if run_id and isinstance(tracker, MlflowTracker):
        status = MlflowClient(tracker.tracking_uri).get_run(run_id).info.status
        if status == "FINISHED":
            raise UserError(f"MLflow run {run_id} ({run_dir}) already finished; there is nothing to resume.")
    return Job(run_dir, progress)
