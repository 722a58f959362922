"""logger=csv: runs as plain files, for machines without MLflow or for reading runs with pandas.

Each run is a folder `root/EXPERIMENT/RUN_ID/` holding `run.json` (name, status,
start and end time, tags), `params.csv` (key, value), `metrics.csv` (step, name,
value, time; one row per logged value, appended as the run goes), `dataset.json`
(the data it trained on), `images/KEY/step-NNNN.png` (the pictures per step) and
`artifacts/` (copies of the logged files, and the model as `model.keras`). run.json
is replaced whole on every change, so a reader never sees half of it.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from PIL import Image

from ssnets.common.files import write_atomically
from ssnets.tracking.base import (
    FAILED,
    FAILURE_REASON_TAG,
    FINISHED,
    KILLED,
    PARENT_RUN_TAG,
    RUNNING,
    RunRecord,
    run_status_of,
)
from ssnets.tracking.datasets import DatasetDescription

RUN_FILE = "run.json"
DATASET_FILE = "dataset.json"
PARAMS_FILE = "params.csv"
METRICS_FILE = "metrics.csv"
ARTIFACTS_DIR = "artifacts"
IMAGES_DIR = "images"


class CsvTracker:
    records_runs = True

    def __init__(
        self,
        root: str = "csv_logs",
        experiment_name: str = "ssnets",
        run_name: str | None = None,
        log_model: bool = True,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
    ):
        self.experiment_dir = Path(root).expanduser() / str(experiment_name)
        self.run_name = None if run_name is None else str(run_name)
        self.should_log_model = log_model
        self.tags = {str(key): str(value) for key, value in (tags or {}).items()}
        if parent_run_id:
            self.tags[PARENT_RUN_TAG] = parent_run_id
        self.run_id: str | None = None

    @property
    def run_dir(self) -> Path:
        return self.experiment_dir / self.run_id

    def prepare(self) -> None:
        self.experiment_dir.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def start(
        self,
        tags: Mapping[str, str],
        run_id: str | None = None,
        run_name: str | None = None,
        run_dir: Path | None = None,
    ) -> Iterator[CsvTracker]:
        if run_id is None:
            self.run_id = uuid.uuid4().hex
            self.run_dir.mkdir(parents=True)
            run = {"run_id": self.run_id, "run_name": self.run_name or run_name, "start_time": now_ms(), "tags": {}}
        else:
            self.run_id = run_id
            run = read_run(self.run_dir)
        run["tags"].update({**self.tags, **tags})
        write_run(self.run_dir, {**run, "status": RUNNING, "end_time": None})
        status = FAILED
        try:
            yield self
            status = FINISHED
        except KeyboardInterrupt as stop:
            status = KILLED
            self.set_tags(self.run_id, {FAILURE_REASON_TAG: str(stop) or "KeyboardInterrupt"})
            raise
        # Only records why the run failed; the error goes on up.
        except Exception as error:
            status = run_status_of(error)
            self.set_tags(self.run_id, {FAILURE_REASON_TAG: f"{type(error).__name__}: {error}"})
            raise
        finally:
            write_run(self.run_dir, {**read_run(self.run_dir), "status": status, "end_time": now_ms()})

    def log_params(self, params: Mapping[str, Any]) -> None:
        rows = [(key, "null" if value is None else value) for key, value in params.items()]
        self._append(PARAMS_FILE, ("key", "value"), rows)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        stamp = now_ms()
        rows = [(0 if step is None else step, name, float(value), stamp) for name, value in metrics.items()]
        self._append(METRICS_FILE, ("step", "name", "value", "time"), rows)

    def log_dataset(self, dataset: DatasetDescription) -> None:
        text = json.dumps(dataclasses.asdict(dataset), indent=2)
        write_atomically(self.run_dir / DATASET_FILE, lambda path: path.write_text(text))

    def log_image(self, key: str, image: np.ndarray, step: int) -> None:
        folder = self.run_dir / IMAGES_DIR / key
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"step-{step:04d}.png")

    def log_artifact(self, path: Path) -> None:
        artifacts = self.run_dir / ARTIFACTS_DIR
        artifacts.mkdir(exist_ok=True)
        shutil.copy2(path, artifacts / Path(path).name)

    def log_model(self, model: keras.Model, input_example: Any) -> None:
        if self.should_log_model:
            artifacts = self.run_dir / ARTIFACTS_DIR
            artifacts.mkdir(exist_ok=True)
            write_atomically(artifacts / "model.keras", model.save)

    def location(self) -> str:
        return f"run {self.run_id} in {self.run_dir}" if self.run_id else str(self.experiment_dir)

    def search_runs(self, tags: Mapping[str, str] | None = None) -> list[RunRecord]:
        if not self.experiment_dir.is_dir():
            return []
        records = [self._record(path) for path in self.experiment_dir.iterdir() if (path / RUN_FILE).is_file()]
        wanted = (tags or {}).items()
        matching = [record for record in records if all(record.tags.get(key) == value for key, value in wanted)]
        return sorted(matching, key=lambda record: record.start_time, reverse=True)

    def get_run(self, run_id: str) -> RunRecord | None:
        path = self.experiment_dir / run_id
        return self._record(path) if (path / RUN_FILE).is_file() else None

    def metric_history(self, run_id: str, name: str) -> list[tuple[int, float]]:
        return [
            (int(row["step"]), float(row["value"]))
            for row in read_rows(self.experiment_dir / run_id / METRICS_FILE)
            if row["name"] == name
        ]

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        run = read_run(self.experiment_dir / run_id)
        run["tags"].update(tags)
        write_run(self.experiment_dir / run_id, run)

    def comparison_links(self, runs: Sequence[RunRecord], metric: str, mode: str) -> dict[str, str]:
        return {}

    def _append(self, name: str, header: tuple[str, ...], rows: list[tuple]) -> None:
        path = self.run_dir / name
        is_new = not path.exists()
        with open(path, "a", newline="") as file:
            writer = csv.writer(file)
            if is_new:
                writer.writerow(header)
            writer.writerows(rows)

    def _record(self, run_dir: Path) -> RunRecord:
        run = read_run(run_dir)
        metrics = {row["name"]: float(row["value"]) for row in read_rows(run_dir / METRICS_FILE)}
        params = {row["key"]: row["value"] for row in read_rows(run_dir / PARAMS_FILE)}
        return RunRecord(run["run_id"], run["status"], run["start_time"], run["tags"], params, metrics)


def read_run(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / RUN_FILE).read_text())


def write_run(run_dir: Path, run: dict[str, Any]) -> None:
    write_atomically(run_dir / RUN_FILE, lambda path: path.write_text(json.dumps(run)))


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def now_ms() -> int:
    return int(time.time() * 1000)
