"""One training job, step by step: set up, resolve the job, load the data, fit, evaluate and log.

`train(cfg, run_dir)` is what `python -m ssnets.run` runs for every job of a run
or sweep; each step is a function of its own below, in the order they happen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from omegaconf import DictConfig, OmegaConf

from ssnets.common.run_files import CONFIG_FILE, MODEL_SUMMARY_FILE, PREVIEW_FILE
from ssnets.data import load_splits
from ssnets.data.augment import build_augmenter
from ssnets.data.class_names import resolve_class_names
from ssnets.data.pipeline import make_dataset
from ssnets.data.types import Split
from ssnets.models import build_model
from ssnets.task.losses import class_weight_params, resolve_class_weights
from ssnets.tracking.artifacts import local_weights
from ssnets.tracking.base import Tracker, build_tracker
from ssnets.tracking.datasets import describe_dataset
from ssnets.tracking.null import NullTracker
from ssnets.tracking.params import config_params
from ssnets.tracking.sweep import SWEEP_JOB_TAG, job_tags
from ssnets.training import checkpoint, distribute, resume, runtime, signals, validation
from ssnets.training.callbacks import EpochMetricsLogger, build_callbacks
from ssnets.training.epoch_pictures import EpochPictures
from ssnets.training.evaluate import evaluate, parameter_counts, write_model_summary, write_preview
from ssnets.training.fit import FitResult, compile_model, fit
from ssnets.training.monitor import Monitor
from ssnets.training.precision import resolve_precision
from ssnets.training.resume import Job, JobState

log = logging.getLogger("ssnets.run")

EVALUATED_SPLITS = ("val", "test")


@dataclass
class Setup:
    """What a job has before it reads any data: where it runs, its model, what it selects by, where it logs."""

    placement: distribute.Placement
    model: keras.Model
    parameter_counts: dict[str, int]
    monitor: Monitor
    tracker: Tracker
    precision: str  # the policy in force: trainer.precision, auto decided


@dataclass
class TrainingData:
    splits: dict[str, Split]
    train: tf.data.Dataset
    evaluation: dict[str, tf.data.Dataset]  # every split, unshuffled and unaugmented
    class_weights: list[float] | None


def train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """One run; returns its final metrics (val_*, test_*, train_seconds; for a finished job, the logged ones)."""
    setup = set_up(cfg)
    if cfg.trainer.dry_run:
        return {}
    job = resume.resolve(cfg, setup.placement.process_run_dir(run_dir), setup.tracker)
    if job.state is JobState.FINISHED:
        return job.finished_metrics
    job.run_dir.mkdir(parents=True, exist_ok=True)
    with (
        signals.interruptible(f"trainer.resume={job.run_dir}"),
        setup.tracker.start(
            {**run_tags(job), "precision": setup.precision},
            run_id=job.run_id,
            run_name=default_run_name(cfg),
            run_dir=job.run_dir,
        ) as tracker,
    ):
        job.record_run_id(tracker.run_id)
        # Logged before the data is read, so a job failing on its data ends FAILED with its config.
        if job.state is JobState.NEW:
            tracker.log_params({**config_params(cfg), **setup.parameter_counts})
            tracker.log_artifact(write_model_summary(setup.model, job.run_dir / MODEL_SUMMARY_FILE))
        data = load_data(cfg)
        if job.state is JobState.NEW:
            tracker.log_params(class_weight_params(data.class_weights, cfg.data.class_names))
            tracker.log_dataset(describe_dataset(cfg.data, {name: split.names for name, split in data.splits.items()}))
        result = fit_model(cfg, setup, data, job, tracker)
        metrics = evaluate_and_log(cfg, setup, data, result, job.run_dir, tracker)
    log.info("Logged to %s", tracker.location())
    log.info("val mIoU %.4f, val E1 %.2f%%", metrics["val_miou"], 100 * metrics["val_e1"])
    return metrics


def set_up(cfg: DictConfig) -> Setup:
    """Name the classes, check the config, place the job on its devices, seed, build the model and the tracker."""
    cfg.data.class_names = resolve_class_names(cfg.data)
    validation.check_config(cfg)
    monitor = Monitor.from_config(cfg.trainer.monitor)
    placement = distribute.placement(cfg.trainer.strategy, cfg.data.batch_size)
    precision = resolve_precision(cfg)
    runtime.configure(cfg.seed, precision, cfg.trainer.compilation_cache_dir)
    input_shape = (cfg.data.image_size, cfg.data.image_size, cfg.data.channels)
    # model.weights may name a tracked run (its id or a runs:/ URI): read from a local copy of its model.
    with placement.scope(), local_weights(cfg.model, cfg.logger.get("tracking_uri")) as model_cfg:
        model = build_model(model_cfg, input_shape, cfg.data.num_classes, cfg.trainer.l2, cfg.trainer.bn_momentum)
    placement.prepare_model(model)
    counts = parameter_counts(model)
    log.info("%s (conv_type=%s): %s parameters", cfg.model.name, cfg.model.conv_type, f"{counts['total_params']:,}")
    # Hosts 2..N of a multi-host run train in step with the chief but record nothing of their own.
    tracker = build_tracker(cfg.logger) if placement.is_chief else NullTracker()
    return Setup(placement, model, counts, monitor, tracker, precision)


def run_tags(job: Job) -> dict[str, str]:
    return {
        "backend": keras.backend.backend(),
        "device": runtime.device_description(),
        "git_commit": runtime.git_commit(),
        **job.tags(),
        **job_tags(),
    }


def default_run_name(cfg: DictConfig) -> str:
    """model-conv_type-data-size (e.g. fast_fcn8-ds-iris-128), with the job number in a sweep."""
    name = f"{cfg.model.name}-{cfg.model.conv_type}-{cfg.data.name}-{cfg.data.image_size}"
    sweep_job = job_tags().get(SWEEP_JOB_TAG)
    return name if sweep_job is None else f"{name}-{sweep_job}"


def load_data(cfg: DictConfig) -> TrainingData:
    """The splits, checked, the class weights they imply, and the tf.data pipelines over them."""
    data = cfg.data
    splits = load_splits(data, cfg.trainer.val_fraction, cfg.seed)
    validation.check_splits(data, splits)
    class_weights = resolve_class_weights(cfg.loss, data, splits["train"].masks)
    augmenter = build_augmenter(cfg.augmentation, cfg.seed)
    train_ds = make_dataset(splits["train"], data.batch_size, training=True, augmenter=augmenter, seed=cfg.seed)
    evaluation = {name: make_dataset(split, data.batch_size, training=False) for name, split in splits.items()}
    return TrainingData(splits, train_ds, evaluation, class_weights)


def fit_model(cfg: DictConfig, setup: Setup, data: TrainingData, job: Job, tracker: Tracker) -> FitResult:
    """Compile, take up the checkpoint of a continuing run, and train the remaining epochs."""
    with setup.placement.scope():
        compile_model(setup.model, cfg, data.class_weights)
    checkpoint.restore(setup.model, job.run_dir, job.progress)
    logged_epochs = resume.reconcile_logged_epochs(tracker, job.progress.history)
    return fit(
        setup.model,
        data.train,
        data.evaluation["val"],
        epochs=cfg.trainer.epochs,
        run_dir=job.run_dir,
        progress=job.progress,
        monitor=setup.monitor,
        callbacks=[
            *build_callbacks(cfg.callbacks, job.progress.history),
            *tracking_callbacks(cfg, data, tracker, logged_epochs),
        ],
        restore_best=cfg.trainer.restore_best,
        verbose=cfg.trainer.verbose,
        checkpoint_interval_s=cfg.trainer.checkpoint_interval_s,
    )


def tracking_callbacks(
    cfg: DictConfig, data: TrainingData, tracker: Tracker, logged_epochs: int
) -> list[keras.callbacks.Callback]:
    """Every epoch from `logged_epochs` on: its Keras logs, and a picture of the val predictions (none with
    trainer.num_preview=0)."""
    count = cfg.trainer.num_preview
    interval = cfg.trainer.epoch_pictures_interval_s
    pictures = [EpochPictures(tracker, data.evaluation["val"], count, logged_epochs, interval)] if count else []
    return [EpochMetricsLogger(tracker, logged_epochs), *pictures]


def evaluate_and_log(
    cfg: DictConfig, setup: Setup, data: TrainingData, result: FitResult, run_dir: Path, tracker: Tracker
) -> dict[str, float]:
    """Final metrics over whole splits (at step = trainer.epochs), then the config, a preview and the model
    (for inference: its weights without the optimizer state)."""
    model = setup.placement.host_model(setup.model)
    metrics = {
        "train_seconds": result.train_seconds,
        # Fit time includes each epoch's validation pass.
        "train_images_per_second": len(data.splits["train"]) * result.epochs_trained / result.train_seconds,
    }
    if result.best_epoch is not None:
        metrics["best_epoch"] = result.best_epoch
    for name in EVALUATED_SPLITS:
        if name in data.evaluation:
            split_metrics = evaluate(
                model, data.evaluation[name], cfg.data.num_classes, list(cfg.data.class_names), cfg.data.ignore_index
            )
            metrics.update({f"{name}_{key}": value for key, value in split_metrics.items()})
    # A per-epoch monitor the final evaluation does not compute (val_loss) is its best epoch's value.
    if result.best_score is not None:
        metrics.setdefault(setup.monitor.name, result.best_score)
    tracker.log_metrics(metrics, step=cfg.trainer.epochs)

    config_file = run_dir / CONFIG_FILE
    config_file.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    tracker.log_artifact(config_file)
    if cfg.trainer.num_preview:
        tracker.log_artifact(write_preview(model, data.splits["val"], cfg.trainer.num_preview, run_dir / PREVIEW_FILE))
    tracker.log_model(checkpoint.inference_model(model), input_example=data.splits["val"].images[:1].astype(np.float32))
    return metrics
