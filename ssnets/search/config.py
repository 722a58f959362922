"""hydra/sweeper=ssnets_optuna: the sweeper's config, and its sampler and pruner options, for Hydra's ConfigStore.

The plugin (hydra_plugins/ssnets_optuna_sweeper) registers these when Hydra scans its
plugins at every start-up, so this module imports dataclasses and Hydra only. Samplers
and pruners are `_target_` nodes: `hydra/sweeper/sampler=random` or
`hydra/sweeper/pruner=hyperband` picks one and `hydra.sweeper.pruner.n_warmup_steps=1` sets
one of its arguments. The defaults are Optuna's, except where a comment says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

PROVIDER = "ssnets"
SWEEPER_TARGET = "hydra_plugins.ssnets_optuna_sweeper.ssnets_optuna_sweeper.SsnetsOptunaSweeper"


@dataclass
class TPESamplerConf:
    _target_: str = "optuna.samplers.TPESampler"
    # null: a new random stream per worker (two workers seeded alike would ask for the same points)
    seed: int | None = None
    n_startup_trials: int = 10  # random trials before TPE models the finished ones
    multivariate: bool = False
    # Trials still running count as having the worst value so far, so parallel workers spread out
    # (no effect with one trial at a time).
    constant_liar: bool = True


@dataclass
class RandomSamplerConf:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: int | None = None


@dataclass
class MedianPrunerConf:
    """Stop a trial whose value at an epoch is worse than the median of earlier trials at that epoch."""

    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5  # finished trials before any pruning
    # Epochs of each trial before it can be pruned: the first epochs' values say little of where a run ends.
    n_warmup_steps: int = 2
    interval_steps: int = 1
    n_min_trials: int = 1


@dataclass
class SuccessiveHalvingPrunerConf:
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: Any = "auto"  # epochs before the first rung ("auto": from the first finished trial)
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0
    bootstrap_count: int = 0


@dataclass
class HyperbandPrunerConf:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    max_resource: Any = "${trainer.epochs}"
    reduction_factor: int = 3
    bootstrap_count: int = 0


@dataclass
class NopPrunerConf:
    """No pruning; the trials still report every epoch's value (the intermediate-values picture)."""

    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class SsnetsOptunaSweeperConf:
    _target_: str = SWEEPER_TARGET
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "median"}])
    sampler: Any = MISSING
    pruner: Any = MISSING
    # maximize/minimize (or max/min): follows trainer.monitor, the value every trial's job returns.
    direction: str = "${trainer.monitor.mode}"
    # null: the hparams_search option (or the job's name) and a hash of the search space and the
    # command's other overrides, so the same command continues its study and another starts its own.
    study_name: str | None = None
    # An SQLAlchemy URL (sqlite:///optuna.db: beside ./mlflow.db; postgresql://... for clusters) or the
    # path of an Optuna journal file (for network file systems without a database server).
    storage: str = "sqlite:///optuna.db"
    # Trials of the study, over every worker and every rerun: the search stops asking once this many
    # are finished, running or queued.
    n_trials: int = 20
    # Trials this worker runs at once, each started as soon as a slot is free (null: joblib's
    # hydra.launcher.n_jobs, else 1; with hydra/launcher=slurm, the SLURM jobs in flight).
    n_jobs: int | None = None
    # Seconds between the heartbeats of a running trial (database storages): a trial whose worker has
    # been silent for twice this is failed and re-queued by whichever worker notices.
    heartbeat_interval: int = 60
    # How often a trial whose worker died is re-queued with the same parameters.
    max_retries: int = 3
    # Stop the search (exit 1) once more than this fraction of its finished trials failed.
    max_failure_rate: float = 0.0
    # Parameter sets to try first, e.g. the current recipe ([{optimizer.lr: 1.0e-3, model: fast_fcn8}]);
    # one already in the study is not queued again.
    enqueue_trials: list[Any] = field(default_factory=list)
    # The search space: key -> interval(...), tag(log, interval(...)), choice(...), range(...) or a fixed value.
    params: dict[str, Any] | None = None


SAMPLERS = {"tpe": TPESamplerConf, "random": RandomSamplerConf}
PRUNERS = {
    "median": MedianPrunerConf,
    "successive_halving": SuccessiveHalvingPrunerConf,
    "hyperband": HyperbandPrunerConf,
    "none": NopPrunerConf,
}


def register_configs() -> None:
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="ssnets_optuna", node=SsnetsOptunaSweeperConf, provider=PROVIDER)
    for name, node in SAMPLERS.items():
        store.store(group="hydra/sweeper/sampler", name=name, node=node, provider=PROVIDER)
    for name, node in PRUNERS.items():
        store.store(group="hydra/sweeper/pruner", name=name, node=node, provider=PROVIDER)
