"""One Optuna trial as one job of the configured Hydra launcher: the objective `Study.optimize` calls.

Each call asks the trial for its parameters, adds what the job needs to report to the
study and to nest its run (below), launches that one job and waits for it, so
`Study.optimize(n_jobs=N)` keeps N jobs running and starts the next as soon as one
ends. The launcher runs the job: in this process (the basic launcher), in a joblib
worker process, or as a SLURM job (submitit). The job's result becomes the trial's:
its returned trainer.monitor value (COMPLETE), `optuna.TrialPruned` (PRUNED) or any
other exception (FAIL, as TrialFailed; the search goes on).

Added to every trial's overrides:
- `callbacks.optuna_pruning`: ssnets.training.pruning.OptunaPruning with the storage,
  study name, trial number, trainer.monitor and the configured pruner;
- with a tracker that records runs: `logger.tags.optuna_study`, `logger.tags.optuna_trial`
  and `logger.parent_run_id`, so the trial's run is nested under the study's run.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher

from ssnets.search.budget import WORKER_ATTR, Requeue, this_worker, trial_numbered
from ssnets.search.space import SearchSpace, quoted

PRUNING_CALLBACK = "optuna_pruning"
STUDY_TAG = "optuna_study"
TRIAL_TAG = "optuna_trial"


class TrialFailed(Exception):
    """The trial's job failed; the trial is recorded FAIL and the search goes on."""


@dataclass(frozen=True)
class TrialJobs:
    launcher: Launcher
    space: SearchSpace
    study_name: str
    storage: str
    parent_run_id: str | None  # the study's run, when the tracker records runs
    requeue: Requeue

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, this_worker())
        overrides = [*self.space.overrides(self.space.suggest(trial)), *self.reporting(trial.number)]
        try:
            (result,) = self.launcher.launch([overrides], initial_job_idx=trial.number)
        except SystemExit:
            # A job stopped by Ctrl-C or SIGTERM exits its process (exit 128 + signal). Optuna records an
            # exception or a KeyboardInterrupt as FAIL itself but lets SystemExit through, so fail it here.
            self.requeue.give_up(trial.study, trial.number)
            raise
        except BaseException:
            # The launcher itself failed or was interrupted (the job's own errors come back in its result):
            # the search stops with the error, Optuna fails the trial, and the next run retries it.
            self.requeue(trial.study, trial_numbered(trial.study, trial.number))
            raise
        return trial_value(result)

    def reporting(self, number: int) -> list[str]:
        callback = f"++callbacks.{PRUNING_CALLBACK}"
        overrides = [
            f"{callback}._target_=ssnets.training.pruning.OptunaPruning",
            f"{callback}.storage={quoted(self.storage)}",
            f"{callback}.study_name={quoted(self.study_name)}",
            f"{callback}.trial_number={number}",
            # Interpolations, resolved in the job: its own trainer.monitor and the sweeper's pruner config.
            f"{callback}.monitor=${{trainer.monitor.name}}",
            f"{callback}.pruner=${{hydra:sweeper.pruner}}",
        ]
        if self.parent_run_id is not None:
            overrides += [
                f"++logger.tags.{STUDY_TAG}={quoted(self.study_name)}",
                f"++logger.tags.{TRIAL_TAG}={number}",
                f"++logger.parent_run_id={quoted(self.parent_run_id)}",
            ]
        return overrides


def trial_value(result: JobReturn) -> float:
    """The job's returned value; raises TrialPruned for a pruned job and TrialFailed for a failed one."""
    if result.status == JobStatus.COMPLETED:
        if result.return_value is None:
            raise TrialFailed("The job returned no trainer.monitor value (trainer.dry_run, or a monitor never logged).")
        return float(result.return_value)
    error = job_error(result)
    if isinstance(error, optuna.TrialPruned):
        raise error
    raise TrialFailed(f"{type(error).__name__}: {error}") from error


def job_error(result: JobReturn) -> BaseException:
    """The exception a failed job raised.

    JobReturn.return_value re-raises it, but first prints "Error executing job" to stderr,
    which a pruned trial is not; Hydra keeps it in `_return_value` (tests/test_search.py
    fails if that name moves).
    """
    return result._return_value
