"""Jobs of a parallel multirun share this machine: one GPU each, or an equal share of the CPU threads.

Jobs running side by side on one machine (joblib launcher) each get their own
GPU when several are visible, or a share of the CPU threads on CPU, instead of
all of them fighting over every core and GPU 0. The submitit launchers need
neither: submitit and SLURM hand each job its GPUs, and `cpus_per_task` gives
its thread count.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

import joblib
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ssnets.tracking.sweep import is_multirun

log = logging.getLogger(__name__)


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
