"""OptunaSearch: what `hydra/sweeper=ssnets_optuna` does with a multirun (the plugin hands it the sweep).

`sweep(arguments)`:
1. reads the search space (hydra.sweeper.params and the command line) and composes one
   trial's config, so that a wrong key stops the search before any trial;
2. opens the study in its storage, or creates it;
3. opens the study's run in the tracker (study_run.py) and queues hydra.sweeper.enqueue_trials;
4. runs trials with `Study.optimize`, `n_jobs` at a time, each started when a slot is
   free, until the study has n_trials trials (budget.py: every worker and rerun counts);
5. waits for the trials other workers still run, so that the summary is whole and a trial
   whose worker died is run again;
6. writes optimization_results.yaml and the pictures into the sweep directory and brings
   the study's run up to date.
Rerunning the same command continues the study: finished trials stay, and the trial a
killed worker was running is failed and queued again with the same parameters.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.errors import HydraException
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

from ssnets.common.errors import UserError
from ssnets.search import pictures
from ssnets.search.budget import Progress, Requeue, StopWhenDone, worker_alive
from ssnets.search.space import SearchSpace
from ssnets.search.study import (
    absolute_storage,
    default_study_name,
    direction_of,
    display_storage,
    is_database,
    open_study,
)
from ssnets.search.study_run import SEARCH_STATE_TAG, StudyRun
from ssnets.search.summary import Summary
from ssnets.search.trial_job import TrialFailed, TrialJobs
from ssnets.tracking.base import build_tracker
from ssnets.tracking.params import flatten
from ssnets.training.device_share import parallel_jobs_here

log = logging.getLogger(__name__)

BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
# How often a worker with nothing to ask for looks at the trials other workers are running.
WAIT_SECONDS = 5


class OptunaSearch:
    def __init__(
        self,
        sampler: optuna.samplers.BaseSampler,
        pruner: optuna.pruners.BasePruner,
        direction: str,
        study_name: str | None,
        storage: str,
        n_trials: int,
        n_jobs: int | None,
        heartbeat_interval: int,
        max_retries: int,
        max_failure_rate: float,
        enqueue_trials: list[Any],
        params: dict[str, Any] | None,
    ):
        self.sampler, self.pruner, self.direction = sampler, pruner, direction
        self.study_name, self.storage = study_name, storage
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.heartbeat_interval, self.max_retries = heartbeat_interval, max_retries
        self.max_failure_rate = max_failure_rate
        self.enqueue_trials, self.params = plain(enqueue_trials), plain(params)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def sweep(self, arguments: list[str]) -> Summary:
        # Heartbeats, retries, fail_stale_trials and the matplotlib plots are "experimental" in Optuna 4.9.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return self.search(arguments)

    def search(self, arguments: list[str]) -> Summary:
        space = SearchSpace.parse(self.params, arguments)
        self.check_composes(space)
        slots = self.parallel_trials()
        name = self.study_name or default_study_name(self.config, space)
        storage = absolute_storage(self.storage)
        requeue = Requeue(self.max_retries)
        study, created = open_study(
            storage, name, self.direction, self.sampler, self.pruner, self.heartbeat_interval, requeue
        )
        study_run = self.open_study_run(study, created, storage, space)
        if study_run is not None:
            requeue.listeners.append(study_run.record_given_up)
        self.enqueue(study, space)  # after the study's run: a study without trials is one still being set up
        jobs = TrialJobs(self.launcher, space, name, storage, study_run.run_id if study_run else None, requeue)
        stop = StopWhenDone(self.n_trials, self.max_failure_rate)
        callbacks = [stop] + ([study_run.record_trial] if study_run else [])
        requeue.orphans(study)  # the trials a killed run of this command left, before anything new
        progress = Progress.of(study)
        log.info(
            "Study %r in %s: %d of %d trials finished, %d running elsewhere; %d at a time here",
            name, display_storage(storage), progress.finished, self.n_trials, progress.running, slots,
        )  # fmt: skip
        while not stop.too_many_failures(progress):
            asks = progress.to_ask(self.n_trials)
            if asks:
                study.optimize(jobs, n_trials=asks, n_jobs=min(slots, asks), catch=(TrialFailed,), callbacks=callbacks)
            elif not self.wait_for_others(study, storage):
                break
            requeue.orphans(study)
            progress = Progress.of(study)
        return self.finish(study, storage, study_run, stop.too_many_failures(progress))

    def check_composes(self, space: SearchSpace) -> None:
        try:
            self.hydra_context.config_loader.load_sweep_config(self.config, space.sample_overrides())
        except HydraException as error:
            raise UserError(f"A trial's overrides do not compose: {error}") from error

    def enqueue(self, study: optuna.Study, space: SearchSpace) -> None:
        for params in self.enqueue_trials:
            unknown = sorted(set(params) - set(space.distributions))
            if unknown:
                raise UserError(
                    f"hydra.sweeper.enqueue_trials names {', '.join(unknown)}, which the search space does not have."
                )
            study.enqueue_trial(params, skip_if_exists=True)

    def parallel_trials(self) -> int:
        launcher = self.config.hydra.launcher
        slots = self.n_jobs if self.n_jobs is not None else parallel_jobs_here(launcher)
        if slots < 1:
            raise UserError(f"hydra.sweeper.n_jobs={slots}: at least one trial must run at a time.")
        if slots > 1 and launcher._target_ == BASIC_LAUNCHER:
            raise UserError(
                f"hydra.sweeper.n_jobs={slots} needs a launcher that runs jobs in processes of their own: add "
                "hydra/launcher=joblib (this machine) or hydra/launcher=slurm."
            )
        return slots

    def open_study_run(self, study: optuna.Study, created: bool, storage: str, space: SearchSpace) -> StudyRun | None:
        tracker = build_tracker(self.config.logger)
        if not tracker.records_runs:
            return None
        params = {
            "study_name": study.study_name,
            "storage": display_storage(storage),
            "direction": direction_of(self.direction).name.lower(),
            **{f"search.{key}": expression for key, expression in space.expressions.items()},
            "fixed_overrides": " ".join(space.fixed) or "none",
        }
        study_run = StudyRun.open(tracker, study, created, params)
        # Tags, not params: a rerun may change them, and a param cannot change.
        sweeper = self.config.hydra.sweeper
        settings = {"sampler": plain(sweeper.sampler), "pruner": plain(sweeper.pruner)}
        study_run.set_tags({**flatten(settings), "n_trials": self.n_trials, SEARCH_STATE_TAG: "running"})
        return study_run

    def wait_for_others(self, study: optuna.Study, storage: str) -> bool:
        """Wait a while if other workers run trials this one can wait for; False when there are none.

        A trial's worker is known to live when it runs on this machine, or on a database storage
        from its heartbeat (fail_stale_trials fails and re-queues it otherwise); on a journal file
        a trial of another machine's worker may be an orphan, so it is not waited for.
        """
        optuna.storages.fail_stale_trials(study)
        heartbeats = is_database(storage)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        awaited = [trial.number for trial in running if heartbeats or worker_alive(trial)]
        if not awaited:
            return False
        log.info("Waiting for trials %s, which other workers are running", ", ".join(map(str, awaited)))
        time.sleep(WAIT_SECONDS)
        return True

    def finish(self, study: optuna.Study, storage: str, study_run: StudyRun | None, failed: bool) -> Summary:
        summary = Summary.of(study, display_storage(storage))
        folder = Path(str(self.config.hydra.sweep.dir))
        folder.mkdir(parents=True, exist_ok=True)
        progress = summary.progress
        done = progress.to_ask(self.n_trials) == 0 and progress.running == 0
        state = "stopped" if failed else "finished" if done else "running"
        value_name = OmegaConf.select(self.config, "trainer.monitor.name", default="value")
        files = [summary.write(folder), *pictures.draw(study, folder, value_name)]
        if study_run is not None:
            study_run.update(summary, files, state)
        log.info(
            "Study %r: %d complete, %d pruned, %d failed; pruning saved %d of %d epochs",
            study.study_name, progress.complete, progress.pruned, progress.failed,
            summary.epochs_saved, summary.epochs_saved + summary.epochs_trained,
        )  # fmt: skip
        if summary.best_trial is not None:
            log.info("Best trial %d: %s with %s", summary.best_trial, summary.best_value, summary.best_params)
        if failed:
            raise UserError(
                f"{progress.failed} of {progress.finished} trials failed, more than hydra.sweeper.max_failure_rate="
                f"{self.max_failure_rate}; the trials' run.log files say why."
            )
        return summary


def plain(value: Any) -> Any:
    """Config nodes as plain lists and dicts (Hydra hands the sweeper its settings as config nodes)."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
