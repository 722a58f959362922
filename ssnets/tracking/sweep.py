"""The runs of one Hydra multirun (`python -m ssnets.run -m ...`) as the tracker records them.

- `job_tags`: every run of one sweep carries the same `sweep_id` (the sweep
  directory, unique per sweep with Hydra's time-stamped default) and its
  `sweep_job` number, so the MLflow UI and `ssnets.compare` can pick a sweep.
- `PrepareTrackingStore`: a Hydra callback that lets the configured tracker
  prepare its store once (for MLflow: migrate it and create the experiment),
  before parallel jobs start writing into it.
"""

from __future__ import annotations

from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from ssnets.tracking.base import build_tracker

SWEEP_ID_TAG = "sweep_id"
SWEEP_JOB_TAG = "sweep_job"


def is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_tags() -> dict[str, str]:
    """{"sweep_id", "sweep_job"} for a multirun job, {} otherwise."""
    if not is_multirun():
        return {}
    hydra_cfg = HydraConfig.get()
    return {SWEEP_ID_TAG: str(hydra_cfg.sweep.dir), SWEEP_JOB_TAG: str(hydra_cfg.job.num)}


class PrepareTrackingStore(Callback):
    """Registered under hydra.callbacks in conf/config.yaml; runs in the launching process."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        build_tracker(config.logger).prepare()
