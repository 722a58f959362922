"""The study's run in the tracker: one parent run per study, with every trial's run nested under it.

The worker that creates the study starts the run (named after the study, tagged
`optuna_study`) with the search space as params, and keeps its id in the study's user
attribute `tracking_parent_run_id`; every other worker and rerun takes it from there.
Each trial's job nests its own run under it (trial_job.py). When a trial ends, its run
gets the tag `optuna_state` = complete, pruned or failed (filter with
`tags.optuna_state = 'pruned'`); a trial whose worker died gets `failed` when it is
re-queued. When a worker stops it brings the parent run up to date: the summary's
metrics, the best trial's number and params as tags (`best_params.NAME`), the results
file and the pictures. The parent run is FINISHED between those updates; its tag
`optuna_search_state` says running, finished or stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from ssnets.search.summary import Summary
from ssnets.search.trial_job import STUDY_TAG, TRIAL_TAG
from ssnets.tracking.base import PARENT_RUN_TAG, Tracker

log = logging.getLogger(__name__)

PARENT_RUN_ATTR = "tracking_parent_run_id"
STATE_TAG = "optuna_state"
SEARCH_STATE_TAG = "optuna_search_state"
# How long a worker that did not create the study waits for its creator to start the study's run.
CREATOR_WAIT_SECONDS = 60


class StudyRun:
    def __init__(self, tracker: Tracker, run_id: str, study_name: str):
        self.tracker = tracker
        self.run_id = run_id
        self.study_name = study_name

    @classmethod
    def open(cls, tracker: Tracker, study: optuna.Study, created: bool, params: Mapping[str, Any]) -> StudyRun:
        """The study's run: the one its creator started, or a new one (with `params`) when there is none here."""
        run_id = study.user_attrs.get(PARENT_RUN_ATTR)
        # A study without trials may be one another worker has just created and is setting up.
        being_set_up = not created and not study.get_trials(deepcopy=False)
        deadline = time.monotonic() + (CREATOR_WAIT_SECONDS if being_set_up else 0)
        while run_id is None and time.monotonic() < deadline:
            time.sleep(1)
            run_id = study.user_attrs.get(PARENT_RUN_ATTR)
        if run_id is None or tracker.get_run(run_id) is None:
            with tracker.start({STUDY_TAG: study.study_name}, run_name=study.study_name) as run:
                run.log_params(params)
                run_id = run.run_id
            study.set_user_attr(PARENT_RUN_ATTR, run_id)
            log.info("Study %r is MLflow run %s; each trial is a run nested under it", study.study_name, run_id)
        return cls(tracker, run_id, study.study_name)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.tracker.set_tags(
            self.run_id, {key: "null" if value is None else str(value) for key, value in tags.items()}
        )

    def tag_trial(self, number: int, state: str) -> None:
        for run in self.tracker.search_runs({PARENT_RUN_TAG: self.run_id, TRIAL_TAG: str(number)}):
            self.tracker.set_tags(run.run_id, {STATE_TAG: state})

    def record_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """A Study.optimize callback: the trial's run gets its Optuna state."""
        self.tag_trial(trial.number, trial.state.name.lower())

    def record_given_up(self, trial: FrozenTrial) -> None:
        """A budget.Requeue listener: the run of a trial whose worker stopped."""
        self.tag_trial(trial.number, "failed")

    def update(self, summary: Summary, files: list[Path], state: str) -> None:
        """The summary's metrics (step = finished trials), the best trial as tags, and `files` (results, pictures)."""
        with self.tracker.start({}, run_id=self.run_id) as run:
            run.log_metrics(summary.metrics(), step=summary.progress.finished)
            for path in files:
                run.log_artifact(path)
        tags: dict[str, Any] = {SEARCH_STATE_TAG: state}
        if summary.best_trial is not None:
            tags["best_trial"] = summary.best_trial
            tags.update({f"best_params.{name}": value for name, value in summary.best_params.items()})
        self.set_tags(tags)
