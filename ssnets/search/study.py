"""The study: its storage (shared by every worker and by the trials' jobs), its name, and opening it.

- `storage`: an SQLAlchemy URL (default sqlite:///optuna.db; postgresql://... for a
  cluster) or the path of an Optuna journal file (JournalFileBackend, which needs no
  database server and locks on network file systems). A relative path is made absolute
  here, because the trials' jobs (joblib workers, SLURM jobs) open it too.
- Database storages carry Optuna's heartbeat, so a trial whose worker died on another
  machine is noticed; Optuna 4.9's journal storage has none (budget.py notices dead
  workers of this machine on either).
- The study is created by exactly one worker (the storage refuses a second study of the
  same name); every other worker, and every rerun, loads it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import optuna
from omegaconf import DictConfig
from optuna.study import StudyDirection
from sqlalchemy.engine import make_url

from ssnets.common.errors import UserError
from ssnets.search.budget import Requeue
from ssnets.search.space import SearchSpace
from ssnets.training.pruning import open_storage

DIRECTIONS = {
    "max": StudyDirection.MAXIMIZE,
    "maximize": StudyDirection.MAXIMIZE,
    "min": StudyDirection.MINIMIZE,
    "minimize": StudyDirection.MINIMIZE,
}


def is_database(storage: str) -> bool:
    return "://" in storage


def absolute_storage(storage: str) -> str:
    """`storage` with a relative sqlite or journal path made absolute (its folder created)."""
    if not is_database(storage):
        path = Path(storage).expanduser().resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)
    url = make_url(storage)
    if url.get_backend_name() != "sqlite":
        return storage
    if url.database in (None, "", ":memory:"):
        raise UserError(
            f"hydra.sweeper.storage={storage} keeps the study in memory, where the trials' jobs cannot reach it; "
            "name a file (sqlite:///optuna.db) or a database server."
        )
    path = Path(url.database).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return url.set(database=str(path)).render_as_string(hide_password=False)


def display_storage(storage: str) -> str:
    """The storage for logs and run tags: a database URL without its password."""
    return make_url(storage).render_as_string(hide_password=True) if is_database(storage) else storage


def direction_of(direction: str) -> StudyDirection:
    try:
        return DIRECTIONS[str(direction).lower()]
    except KeyError:
        raise UserError(
            f"hydra.sweeper.direction={direction} is not one of {', '.join(DIRECTIONS)} "
            "(by default it follows trainer.monitor.mode)."
        ) from None


def default_study_name(config: DictConfig, space: SearchSpace) -> str:
    """The hparams_search option (or the job's name) and a hash of the search space and the other overrides."""
    base = config.hydra.runtime.choices.get("hparams_search") or config.hydra.job.name
    what = json.dumps({"space": space.expressions, "fixed": sorted(space.fixed)}, sort_keys=True)
    return f"{base}-{hashlib.sha256(what.encode()).hexdigest()[:8]}"


def open_study(
    storage: str,
    name: str,
    direction: str,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    heartbeat_interval: int,
    requeue: Requeue,
) -> tuple[optuna.Study, bool]:
    """(the study, whether this worker created it)."""
    options = {"heartbeat_interval": heartbeat_interval, "heartbeat_stale_trial_callback": requeue}
    backend = open_storage(storage, **options) if is_database(storage) else open_storage(storage)
    wanted = direction_of(direction)
    try:
        study = optuna.create_study(storage=backend, study_name=name, direction=wanted, sampler=sampler, pruner=pruner)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=backend, sampler=sampler, pruner=pruner)
    if study.direction != wanted:
        raise UserError(
            f"Study {name!r} in {display_storage(storage)} was created to {study.direction.name.lower()}, not to "
            f"{wanted.name.lower()}; give another hydra.sweeper.study_name or the study's direction."
        )
    return study, False
