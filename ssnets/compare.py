"""Compare training runs from MLflow:  python -m ssnets.compare [--experiment NAME] [--sweep-id ID|latest]

Prints one row per run (model, conv_type, parameters, val mIoU, val E1,
per-class IoU, train seconds, images/s), writes the table as Markdown and
CSV, draws val mIoU against parameter count next to the val mIoU curves in a
PNG, and logs the three files to a "comparison" MLflow run under which the
compared runs are nested, so the MLflow UI shows them together.
"""

from __future__ import annotations

import argparse
import csv
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import mlflow
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from ssnets import store
from ssnets.errors import UserError, exit_on_user_error
from ssnets.sweep import SWEEP_ID_TAG

log = logging.getLogger("ssnets.compare")

COMPARISON_TAG = "ssnets.comparison"
PARENT_RUN_TAG = "mlflow.parentRunId"
CLASS_IOU_PREFIX = "val_iou_"
TEXT_COLUMNS = ("run", "status", "model", "conv_type")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ssnets.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="ssnets", help="MLflow experiment name (logger.experiment_name)")
    parser.add_argument("--sweep-id", help="only this sweep's runs (its sweep_id tag); 'latest': the newest sweep")
    parser.add_argument("--tracking-uri", help="MLflow store (default: MLflow's, ./mlflow.db)")
    parser.add_argument("--out", type=Path, help="output folder (default: outputs/compare/DATE_TIME)")
    parser.add_argument("--no-log", action="store_true", help="write the files but log no comparison run")
    return parser.parse_args(argv)


def latest_sweep_id(client: MlflowClient, experiment_id: str) -> str:
    newest = client.search_runs(
        [experiment_id], f"tags.{SWEEP_ID_TAG} LIKE '%'", order_by=["attributes.start_time DESC"], max_results=1
    )
    if not newest:
        raise UserError("The experiment holds no sweep runs; run one with python -m ssnets.run -m ... first.")
    return newest[0].data.tags[SWEEP_ID_TAG]


def find_runs(client: MlflowClient, experiment_id: str, sweep_id: str | None) -> list[Run]:
    """The experiment's training runs (of one sweep if given), comparison runs left out."""
    filter_string = f"tags.{SWEEP_ID_TAG} = '{sweep_id}'" if sweep_id else ""
    runs = client.search_runs([experiment_id], filter_string, max_results=10_000)
    return [run for run in runs if COMPARISON_TAG not in run.data.tags]


def class_iou_columns(runs: Sequence[Run]) -> list[str]:
    return sorted({key for run in runs for key in run.data.metrics if key.startswith(CLASS_IOU_PREFIX)})


def rank(runs: Sequence[Run]) -> list[Run]:
    """Finished runs by val mIoU, best first, then the rest (failed, running) by start time."""
    return sorted(runs, key=lambda run: (-run.data.metrics.get("val_miou", -1.0), run.info.start_time))


def table(runs: Sequence[Run]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and one row of raw values per run."""
    metric_columns = ["val_miou", "val_e1", *class_iou_columns(runs), "train_seconds", "train_images_per_second"]
    rows = []
    for run in runs:
        params, metrics = run.data.params, run.data.metrics
        row = {
            "run": run.info.run_id,
            "status": run.info.status,
            "model": params.get("model.name"),
            "conv_type": params.get("model.conv_type"),
            "total_params": params.get("total_params"),
        }
        row.update({name: metrics.get(name) for name in metric_columns})
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
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" if column in TEXT_COLUMNS else "---:" for column in columns) + "|",
    ]
    lines += ["| " + " | ".join(format_cell(column, row[column]) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Path:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def labels(runs: Sequence[Run]) -> list[str]:
    """model/conv_type, with the run id's start where that names several runs (e.g. Optuna trials)."""
    names = [f"{run.data.params.get('model.name')}/{run.data.params.get('model.conv_type')}" for run in runs]
    return [name if names.count(name) == 1 else f"{name} {run.info.run_id[:6]}" for name, run in zip(names, runs)]


def val_miou_per_epoch(client: MlflowClient, run: Run) -> tuple[list[int], list[float]]:
    """Keras' per-epoch val mIoU (steps 0..epochs-1); the final evaluation, logged at step=epochs, left out."""
    epochs = int(run.data.params.get("trainer.epochs", 0))
    history = client.get_metric_history(run.info.run_id, "val_miou")
    history = sorted((metric.step, metric.value) for metric in history if metric.step < epochs)
    return [step + 1 for step, _ in history], [value for _, value in history]


def plot(client: MlflowClient, runs: Sequence[Run], path: Path) -> Path:
    finished = [run for run in runs if "val_miou" in run.data.metrics and "total_params" in run.data.params]
    figure = Figure(figsize=(13, 5), layout="tight")
    scatter, curves = figure.subplots(1, 2)
    last_epoch = 1
    for run, label in zip(finished, labels(finished)):
        x, y = int(run.data.params["total_params"]), run.data.metrics["val_miou"]
        scatter.scatter(x, y)
        scatter.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        epochs, values = val_miou_per_epoch(client, run)
        curves.plot(epochs, values, marker="o", label=label)
        last_epoch = max([last_epoch, *epochs])
    scatter.set(xscale="log", xlabel="total parameters", ylabel="val mIoU", title="val mIoU against model size")
    scatter.margins(0.2)  # room for the labels
    scatter.xaxis.set_minor_formatter(NullFormatter())
    curves.set(xlabel="epoch", ylabel="val mIoU", title="val mIoU per epoch", xlim=(0.5, last_epoch + 0.5))
    curves.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if finished:
        curves.legend(fontsize=8)
    scatter.grid(alpha=0.3)
    curves.grid(alpha=0.3)
    figure.savefig(path, dpi=120)
    return path


def log_comparison(
    client: MlflowClient, experiment_id: str, runs: Sequence[Run], files: Sequence[Path], sweep_id: str | None
) -> str:
    """A FINISHED "comparison" run holding the files, with the compared runs nested under it."""
    tags = {COMPARISON_TAG: "true", **({SWEEP_ID_TAG: sweep_id} if sweep_id else {})}
    parent = store.retry_when_locked(client.create_run, experiment_id, run_name="comparison", tags=tags).info.run_id
    for path in files:
        store.retry_when_locked(client.log_artifact, parent, str(path))
    for run in runs:
        store.retry_when_locked(client.set_tag, run.info.run_id, PARENT_RUN_TAG, parent)
    store.retry_when_locked(client.set_terminated, parent)
    return parent


def compare(args: argparse.Namespace) -> None:
    tracking_uri = args.tracking_uri or mlflow.get_tracking_uri()
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        raise UserError(
            f"No MLflow experiment {args.experiment!r} in {tracking_uri}; pass --experiment or --tracking-uri."
        )
    sweep_id = latest_sweep_id(client, experiment.experiment_id) if args.sweep_id == "latest" else args.sweep_id
    runs = rank(find_runs(client, experiment.experiment_id, sweep_id))
    if not runs:
        where = f"sweep {sweep_id!r} of " if sweep_id else ""
        raise UserError(f"No runs in {where}experiment {args.experiment!r} in {tracking_uri}.")

    out = args.out or Path("outputs", "compare", time.strftime("%Y-%m-%d_%H-%M-%S"))
    out.mkdir(parents=True, exist_ok=True)
    columns, rows = table(runs)
    text = markdown(columns, rows)
    print(f"{len(runs)} runs of experiment {args.experiment!r}" + (f", sweep {sweep_id}" if sweep_id else ""))
    print(text, end="")
    (out / "comparison.md").write_text(text)
    files = [
        out / "comparison.md",
        write_csv(out / "comparison.csv", columns, rows),
        plot(client, runs, out / "comparison.png"),
    ]
    print(f"Wrote {', '.join(str(path) for path in files)}")
    if not args.no_log:
        parent = log_comparison(client, experiment.experiment_id, runs, files, sweep_id)
        print(f"Logged to MLflow run {parent} (comparison); the compared runs are nested under it")


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_on_user_error(log):
        compare(parse_args(argv))


if __name__ == "__main__":
    main()
