"""The `ssnets_optuna` sweeper as Hydra finds it: registers its configs and hands the search to ssnets.search.

Kept light (Hydra imports it at every start-up): Optuna, MLflow and the training code
load only when a search is set up.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from ssnets.search.config import register_configs

register_configs()


class SsnetsOptunaSweeper(Sweeper):
    """hydra/sweeper=ssnets_optuna (conf: ssnets.search.config.SsnetsOptunaSweeperConf)."""

    def __init__(self, **settings: Any) -> None:
        from ssnets.search.sweeper import OptunaSearch

        self.search = OptunaSearch(**settings)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.search.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.search.sweep(arguments)
