"""logger=mlflow: one MLflow run per training job, in MLflow's default store or a tracking server.

Params are the config as `params.config_params` flattens it, metrics are logged
per epoch (step = epoch) and at the end, the dataset is an MLflow dataset input,
the per-epoch prediction picture an MLflow image at its step, artifacts are files
of the run directory, system metrics are sampled every `system_metrics_interval`
seconds, and the model is logged with ssnets' flavor (`serving`), its signature,
an input example and its pip requirements (and registered as `register_as`).

The run is created (or continued) in the store when it starts; everything logged
after that goes through the run's spool (`spool`, in RUN_DIR/mlflow-spool/RUN_ID)
and a background delivery (`delivery`), so training never waits on the store and
an outage of the tracking server loses nothing: records wait on disk and are sent,
in order, once the server answers. At the end the run waits up to
`delivery_timeout` seconds for them to go; what is still undelivered then stays in
the spool, and `python -m ssnets.sync RUN_DIR` sends it later.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import mlflow
import numpy as np
import requests
from mlflow.entities import Run, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags
from PIL import Image

from ssnets.common.errors import UserError
from ssnets.tracking import mlflow_ui, serving, store
from ssnets.tracking.base import FAILED, FAILURE_REASON_TAG, FINISHED, KILLED, PARENT_RUN_TAG, RunRecord, run_status_of
from ssnets.tracking.datasets import TRAINING_CONTEXT, DatasetDescription, SegmentationDataset
from ssnets.tracking.delivery import Delivery
from ssnets.tracking.spool import SPOOL_DIR, Spool, Target
from ssnets.tracking.system_metrics import SYSTEM_METRIC_PREFIX, SystemMetricsSampler

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 5
MAX_TAG_CHARS = 5000
# After Ctrl-C or SIGTERM a run waits this long at most for its records to go, whatever delivery_timeout says.
INTERRUPTED_DELIVERY_SECONDS = 10
SYNC_COMMAND = "python -m ssnets.sync"


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
        register_as: str | None = None,
        system_metrics: bool = True,
        system_metrics_interval: float = 10.0,
        delivery_timeout: float = 300.0,
    ):
        # The command line makes `2024` an int and `nan` a float; MLflow names are text.
        self.tracking_uri = tracking_uri or mlflow.get_tracking_uri()
        self.experiment_name = str(experiment_name)
        self.run_name = None if run_name is None else str(run_name)
        self.should_log_model = log_model
        self.tags = {str(key): str(value) for key, value in (tags or {}).items()}
        self.parent_run_id = parent_run_id
        self.register_as = None if register_as is None else str(register_as)
        self.system_metrics_interval = system_metrics_interval if system_metrics else None
        self.delivery_timeout = delivery_timeout
        self.run_id: str | None = None
        self._spool: Spool | None = None
        self._undelivered = ""  # where a finished run's records wait for ssnets.sync, in words
        check_reachable(self.tracking_uri)

    @property
    def client(self) -> MlflowClient:
        return MlflowClient(self.tracking_uri)

    def prepare(self) -> None:
        experiment_id = store.prepare(self.tracking_uri, self.experiment_name)
        log.info("MLflow experiment %r (id %s) ready in %s", self.experiment_name, experiment_id, self.tracking_uri)

    @contextlib.contextmanager
    def start(
        self,
        tags: Mapping[str, str],
        run_id: str | None = None,
        run_name: str | None = None,
        run_dir: Path | None = None,
    ) -> Iterator[MlflowTracker]:
        mlflow.set_tracking_uri(self.tracking_uri)
        experiment_id = store.prepare(self.tracking_uri, self.experiment_name)
        self._undelivered = ""
        if run_id is None:
            self.run_id = self._create_run(experiment_id, {**self.tags, **tags}, self.run_name or run_name)
        else:
            self.run_id = run_id
            self._continue_run(run_id, {**self.tags, **tags})
        spool_dir = Path(run_dir) / SPOOL_DIR if run_dir else Path(tempfile.mkdtemp(prefix="ssnets-mlflow-"))
        self._spool = Spool.open_or_create(
            spool_dir / self.run_id, Target(self.tracking_uri, experiment_id, self.run_id)
        )
        delivery = Delivery(self._spool)
        delivery.start_background()
        sampler = self._start_system_metrics()
        log.info(
            "MLflow run %s in %s: %s",
            self.run_id,
            self.tracking_uri,
            mlflow_ui.run_link(self.tracking_uri, experiment_id, self.run_id),
        )
        status = FAILED
        try:
            yield self
            status = FINISHED
        except KeyboardInterrupt as stop:
            status = KILLED
            self._spool.append("tags", tags={FAILURE_REASON_TAG: str(stop) or "KeyboardInterrupt"})
            raise
        # Only records why the run failed; the error goes on up.
        except Exception as error:
            status = run_status_of(error)
            self._spool.append("tags", tags={FAILURE_REASON_TAG: f"{type(error).__name__}: {error}"[:MAX_TAG_CHARS]})
            raise
        finally:
            if sampler is not None:
                sampler.stop()
            self._spool.append("status", status=status, end_time=now_ms())
            timeout = (
                self.delivery_timeout if status != KILLED else min(self.delivery_timeout, INTERRUPTED_DELIVERY_SECONDS)
            )
            self._finish_delivery(delivery, timeout, run_dir)

    def _create_run(self, experiment_id: str, tags: Mapping[str, str], name: str | None) -> str:
        if self.parent_run_id:
            tags = {**tags, PARENT_RUN_TAG: self.parent_run_id}
        # The tags MLflow's start_run adds too (user, source, git commit).
        run = store.retry_when_locked(self.client.create_run, experiment_id, tags=resolve_tags(tags), run_name=name)
        return run.info.run_id

    def _continue_run(self, run_id: str, tags: Mapping[str, str]) -> None:
        client = self.client
        store.retry_when_locked(client.update_run, run_id, RunStatus.to_string(RunStatus.RUNNING))
        for key, value in tags.items():
            store.retry_when_locked(client.set_tag, run_id, key, value)

    def _start_system_metrics(self) -> SystemMetricsSampler | None:
        if self.system_metrics_interval is None:
            return None
        # A continued run's samples carry on from its last step.
        history = self.metric_history(self.run_id, f"{SYSTEM_METRIC_PREFIX}cpu_utilization_percentage")
        first_step = max((step for step, _ in history), default=-1) + 1
        sampler = SystemMetricsSampler(self.log_metrics, self.system_metrics_interval, self.tracking_uri, first_step)
        sampler.start()
        return sampler

    def _finish_delivery(self, delivery: Delivery, timeout: float, run_dir: Path | None) -> None:
        spool = self._spool
        deadline = time.monotonic() + timeout
        if not delivery.wait_until_delivered(time.monotonic() + 1.0):
            log.info(
                "Sending %d MLflow records to %s (waiting up to %.0f s)",
                spool.pending_count(),
                self.tracking_uri,
                timeout,
            )
        delivered = delivery.wait_until_delivered(deadline)
        delivery.stop_background()
        if not delivered:
            self._undelivered = f"{spool.pending_count()} records wait in {spool.directory} for {SYNC_COMMAND}"
            log.warning(
                "MLflow store %s did not take %d records of run %s within %.0f s (logger.delivery_timeout); "
                "they are kept in %s: deliver them with `%s %s` once it answers.",
                self.tracking_uri,
                spool.pending_count(),
                self.run_id,
                timeout,
                spool.directory,
                SYNC_COMMAND,
                run_dir if run_dir else spool.directory,
            )
        elif spool.rejected_count():
            log.warning(
                "MLflow refused %d records of run %s; see %s", spool.rejected_count(), self.run_id, spool.directory
            )
        else:
            spool.remove()

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._spool.append(
            "params", params={key: "null" if value is None else str(value) for key, value in params.items()}
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        stamp = now_ms()
        self._spool.append(
            "metrics", metrics=[[name, float(value), stamp, step or 0] for name, value in metrics.items()]
        )

    def log_dataset(self, dataset: DatasetDescription) -> None:
        self._spool.append("dataset", dataset=SegmentationDataset(dataset).to_dict(), context=TRAINING_CONTEXT)

    def log_image(self, key: str, image: np.ndarray, step: int) -> None:
        path = self._spool.keep(f"{key}.png", lambda path: Image.fromarray(image).save(path, format="PNG"))
        self._spool.append("image", path=path, key=key, step=step, timestamp=now_ms())

    def log_artifact(self, path: Path) -> None:
        self._spool.append("artifact", path=self._spool.keep_copy(Path(path)))

    def log_model(self, model: keras.Model, input_example: Any) -> None:
        """The model with an input example and a tensor signature (the keras flavor infers none), saved in the
        MLflow format into the spool now and uploaded as a logged model by the delivery."""
        if not self.should_log_model:
            return
        output_example = keras.ops.convert_to_numpy(model.predict_on_batch(input_example))

        def save(path: Path) -> None:
            serving.save_model(
                str(path),
                mlflow.models.Model(),
                model=model,
                signature=mlflow.models.infer_signature(input_example, output_example),
                input_example=input_example,
                # Stated rather than inferred: MLflow's inference reloads the model in a
                # subprocess (~30 s a run) and falls back to keras alone anyway.
                pip_requirements=serving.model_requirements(),
            )

        delivery_id = uuid.uuid4().hex
        self._spool.append("model", path=self._spool.keep("model", save), name="model", step=0, delivery_id=delivery_id)
        if self.register_as:
            self._spool.append("register", name=self.register_as, delivery_id=delivery_id)

    def location(self) -> str:
        where = f"{self.tracking_uri} (experiment {self.experiment_name!r})"
        if not self.run_id:
            return where
        return f"run {self.run_id} in {where}" + (f"; {self._undelivered}" if self._undelivered else "")

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
        """The store's values, and for the current run those still in its spool."""
        # The spool first: a record delivered between the two reads then shows twice, never not at all.
        pending = []
        if self._spool is not None and run_id == self.run_id:
            pending = [
                (step, value)
                for record in self._spool.pending()
                if record.kind == "metrics"
                for key, value, _, step in record.fields["metrics"]
                if key == name
            ]
        logged = [(metric.step, metric.value) for metric in self.client.get_metric_history(run_id, name)]
        return logged + pending

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        client = self.client
        for key, value in tags.items():
            store.retry_when_locked(client.set_tag, run_id, key, value)

    def comparison_links(self, runs: Sequence[RunRecord], metric: str, mode: str) -> dict[str, str]:
        experiment = self.client.get_experiment_by_name(self.experiment_name)
        if experiment is None or not runs:
            return {}
        return mlflow_ui.comparison_links(
            self.client, self.tracking_uri, experiment.experiment_id, runs, metric, ascending=mode == "min"
        )


def now_ms() -> int:
    return int(time.time() * 1000)


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
