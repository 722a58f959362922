"""Train, evaluate and log one run:  python -m ssnets.run [overrides]

compose config -> load data -> build model -> fit -> evaluate -> log to MLflow.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
import keras
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ssnets import checkpoint, distribute, resume, runtime, signals, sweep, training, validation
from ssnets.callbacks import recipe_callbacks
from ssnets.data import load_splits
from ssnets.data.augment import build_augmenter
from ssnets.data.pipeline import make_dataset
from ssnets.divergence import StopOnNonFiniteLoss
from ssnets.errors import UserError
from ssnets.losses import class_weight_params, resolve_class_weights
from ssnets.models import build_model
from ssnets.tracking import NullTracker, build_tracker, config_params
from ssnets.visualize import prediction_grid, save_png

log = logging.getLogger("ssnets.run")


def parameter_counts(model: keras.Model) -> dict[str, int]:
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return {"total_params": model.count_params(), "trainable_params": trainable}


def train(cfg: DictConfig, run_dir: Path) -> dict[str, float]:
    """One run; returns the final metrics (val_*, test_*)."""
    validation.check_config(cfg)
    placement = distribute.placement(cfg.trainer.strategy, cfg.data.batch_size)
    runtime.configure(cfg.seed, cfg.trainer.precision, cfg.trainer.compilation_cache_dir)
    data = cfg.data
    input_shape = (data.image_size, data.image_size, data.channels)
    with validation.builder_errors_as_user_errors(), placement.scope():
        model = build_model(cfg.model, input_shape, data.num_classes, cfg.trainer.l2, cfg.trainer.bn_momentum)
    placement.prepare_model(model)
    counts = parameter_counts(model)
    log.info("%s (conv_type=%s): %s parameters", cfg.model.name, cfg.model.conv_type, f"{counts['total_params']:,}")
    if cfg.trainer.dry_run:
        return {}

    # Hosts 2..N of a multi-host run train in step with the chief but record nothing of their own.
    tracker = build_tracker(cfg.logger) if placement.is_chief else NullTracker()
    job = resume.resolve(cfg, placement.process_run_dir(run_dir), tracker)
    if job.finished_run is not None:
        return job.finished_run.data.metrics
    run_dir = job.run_dir
    tags = {"backend": keras.backend.backend(), "device": runtime.device_description()}
    tags.update({**job.tags(), **sweep.job_tags()})
    with signals.interruptible(f"trainer.resume={run_dir}"), tracker.start(cfg, tags, run_id=job.run_id):
        # Data problems of one sweep job end its run FAILED, with the config logged.
        if not job.resumed:
            tracker.log_params({**config_params(cfg), **counts})
        splits = load_splits(data, cfg.trainer.val_fraction, cfg.seed)
        class_weights = resolve_class_weights(cfg.loss, data, splits["train"].masks)
        validation.check_splits(data, splits)
        if not job.resumed:
            tracker.log_params(class_weight_params(class_weights, data.class_names))
        # Recorded only now: from here on job.resumed is true.
        job.record_run_id(tracker.run_id)
        augmenter = build_augmenter(cfg.augmentation, cfg.seed)
        train_ds = make_dataset(splits["train"], data.batch_size, training=True, augmenter=augmenter, seed=cfg.seed)
        eval_ds = {name: make_dataset(split, data.batch_size, training=False) for name, split in splits.items()}

        with placement.scope():
            training.compile_model(model, cfg, class_weights)
        checkpoint.restore(model, run_dir, job.progress)
        tracker.log_missing_epochs(job.progress.history)
        first_epoch = job.progress.epoch
        # A resumed run's early stopping counts on from the val mIoU of the epochs it already trained.
        recipe = recipe_callbacks(cfg, job.progress.history.get("val_miou", []))
        result = training.fit(
            model,
            train_ds,
            eval_ds["val"],
            epochs=cfg.trainer.epochs,
            run_dir=run_dir,
            callbacks=[StopOnNonFiniteLoss(), *recipe, *tracker.keras_callbacks()],
            restore_best=cfg.trainer.restore_best,
            verbose=cfg.trainer.verbose,
            progress=job.progress,
        )

        model = placement.host_model(model)
        epochs_trained = job.progress.epoch - first_epoch
        metrics = {
            "train_seconds": result.train_seconds,
            # Fit time includes each epoch's validation pass.
            "train_images_per_second": len(splits["train"]) * epochs_trained / result.train_seconds,
        }
        if result.best_epoch is not None:
            metrics["best_epoch"] = result.best_epoch
        for name in ("val", "test"):
            if name in eval_ds:
                split_metrics = training.evaluate(
                    model, eval_ds[name], data.num_classes, list(data.class_names), data.ignore_index
                )
                metrics.update({f"{name}_{key}": value for key, value in split_metrics.items()})
        tracker.log_metrics(metrics, step=cfg.trainer.epochs)

        config_file = run_dir / "config.yaml"
        config_file.write_text(OmegaConf.to_yaml(cfg, resolve=True))
        tracker.log_artifact(config_file)
        tracker.log_artifact(write_preview(model, splits["val"], cfg.trainer.num_preview, run_dir))
        tracker.log_model(model, input_example=splits["val"].images[:1].astype(np.float32))

    log.info("Logged to %s", tracker.location())
    log.info("val mIoU %.4f, val E1 %.2f%%", metrics["val_miou"], 100 * metrics["val_e1"])
    return metrics


def write_preview(model: keras.Model, split, count: int, run_dir: Path) -> Path:
    images, truths = split.images[:count], split.masks[:count]
    predictions = np.argmax(keras.ops.convert_to_numpy(model.predict_on_batch(images.astype(np.float32))), axis=-1)
    return save_png(run_dir / "predictions.png", prediction_grid(images, truths, predictions))


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns val mIoU so sweepers (e.g. Optuna) can optimise it."""
    sweep.configure_job()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = train(cfg, run_dir)
    except UserError as error:
        log.error("%s", error)
        # In a multirun, Hydra records the job as failed and runs the others.
        if os.environ.get("HYDRA_FULL_ERROR") == "1" or sweep.is_multirun():
            raise
        sys.exit(1)
    except signals.Interrupted as stop:
        log.error("%s", stop)
        sys.exit(stop.exit_code)
    return metrics.get("val_miou")


if __name__ == "__main__":
    main()
