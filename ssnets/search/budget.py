"""How far a study is: its trials counted over every worker and rerun, and re-queueing trials whose worker died.

`hydra.sweeper.n_trials` is the study's size, not one worker's share: a worker asks for
trials while fewer than n_trials are finished, running or queued, so several workers and
reruns of the same command end with n_trials trials between them. A trial whose worker
died (killed, preempted, out of memory) is failed and queued again with the same
parameters (Optuna's RetryHeartbeatStaleTrialCallback, up to `max_retries` times); the
failed original is then not counted, its retry is. Death is noticed at once for a
worker of this machine (its process is gone) and, on database storages, from the
trial's heartbeat for any machine (no heartbeat for 2 x heartbeat_interval).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

# User attribute of a trial: the sweeper process running it, "host:pid".
WORKER_ATTR = "worker"


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def worker_alive(trial: FrozenTrial) -> bool | None:
    """Whether the process running `trial` still runs: None when it ran on another machine (not knowable here)."""
    host, _, pid = str(trial.user_attrs.get(WORKER_ATTR, "")).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a live process of another user
        return True
    return True


@dataclass(frozen=True)
class Progress:
    """The study's trials by state, each retried trial counted once (as its retry)."""

    complete: int
    pruned: int
    failed: int
    running: int
    waiting: int

    @classmethod
    def of(cls, study: optuna.Study) -> Progress:
        trials = study.get_trials(deepcopy=False)
        retried = {number for trial in trials for number in RetryHeartbeatStaleTrialCallback.retry_history(trial)}
        states = [trial.state for trial in trials if trial.number not in retried]
        return cls(*(states.count(state) for state in STATES))

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed

    @property
    def counted(self) -> int:
        return self.finished + self.running + self.waiting

    def to_ask(self, n_trials: int) -> int:
        """Trials to ask for now: the queued ones, and new ones up to n_trials."""
        return max(n_trials - self.counted, 0) + self.waiting

    @property
    def failure_rate(self) -> float:
        return self.failed / self.finished if self.finished else 0.0


STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)


class StopWhenDone:
    """A Study.optimize callback: stop asking once the study has its trials, or too many of them failed."""

    def __init__(self, n_trials: int, max_failure_rate: float):
        self.n_trials = n_trials
        self.max_failure_rate = max_failure_rate

    def too_many_failures(self, progress: Progress) -> bool:
        return progress.failure_rate > self.max_failure_rate

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        progress = Progress.of(study)
        if self.too_many_failures(progress) or progress.to_ask(self.n_trials) == 0:
            study.stop()


class Requeue:
    """Fails a trial whose worker is gone and queues a copy with the same parameters.

    Also the storage's heartbeat_stale_trial_callback, which Optuna calls for a trial it
    has just failed for want of heartbeats; `listeners` hear of every trial given up
    (the MLflow parent run tags its run).
    """

    def __init__(self, max_retries: int):
        self.retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retries)
        self.listeners: list[Callable[[FrozenTrial], None]] = []

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.retry(study, trial)
        log.warning("Trial %d did not finish (its worker stopped); queued again with its parameters", trial.number)
        for listener in self.listeners:
            listener(trial)

    def give_up(self, study: optuna.Study, number: int) -> None:
        """Fail running trial `number` and queue it again (nothing when another worker already did)."""
        try:
            study.tell(number, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            return  # no longer running: finished, or failed by another worker
        self(study, trial_numbered(study, number))

    def orphans(self, study: optuna.Study) -> None:
        """Give up the running trials of this machine's workers that are no longer running."""
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if worker_alive(trial) is False:
                self.give_up(study, trial.number)


def trial_numbered(study: optuna.Study, number: int) -> FrozenTrial:
    return next(trial for trial in study.get_trials(deepcopy=False) if trial.number == number)
