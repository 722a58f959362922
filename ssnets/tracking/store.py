"""The MLflow store that parallel jobs share: prepared once, written with retries.

Several processes opening a fresh sqlite store at the same moment each run
MLflow's schema migrations on it ("table ... already exists", "duplicate
column name: step") and race to create the experiment; with 4 writers at
once only 1 of 4 runs survived, in each of 8 trials. `prepare` does both
steps once, under a file lock, before any run starts. Once the store exists,
sqlite can still answer "database is locked" when two transactions upgrade
their read locks to write locks at once (SQLite gives up at once there,
whatever the busy timeout); `retry_when_locked` repeats such a call.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from mlflow.entities import LifecycleStage
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ssnets.common.errors import UserError
from ssnets.common.files import file_lock
from ssnets.tracking import mlflow_ui

log = logging.getLogger(__name__)

SQLITE_PREFIX = "sqlite:///"
LOCKED_ATTEMPTS = 8
LOCKED_FIRST_DELAY_SECONDS = 0.2

T = TypeVar("T")


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a sqlite:/// tracking URI (None for servers and other databases)."""
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return None
    return Path(tracking_uri.removeprefix(SQLITE_PREFIX).split("?", 1)[0])


def lock_path(tracking_uri: str) -> Path | None:
    """The lock file beside a sqlite store's database (None for servers and other databases)."""
    database = sqlite_path(tracking_uri)
    return None if database is None else database.with_name(database.name + ".lock")


def prepare(tracking_uri: str, experiment_name: str) -> str:
    """Migrate the store and create the experiment if it is missing, with the tags the UI reads
    (`mlflow_ui.experiment_tags`; an existing experiment gets those it lacks); returns the experiment id."""
    tags = mlflow_ui.experiment_tags()
    lock = lock_path(tracking_uri)
    with file_lock(lock) if lock else contextlib.nullcontext():
        client = MlflowClient(tracking_uri)  # creating the client migrates a fresh sqlite store
        experiment = retry_when_locked(client.get_experiment_by_name, experiment_name)
        if experiment is None:
            return retry_when_locked(client.create_experiment, experiment_name, tags=tags)
    if experiment.lifecycle_stage == LifecycleStage.DELETED:
        raise UserError(
            f"MLflow experiment {experiment_name!r} is deleted in {tracking_uri}; restore it "
            "(mlflow experiments restore) or choose another logger.experiment_name."
        )
    for key, value in tags.items():
        if key not in experiment.tags:
            retry_when_locked(client.set_experiment_tag, experiment.experiment_id, key, value)
    return experiment.experiment_id


def is_locked_database(error: MlflowException) -> bool:
    return "database is locked" in str(error)


def retry_when_locked(call: Callable[..., T], *args, **kwargs) -> T:
    """call(*args, **kwargs), repeated with growing, jittered pauses while sqlite reports a locked database."""
    delay = LOCKED_FIRST_DELAY_SECONDS
    for attempt in range(1, LOCKED_ATTEMPTS):
        try:
            return call(*args, **kwargs)
        except MlflowException as error:
            if not is_locked_database(error):
                raise
            log.warning("MLflow store locked (attempt %d of %d); retrying", attempt, LOCKED_ATTEMPTS)
            time.sleep(delay * random.uniform(1.0, 2.0))
            delay *= 2
    return call(*args, **kwargs)
