"""logger=mlflow: one MLflow run per training job, in MLflow's default store or a tracking server.

Params are the config as `params.config_params` flattens it, metrics are logged
per epoch (step = epoch) and at the end, artifacts are files of the run directory,
and the model is logged with ssnets' flavor (`serving`), its signature, an input
example and its pip requirements. Writes into a shared sqlite store retry while
another process holds its lock (`store.retry_when_locked`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import keras
import mlflow
import requests
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient

from ssnets.common.errors import UserError
from ssnets.tracking import serving, store
from ssnets.tracking.base import FAILED, FAILURE_REASON_TAG, FINISHED, KILLED, RunRecord

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 5
MAX_TAG_CHARS = 5000


class MlflowTracker:
    records_runs = True

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str = "ssnets",
        run_name: str | None = None,
        log_model: bool = True,
        tags: dict[str, str] | None = None,
        parent_run_id: str | None = None,
    ):
        # The command line makes `2024` an int and `nan` a float; MLflow names are text.
        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        self.experiment_name = str(experiment_name)
        self.run_name = None if run_name is None else str(run_name)
        self.should_log_model = log_model
        self.tags = {str(key): str(value) for key, value in (tags or {}).items()}
        self.parent_run_id = parent_run_id
        self.run_id: str | None = None
        check_reachable(self.tracking_uri)

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking_uri)

    def prepare(self) -> None:
        experiment_id = store.prepare(self.tracking_uri, self.experiment_name)
        log.info("MLflow experiment %r (id %s) ready in %s", self.experiment_name, experiment_id, self.tracking_uri)

    @contextlib.contextmanager
    def start(
        self, tags: Mapping[str, str], run_id: str | None = None, run_name: str | None = None
    ) -> Iterator[MlflowTracker]:
        mlflow.set_tracking_uri(self.tracking_uri)
        store.prepare(self.tracking_uri, self.experiment_name)
        mlflow.set_experiment(self.experiment_name)
        name = None if run_id else (self.run_name or run_name)
        run = store.retry_when_locked(
            mlflow.start_run,
            run_id=run_id,
            run_name=name,
            tags={**self.tags, **tags},
            parent_run_id=None if run_id else self.parent_run_id,
        )
        self.run_id = run.info.run_id
        log.info("MLflow run %s in %s", self.run_id, self.tracking_uri)
        status = FAILED
        try:
            yield self
            status = FINISHED
        except KeyboardInterrupt as stop:
            status = KILLED
            store.retry_when_locked(mlflow.set_tag, FAILURE_REASON_TAG, str(stop) or "KeyboardInterrupt")
            raise
        # Only records why the run failed; the error goes on up.
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"[:MAX_TAG_CHARS]
            store.retry_when_locked(mlflow.set_tag, FAILURE_REASON_TAG, reason)
            raise
        finally:
            store.retry_when_locked(mlflow.end_run, status)

    def log_params(self, params: Mapping[str, Any]) -> None:
        store.retry_when_locked(
            mlflow.log_params, {key: "null" if value is None else value for key, value in params.items()}
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        store.retry_when_locked(mlflow.log_metrics, dict(metrics), step=step)

    def log_artifact(self, path: Path) -> None:
        mlflow.log_artifact(str(path))

    def log_model(self, model: keras.Model, input_example: Any) -> None:
        """The model with an input example and a tensor signature (the keras flavor infers none)."""
        if not self.should_log_model:
            return
        output_example = keras.ops.convert_to_numpy(model.predict_on_batch(input_example))
        mlflow.models.Model.log(
            artifact_path=None,
            name="model",
            flavor=serving,
            model=model,
            signature=mlflow.models.infer_signature(input_example, output_example),
            input_example=input_example,
            # Stated rather than inferred: MLflow's inference reloads the model in a
            # subprocess (~30 s a run) and falls back to keras alone anyway.
            pip_requirements=serving.model_requirements(),
        )

    def location(self) -> str:
        store = f"{self.tracking_uri} (experiment {self.experiment_name!r})"
        return f"run {self.run_id} in {store}" if self.run_id else store

    def search_runs(self, tags: Mapping[str, str] | None = None) -> list[RunRecord]:
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is None:
            return []
        filter_string = " and ".join(f"tags.`{key}` = '{value}'" for key, value in (tags or {}).items())
        runs = self.client.search_runs(
            [experiment.experiment_id], filter_string, order_by=["attributes.start_time DESC"], max_results=10_000
        )
        return [record_of(run) for run in runs]

    def get_run(self, run_id: str) -> RunRecord | None:
        try:
            return record_of(self.client.get_run(run_id))
        except MlflowException as error:
            if error.error_code != ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
                raise
            return None

    def metric_history(self, run_id: str, name: str) -> list[tuple[int, float]]:
        return [(metric.step, metric.value) for metric in self.client.get_metric_history(run_id, name)]

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        client = self.client
        for key, value in tags.items():
            store.retry_when_locked(client.set_tag, run_id, key, value)


def record_of(run: Run) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id,
        status=run.info.status,
        start_time=run.info.start_time,
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
    )


def check_reachable(tracking_uri: str) -> None:
    """Fail in seconds when an HTTP tracking server does not answer (MLflow's own retries take minutes)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        requests.get(f"{tracking_uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_SECONDS).raise_for_status()
    except requests.RequestException as error:
        reason = type(error).__name__ if isinstance(error, requests.ConnectionError) else error
        raise UserError(
            f"MLflow tracking server {tracking_uri} cannot be reached ({reason}); start it, correct "
            "logger.tracking_uri, or train without tracking with logger=none."
        ) from error
