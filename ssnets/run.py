"""Train, evaluate and log one run:  python -m ssnets.run [overrides]

compose config -> set up -> load data -> fit -> evaluate -> log; the steps are
`ssnets.training.job.train`. With `-m`, every combination of the overrides is a
job of a sweep, and each job returns its trainer.monitor value to the sweeper.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ssnets.common.errors import exit_on_user_error
from ssnets.tracking.sweep import is_multirun
from ssnets.training.device_share import configure_job
from ssnets.training.job import train
from ssnets.training.signals import exit_on_interrupt

log = logging.getLogger("ssnets.run")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the trainer.monitor value so sweepers (e.g. Optuna) can optimise it."""
    configure_job()
    # In a multirun a failed job is Hydra's to record, and the other jobs run on.
    with exit_on_user_error(log, reraise=is_multirun()), exit_on_interrupt(log):
        metrics = train(cfg, Path(HydraConfig.get().runtime.output_dir))
    return metrics.get(cfg.trainer.monitor.name)


if __name__ == "__main__":
    main()
