"""callbacks.optuna_pruning: report each epoch's trainer.monitor value to an Optuna trial; stop a hopeless one.

The search (`hydra/sweeper=ssnets_optuna`, ssnets.search) adds this entry to every
trial's `callbacks` with the study's storage and name and the trial's number. The job
opens the study from its storage, reports `logs[monitor]` at step = epoch (the step of
the MLflow metrics) and asks the configured pruner (median, successive halving,
Hyperband, none). A trial the pruner gives up stops at the end of that epoch, after the
epoch is checkpointed and logged, and its job then raises `PrunedTrial` (an
`optuna.TrialPruned`): the run ends KILLED (stopped on purpose, not failed) with the pruning
in its `failure_reason`, keeps every epoch's metrics, and the search records the trial as PRUNED.
"""

from __future__ import annotations

import logging

import keras
import optuna
import sqlalchemy
from optuna.pruners import BasePruner, NopPruner

from ssnets.common.errors import UserError
from ssnets.tracking.base import KILLED

log = logging.getLogger(__name__)

# User attribute of a trial: the epochs its job was set to train (what pruning saved is counted against it).
PLANNED_EPOCHS_ATTR = "planned_epochs"
SQLITE_TIMEOUT_SECONDS = 60


def open_storage(url: str, **rdb_options) -> optuna.storages.BaseStorage:
    """An SQLAlchemy URL (sqlite:///..., postgresql://...) as RDBStorage, anything else as a journal file."""
    if "://" not in url:
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
    if not url.startswith("sqlite"):
        return optuna.storages.RDBStorage(url, **rdb_options)
    # Workers, their heartbeats and the trials' jobs write into one file: wait for another writer's lock.
    storage = optuna.storages.RDBStorage(
        url, engine_kwargs={"connect_args": {"timeout": SQLITE_TIMEOUT_SECONDS}}, **rdb_options
    )
    serialize_transactions(storage.engine)
    return storage


def serialize_transactions(engine: sqlalchemy.engine.Engine) -> None:
    """Make every transaction on a sqlite engine take the database's write lock when it begins.

    Python's sqlite3 begins a transaction at its first write, after its reads, so two workers
    that pop the same queued trial both read it WAITING and both start it (seen with two
    threads of one search). BEGIN IMMEDIATE at every begin is SQLAlchemy's recipe for
    pysqlite; RDBStorage creates its engine itself, so the listeners go on `storage.engine`
    and the connections it made before them are closed.
    """
    sqlalchemy.event.listen(engine, "connect", lambda connection, record: setattr(connection, "isolation_level", None))
    sqlalchemy.event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))
    engine.dispose()


def trial_of(study: optuna.Study, storage: optuna.storages.BaseStorage, number: int) -> optuna.Trial:
    """The running trial `number` of `study` (opened from `storage`), as a Trial that reports and asks the pruner.

    Optuna hands Trial objects only to the objective of `Study.optimize`; the search asked
    for this trial in another process, so it is reached by its id through Trial's public
    constructor (documented, though "not recommended" in objectives, which get one).
    """
    study_id = storage.get_study_id_from_name(study.study_name)
    return optuna.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, number))


class OptunaPruning(keras.callbacks.Callback):
    """Reports `logs[monitor]` to trial `trial_number` of the study every epoch and stops the trial when pruned."""

    def __init__(
        self, storage: str, study_name: str, trial_number: int, monitor: str, pruner: BasePruner | None = None
    ):
        super().__init__()
        self.study_name = str(study_name)
        self.trial_number = int(trial_number)
        self.monitor = monitor
        backend = open_storage(storage)
        study = optuna.load_study(study_name=self.study_name, storage=backend, pruner=pruner or NopPruner())
        self.trial = trial_of(study, backend, self.trial_number)
        self.pruned: tuple[int, float] | None = None  # (epoch, monitor value) the trial was pruned at

    def on_train_begin(self, logs=None):
        self.trial.set_user_attr(PLANNED_EPOCHS_ATTR, int(self.params["epochs"]))

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        try:
            self.trial.report(float(value), step=epoch)
        except optuna.exceptions.UpdateFinishedTrialError as error:
            raise UserError(
                f"Optuna trial {self.trial_number} of study {self.study_name!r} was already ended by the search "
                "(its worker stopped and the trial was re-queued); this run stops here."
            ) from error
        if self.trial.should_prune():
            self.pruned = (epoch, float(value))
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.pruned is None:
            return
        epoch, value = self.pruned
        message = (
            f"Trial {self.trial_number} pruned after epoch {epoch + 1} of {self.params['epochs']} "
            f"({self.monitor} {value:.4f})"
        )
        log.info("%s", message)
        raise PrunedTrial(message)


class PrunedTrial(optuna.TrialPruned):
    """Optuna's TrialPruned whose run ends KILLED: stopped on purpose by the pruner, not failed."""

    run_status = KILLED
