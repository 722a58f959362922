"""Benchmark models:  python -m ssnets.bench model=fast_fcn8 [bench.batch_size=32 bench.image_size=224 bench.steps=50]

For each model (`bench.models=[a,b]`, or the `model` group's choice): parameters,
first-step and compile seconds, steady-state training images/s through fit()
(and, to show fit()'s own cost, through a bare train_on_batch loop), inference
images/s through a compiled batched forward pass, peak host and device memory;
once per run: the input pipeline's images/s with the configured augmentation
and the synthetic generator's. Rows matching a reference configuration in
PERFORMANCE.md get the ratio to it. Writes bench.json and bench.md into the run
directory, prints the table, and with bench.log_to_mlflow=true logs one MLflow
run per model.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import hydra
import keras
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ssnets.common.errors import exit_on_user_error
from ssnets.common.tables import markdown_table
from ssnets.data import load_splits
from ssnets.data.augment import build_augmenter
from ssnets.data.types import Split
from ssnets.models import build_model
from ssnets.perf import memory
from ssnets.perf.reference import reference_for
from ssnets.perf.throughput import (
    Windows,
    device_batches,
    fit_throughput,
    generator_throughput,
    inference_throughput,
    loop_throughput,
    pipeline_throughput,
)
from ssnets.tracking.base import build_tracker
from ssnets.tracking.params import config_params
from ssnets.training import runtime
from ssnets.training.evaluate import parameter_counts
from ssnets.training.fit import compile_model
from ssnets.training.precision import resolve_precision

log = logging.getLogger("ssnets.bench")

# (JSON field, table heading, format); the JSON holds every field, the table these.
TABLE_COLUMNS = [
    ("model", "model", "{}"),
    ("backend", "backend", "{}"),
    ("device", "device", "{}"),
    ("precision", "precision", "{}"),
    ("total_params", "params (M)", "{:.2f}"),
    ("first_step_seconds", "first step (s)", "{:.1f}"),
    ("compile_seconds", "compile (s)", "{:.1f}"),
    ("train_images_per_second", "train img/s", "{:.1f}"),
    ("fit_vs_loop", "fit/loop", "{:.2f}"),
    ("inference_images_per_second", "infer img/s", "{:.1f}"),
    ("pipeline_images_per_second", "pipeline img/s", "{:.1f}"),
    ("pipeline_vs_train", "pipeline/train", "{:.1f}"),
    ("generator_images_per_second", "generator img/s", "{:.1f}"),
    ("peak_host_rss_mib", "peak RSS (MiB)", "{:.0f}"),
    ("peak_device_memory_mib", "peak device (MiB)", "{:.0f}"),
    ("train_vs_reference", "train/ref", "{:.2f}"),
    ("inference_vs_reference", "infer/ref", "{:.2f}"),
    ("load_average", "load", "{:.1f}"),
]


def model_configs(cfg: DictConfig) -> list[DictConfig]:
    """One full config per model of bench.models (composed like `model=NAME` with the other overrides)."""
    if not cfg.bench.models:
        return [cfg]
    overrides = [
        override
        for override in HydraConfig.get().overrides.task
        if not override.lstrip("+~").startswith(("model=", "bench.models="))
    ]
    config_name = HydraConfig.get().job.config_name
    return [
        hydra.compose(config_name=config_name, overrides=[*overrides, f"model={name}"]) for name in cfg.bench.models
    ]


def shared_figures(cfg: DictConfig, windows: Windows) -> tuple[Split, dict[str, float | None]]:
    """The training split the models are fed, and the pipeline's and generator's images/s (model-independent)."""
    split = load_splits(cfg.data)["train"]
    augmenter = build_augmenter(cfg.augmentation, cfg.seed)
    pipeline = pipeline_throughput(split, cfg.bench.batch_size, augmenter, cfg.seed, windows)
    log.info("input pipeline (augmentation=%s): %.1f images/s", cfg.augmentation.name, pipeline)
    generator = None
    if cfg.bench.generator_images:
        generator = generator_throughput(cfg.bench.image_size, cfg.bench.generator_images, cfg.seed)
        log.info("synthetic generator: %.1f images/s", generator)
    return split, {"pipeline_images_per_second": pipeline, "generator_images_per_second": generator}


def measure_model(cfg: DictConfig, split: Split, windows: Windows) -> dict[str, Any]:
    """Every per-model figure of one bench row."""
    keras.backend.clear_session()
    precision = resolve_precision(cfg)
    runtime.configure(cfg.seed, precision, cfg.trainer.compilation_cache_dir)
    memory.reset_peak_device_memory()
    batch_size, data = cfg.bench.batch_size, cfg.data
    model = build_model(
        cfg.model,
        (data.image_size, data.image_size, data.channels),
        data.num_classes,
        cfg.trainer.l2,
        cfg.trainer.bn_momentum,
    )
    compile_model(model, cfg)
    images, masks = device_batches(split.images, split.masks, batch_size, windows.steps)
    log.info(
        "%s: timing fit() (%d windows of %d steps after one warm-up window)",
        cfg.model.name,
        windows.count,
        windows.steps,
    )
    train = fit_throughput(model, images, masks, batch_size, windows)
    loop = loop_throughput(model, images, masks, batch_size, windows) if cfg.bench.compare_loop else None
    log.info("%s: timing the compiled forward pass", cfg.model.name)
    inference = inference_throughput(model, images[:batch_size], windows, model.jit_compile)
    return {
        "model": cfg.model.name,
        "conv_type": cfg.model.conv_type,
        "backend": keras.backend.backend(),
        "device": runtime.device_description(),
        "precision": precision,
        "jit_compile": bool(model.jit_compile),
        "batch_size": batch_size,
        "image_size": data.image_size,
        "total_params": parameter_counts(model)["total_params"] / 1e6,
        "first_step_seconds": train.first_step_seconds,
        # The first step minus one steady-state step: tracing and compiling.
        "compile_seconds": max(train.first_step_seconds - batch_size / train.images_per_second, 0.0),
        "train_images_per_second": train.images_per_second,
        "loop_images_per_second": loop,
        "fit_vs_loop": train.images_per_second / loop if loop else None,
        "inference_first_seconds": inference.first_step_seconds,
        "inference_images_per_second": inference.images_per_second,
        "peak_host_rss_mib": memory.peak_host_rss_mib(),
        "peak_device_memory_mib": memory.peak_device_memory_mib(),
        "load_average": os.getloadavg()[0],
    }


def with_comparisons(row: dict[str, Any], shared: dict[str, float | None]) -> dict[str, Any]:
    """The row plus the shared figures, the pipeline's headroom over training and the ratios to the reference."""
    row = {**row, **shared}
    row["pipeline_vs_train"] = row["pipeline_images_per_second"] / row["train_images_per_second"]
    reference = reference_for(row)
    row["reference"] = reference["source"] if reference else None
    for kind in ("train", "inference"):
        figure = reference[kind] if reference else None
        row[f"reference_{kind}_images_per_second"] = figure
        row[f"{kind}_vs_reference"] = row[f"{kind}_images_per_second"] / figure if figure else None
    return row


def bench_table(rows: list[dict[str, Any]]) -> str:
    cells = [["-" if row[key] is None else fmt.format(row[key]) for key, _, fmt in TABLE_COLUMNS] for row in rows]
    return markdown_table([heading for _, heading, _ in TABLE_COLUMNS], cells)


def log_to_tracker(cfg: DictConfig, model_cfg: DictConfig, row: dict[str, Any], files: list[Path]) -> None:
    tracker = build_tracker(cfg.logger)
    tags = {"backend": row["backend"], "device": row["device"], "kind": "bench"}
    with tracker.start(tags, run_name=f"bench-{row['model']}-{row['backend']}"):
        tracker.log_params(config_params(model_cfg))
        tracker.log_metrics({key: float(value) for key, value in row.items() if isinstance(value, (int, float))})
        for path in files:
            tracker.log_artifact(path)


def bench(cfg: DictConfig, run_dir: Path) -> list[dict[str, Any]]:
    windows = Windows(count=cfg.bench.windows, steps=max(1, cfg.bench.steps // cfg.bench.windows))
    configs = model_configs(cfg)
    split, shared = shared_figures(cfg, windows)
    json_file, table_file = run_dir / "bench.json", run_dir / "bench.md"
    rows = []
    for model_cfg in configs:
        rows.append(with_comparisons(measure_model(model_cfg, split, windows), shared))
        log.info(
            "%s: %.1f train images/s, %.1f inference images/s",
            rows[-1]["model"],
            rows[-1]["train_images_per_second"],
            rows[-1]["inference_images_per_second"],
        )
        # Written after every model, so a run stopped by a time limit keeps what it measured.
        json_file.write_text(json.dumps(rows, indent=2) + "\n")
        table_file.write_text(bench_table(rows))
    print(bench_table(rows), flush=True)
    log.info("Wrote %s and %s", json_file, table_file)
    if cfg.bench.log_to_mlflow:
        for model_cfg, row in zip(configs, rows, strict=True):
            log_to_tracker(cfg, model_cfg, row, [json_file, table_file])
    return rows


@hydra.main(version_base="1.3", config_path="conf", config_name="bench")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error(log):
        bench(cfg, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
