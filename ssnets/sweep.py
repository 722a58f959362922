"""What a job needs to know and do when it is one of a Hydra multirun (`python -m ssnets.run -m ...`).

- `job_tags`: every run of one sweep carries the same `sweep_id` (the sweep
  directory, unique per sweep with Hydra's time-stamped default) and its
  `sweep_job` number, so the MLflow UI and `ssnets.compare` can pick a sweep.
- `configure_job`: jobs running side by side on one machine (joblib launcher)
  each get their own GPU when several are visible, or a share of the CPU
  threads on CPU, instead of all of them fighting over every core and GPU 0.
  The submitit launchers need neither: submitit and SLURM hand each job its
  GPUs, and `cpus_per_task` gives its thread count.
- `PrepareTrackingStore`: a Hydra callback that migrates the MLflow store and
  creates the experiment once, before parallel jobs start writing into it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from typing import Any

import joblib
import mlflow
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from ssnets import store

log = logging.getLogger(__name__)

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


def visible_gpus() -> list[str]:
    """CUDA device ids this process may use, read without initialising CUDA (which would fix the choice)."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [device for device in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if device.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    listing = subprocess.run(
        ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, check=False
    )
    return listing.stdout.split() if listing.returncode == 0 else []


def parallel_jobs_here(launcher: DictConfig) -> int:
    """How many jobs the launcher runs at once on this machine: joblib's n_jobs, else 1."""
    if "n_jobs" not in launcher:
        return 1
    return joblib.effective_n_jobs(launcher.n_jobs)


def cpu_threads_per_job(launcher: DictConfig) -> int | None:
    """submitit's cpus_per_task, or this machine's CPUs split between joblib's parallel jobs (None: no limit)."""
    if launcher.get("cpus_per_task"):
        return int(launcher.cpus_per_task)
    parallel = parallel_jobs_here(launcher)
    return max(1, len(os.sched_getaffinity(0)) // parallel) if parallel > 1 else None


def configure_job() -> None:
    """Pin a parallel multirun job to one GPU, or limit its CPU threads; call before the backend touches a device.

    A joblib worker process runs several jobs in turn but initialises CUDA
    once, so it keeps the GPU its first job chose: the GPU list it then sees
    is that one device.
    """
    if not is_multirun():
        return
    hydra_cfg = HydraConfig.get()
    gpus = visible_gpus()
    if gpus:
        if parallel_jobs_here(hydra_cfg.launcher) > 1:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpus[hydra_cfg.job.num % len(gpus)]
            log.info("Job %d runs on GPU %s", hydra_cfg.job.num, os.environ["CUDA_VISIBLE_DEVICES"])
        return
    threads = cpu_threads_per_job(hydra_cfg.launcher)
    if threads is not None:
        import tensorflow as tf  # the input pipeline is tf.data under every Keras backend

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        log.info("Job %d uses %d CPU threads", hydra_cfg.job.num, threads)


class PrepareTrackingStore(Callback):
    """Registered under hydra.callbacks in conf/config.yaml; runs in the launching process."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        logger = config.logger
        if logger.name == "none":
            return
        tracking_uri = logger.tracking_uri or mlflow.get_tracking_uri()
        name = store.experiment_name_of(logger)
        experiment_id = store.prepare(tracking_uri, name)
        log.info("MLflow experiment %r (id %s) ready in %s", name, experiment_id, tracking_uri)
