"""Compare training runs:  python -m ssnets.compare [--experiment NAME] [--sweep-id ID|latest] [LOGGER OVERRIDES]

Prints one row per run (model, conv_type, parameters, the trainer.monitor metric,
val mIoU, val E1, per-class IoU, train seconds, images/s) ranked by the runs'
trainer.monitor, writes the table as Markdown and CSV, draws the monitored metric
against parameter count next to its per-epoch curves in a PNG, and logs the three
files to a "comparison" run under which the compared runs are nested, so the
tracker's UI shows them together. Runs are read through the configured logger
(`logger=mlflow` by default; `logger=csv logger.root=DIR` for CSV runs).
"""

from __future__ import annotations

import argparse
import csv
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter

from ssnets.common.errors import UserError, exit_on_user_error
from ssnets.common.tables import markdown_table
from ssnets.tracking.base import RunRecord, Tracker, build_tracker, nest_runs
from ssnets.tracking.sweep import SWEEP_ID_TAG
from ssnets.training.monitor import Monitor

log = logging.getLogger("ssnets.compare")

COMPARISON_TAG = "ssnets.comparison"
CLASS_IOU_PREFIX = "val_iou_"
TEXT_COLUMNS = ("run", "status", "model", "conv_type")
DEFAULT_MONITOR = Monitor()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ssnets.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="ssnets", help="experiment name (logger.experiment_name)")
    parser.add_argument("--sweep-id", help="only this sweep's runs (its sweep_id tag); 'latest': the newest sweep")
    parser.add_argument("--tracking-uri", help="MLflow store (default: MLflow's, ./mlflow.db)")
    parser.add_argument("--monitor", help="metric to rank by (default: the runs' trainer.monitor, else val_miou)")
    parser.add_argument("--mode", choices=("max", "min"), help="with --monitor: its better direction (default max)")
    parser.add_argument("--out", type=Path, help="output folder (default: outputs/compare/DATE_TIME)")
    parser.add_argument("--no-log", action="store_true", help="write the files but log no comparison run")
    parser.add_argument("overrides", nargs="*", help="logger config overrides, e.g. logger=csv logger.root=DIR")
    return parser.parse_args(argv)


def tracker_of(args: argparse.Namespace) -> Tracker:
    """The tracker `ssnets.run` would log to with the same logger overrides."""
    overrides = [*args.overrides, f"logger.experiment_name={args.experiment}"]
    if args.tracking_uri:
        overrides.append(f"logger.tracking_uri={args.tracking_uri}")
    with initialize_config_module("ssnets.conf", version_base="1.3"):
        return build_tracker(compose("config", overrides=overrides).logger)


def training_runs(tracker: Tracker, sweep_id: str | None) -> list[RunRecord]:
    """The experiment's training runs (of one sweep if given), comparison runs left out."""
    runs = tracker.search_runs({SWEEP_ID_TAG: sweep_id} if sweep_id else None)
    return [run for run in runs if COMPARISON_TAG not in run.tags]


def latest_sweep_id(tracker: Tracker) -> str:
    for run in training_runs(tracker, None):
        if SWEEP_ID_TAG in run.tags:
            return run.tags[SWEEP_ID_TAG]
    raise UserError("The experiment holds no sweep runs; run one with python -m ssnets.run -m ... first.")


def monitor_of(args: argparse.Namespace, runs: Sequence[RunRecord]) -> Monitor:
    """--monitor, else the trainer.monitor the runs were trained with."""
    if args.monitor:
        return Monitor(args.monitor, args.mode or "max")
    logged = {
        (run.params["trainer.monitor.name"], run.params["trainer.monitor.mode"])
        for run in runs
        if "trainer.monitor.name" in run.params
    }
    if len(logged) > 1:
        raise UserError(f"The runs were trained with different trainer.monitor ({sorted(logged)}); pass --monitor.")
    return Monitor(*logged.pop()) if logged else DEFAULT_MONITOR


def rank(runs: Sequence[RunRecord], monitor: Monitor) -> list[RunRecord]:
    """Runs by the monitored metric, best first, then the rest (failed, running) by start time."""
    return sorted(runs, key=lambda run: (monitor.sort_key(run.metrics.get(monitor.name)), run.start_time))


def table(runs: Sequence[RunRecord], monitor: Monitor) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and one row of raw values per run."""
    class_ious = sorted({key for run in runs for key in run.metrics if key.startswith(CLASS_IOU_PREFIX)})
    metric_columns = list(
        dict.fromkeys([monitor.name, "val_miou", "val_e1", *class_ious, "train_seconds", "train_images_per_second"])
    )
    rows = []
    for run in runs:
        row = {
            "run": run.run_id,
            "status": run.status,
            "model": run.params.get("model.name"),
            "conv_type": run.params.get("model.conv_type"),
            "total_params": run.params.get("total_params"),
        }
        row.update({name: run.metrics.get(name) for name in metric_columns})
        rows.append(row)
    return [*TEXT_COLUMNS, "total_params", *metric_columns], rows


def format_cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column == "run":
        return value[:8]
    if column == "total_params":
        return f"{int(value):,}"
    if column == "val_e1":
        return f"{100 * value:.2f}%"
    if column == "train_seconds":
        return f"{value:.1f}"
    if column == "train_images_per_second":
        return f"{value:.2f}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    cells = [[format_cell(column, row[column]) for column in columns] for row in rows]
    return markdown_table(columns, cells, right_aligned=[column not in TEXT_COLUMNS for column in columns])


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Path:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def labels(runs: Sequence[RunRecord]) -> list[str]:
    """model/conv_type, with the run id's start where that names several runs (e.g. Optuna trials)."""
    names = [f"{run.params.get('model.name')}/{run.params.get('model.conv_type')}" for run in runs]
    return [
        name if names.count(name) == 1 else f"{name} {run.run_id[:6]}" for name, run in zip(names, runs, strict=True)
    ]


def per_epoch(tracker: Tracker, run: RunRecord, name: str) -> tuple[list[int], list[float]]:
    """Keras' per-epoch values (steps 0..epochs-1); the final evaluation, logged at step=epochs, left out."""
    epochs = int(run.params.get("trainer.epochs", 0))
    history = sorted((step, value) for step, value in tracker.metric_history(run.run_id, name) if step < epochs)
    return [step + 1 for step, _ in history], [value for _, value in history]


def plot(tracker: Tracker, runs: Sequence[RunRecord], monitor: Monitor, path: Path) -> Path:
    finished = [run for run in runs if monitor.name in run.metrics and "total_params" in run.params]
    figure = Figure(figsize=(13, 5), layout="tight")
    scatter, curves = figure.subplots(1, 2)
    last_epoch = 1
    for run, label in zip(finished, labels(finished), strict=True):
        x, y = int(run.params["total_params"]), run.metrics[monitor.name]
        scatter.scatter(x, y)
        scatter.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        epochs, values = per_epoch(tracker, run, monitor.name)
        curves.plot(epochs, values, marker="o", label=label)
        last_epoch = max([last_epoch, *epochs])
    scatter.set(
        xscale="log", xlabel="total parameters", ylabel=monitor.name, title=f"{monitor.name} against model size"
    )
    scatter.margins(0.2)  # room for the labels
    scatter.xaxis.set_minor_formatter(NullFormatter())
    curves.set(xlabel="epoch", ylabel=monitor.name, title=f"{monitor.name} per epoch", xlim=(0.5, last_epoch + 0.5))
    curves.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if finished:
        curves.legend(fontsize=8)
    scatter.grid(alpha=0.3)
    curves.grid(alpha=0.3)
    figure.savefig(path, dpi=120)
    return path


def log_comparison(tracker: Tracker, runs: Sequence[RunRecord], files: Sequence[Path], sweep_id: str | None) -> str:
    """A FINISHED "comparison" run holding the files, with the compared runs nested under it."""
    tags = {COMPARISON_TAG: "true", **({SWEEP_ID_TAG: sweep_id} if sweep_id else {})}
    with tracker.start(tags, run_name="comparison") as comparison:
        for path in files:
            comparison.log_artifact(path)
        parent = comparison.run_id
    nest_runs(tracker, parent, [run.run_id for run in runs])
    return parent


def compare(args: argparse.Namespace) -> None:
    tracker = tracker_of(args)
    sweep_id = latest_sweep_id(tracker) if args.sweep_id == "latest" else args.sweep_id
    runs = training_runs(tracker, sweep_id)
    if not runs:
        where = f"sweep {sweep_id!r} of " if sweep_id else ""
        raise UserError(
            f"No runs in {where}experiment {args.experiment!r} in {tracker.location()}; pass the --experiment, "
            "--tracking-uri or logger overrides the runs were logged with."
        )
    monitor = monitor_of(args, runs)
    runs = rank(runs, monitor)

    out = args.out or Path("outputs", "compare", time.strftime("%Y-%m-%d_%H-%M-%S"))
    out.mkdir(parents=True, exist_ok=True)
    columns, rows = table(runs, monitor)
    text = markdown(columns, rows)
    print(
        f"{len(runs)} runs of experiment {args.experiment!r}"
        + (f", sweep {sweep_id}" if sweep_id else "")
        + f", ranked by {monitor.name} ({monitor.mode})"
    )
    print(text, end="")
    (out / "comparison.md").write_text(text)
    files = [
        out / "comparison.md",
        write_csv(out / "comparison.csv", columns, rows),
        plot(tracker, runs, monitor, out / "comparison.png"),
    ]
    print(f"Wrote {', '.join(str(path) for path in files)}")
    if not args.no_log:
        parent = log_comparison(tracker, runs, files, sweep_id)
        print(f"Logged to run {parent} (comparison); the compared runs are nested under it")
    links = tracker.comparison_links(runs, monitor.name, monitor.mode)
    if links:
        print("In the MLflow UI (for a local store, start `mlflow ui` here first):")
        for view, url in links.items():
            print(f"  {view}: {url}")


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_on_user_error(log):
        compare(parse_args(argv))


if __name__ == "__main__":
    main()
