"""Sending a spool's records to the MLflow store: in order, exactly once, waiting out outages.

`Delivery.step` sends the oldest pending record and moves the spool's cursor past
it. A store that does not answer (connection refused or reset, a timeout, a 5xx,
a locked sqlite database) leaves the record pending, and the next attempt comes
after a pause that doubles up to `MAX_PAUSE_SECONDS`, once the server's /health
answers again; a record the store refuses for good (a 4xx) is set aside in the
spool's rejected.jsonl, so it cannot hold up the ones behind it.

Exactly once, although a record whose request was cut off may or may not have
reached the store: metrics carry the timestamp they were logged with, and MLflow's
SQL store keeps one row per (key, timestamp, step, value); params, tags, dataset
inputs, artifacts and the run status are idempotent writes; a picture or a model
is looked up before it is sent again (`already_logged_image`, the logged model's
`ssnets.delivery_id` tag).

`Delivery.start_background` runs the steps in a daemon thread while the run trains
(the training loop only appends to the spool); `deliver_until` runs them in the
caller (`python -m ssnets.sync`). A lock file in the spool keeps the two from
delivering the same spool at once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LoggedModel,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
    Param,
    RunTag,
)
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.models.model import MLMODEL_FILE_NAME
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_LOGGED_IMAGES
from PIL import Image

from ssnets.common.files import file_lock
from ssnets.tracking import store
from ssnets.tracking.spool import Record, Spool, Target

log = logging.getLogger(__name__)

DELIVERY_TAG = "ssnets.delivery_id"
LOCK_FILE = "delivery.lock"
FIRST_PAUSE_SECONDS = 0.5
MAX_PAUSE_SECONDS = 10.0
HEALTH_TIMEOUT_SECONDS = 2
# MLflow's limits per log_batch request.
MAX_METRICS_PER_BATCH, MAX_PARAMS_PER_BATCH, MAX_TAGS_PER_BATCH = 1000, 100, 100


class Delivery:
    """Delivers one spool to its target store."""

    def __init__(self, spool: Spool, tracking_uri: str | None = None):
        self.spool = spool
        self.target = spool.target
        self.tracking_uri = tracking_uri or self.target.tracking_uri
        self.client = MlflowClient(self.tracking_uri)
        # The first record may already have reached the store, sent by a process killed before its cursor moved.
        self.uncertain = True
        self.pause = FIRST_PAUSE_SECONDS
        self.outage_since: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> bool:
        """Send the oldest pending record; False when there was none or the store did not take it."""
        record = self.spool.next_pending()
        if record is None:
            return False
        try:
            deliver(self.client, self.target, self.spool, record, self.uncertain)
        except (MlflowException, requests.RequestException, OSError) as error:
            if not is_transient(error):
                log.error(
                    "MLflow refused a %s record for good (%s); kept in %s", record.kind, error, self.spool.directory
                )
                self.spool.reject(record, str(error))
                return True
            self._note_outage(error)
            return False
        self.spool.mark_delivered(record)
        if self.outage_since is not None:
            log.warning(
                "MLflow store %s answers again after %.0f s; delivering the records kept meanwhile",
                self.tracking_uri,
                time.monotonic() - self.outage_since,
            )
        self.uncertain, self.pause, self.outage_since = False, FIRST_PAUSE_SECONDS, None
        return True

    def deliver_until(self, deadline: float) -> bool:
        """Send every pending record from the calling thread, waiting out outages until time.monotonic()
        passes `deadline`; whether everything was delivered (for `python -m ssnets.sync`)."""
        while self.spool.pending_count():
            if self.step():
                continue
            if time.monotonic() >= deadline or not self._wait_for_store(deadline):
                return False
        return True

    def start_background(self) -> None:
        """Deliver from a daemon thread, the only deliverer until `stop_background`; the run's threads append."""
        self._thread = threading.Thread(target=self._run, name="ssnets-mlflow-delivery", daemon=True)
        self._thread.start()

    def wait_until_delivered(self, deadline: float) -> bool:
        """Block until the background thread has delivered every record, or time.monotonic() passes `deadline`."""
        while self.spool.pending_count():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.spool.wait_for_change(min(1.0, remaining))
        return True

    def stop_background(self, timeout: float = 5.0) -> None:
        """Stop the thread; one stuck in a request to a vanished server is left to end with the process."""
        if self._thread is None:
            return
        self._stop.set()
        self.spool.wake()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        with exclusive(self.spool.directory):
            while not self._stop.is_set():
                if self.step():
                    continue
                if self.spool.pending_count() == 0:
                    self.spool.wait_for_change(1.0)
                else:
                    self._wait_for_store(float("inf"))

    def _note_outage(self, error: Exception) -> None:
        if self.outage_since is None:
            self.outage_since = time.monotonic()
            log.warning(
                "MLflow store %s does not answer (%s); records are kept in %s and sent when it does",
                self.tracking_uri,
                type(error).__name__,
                self.spool.directory,
            )
        self.uncertain = True

    def _wait_for_store(self, deadline: float) -> bool:
        """Pause (doubling, up to MAX_PAUSE_SECONDS), then until a server's /health answers; False at the deadline."""
        while not self._stop.is_set():
            self._stop.wait(max(0.0, min(self.pause, deadline - time.monotonic())))
            self.pause = min(2 * self.pause, MAX_PAUSE_SECONDS)
            if time.monotonic() >= deadline:
                return False
            if self._store_answers():
                return True
        return False

    def _store_answers(self) -> bool:
        if not self.tracking_uri.startswith(("http://", "https://")):
            return True
        try:
            return requests.get(f"{self.tracking_uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_SECONDS).ok
        except requests.RequestException:
            return False


@contextlib.contextmanager
def exclusive(spool_dir: Path) -> Iterator[None]:
    """Held while delivering: one deliverer per spool (a run's thread, or ssnets.sync), never two at once."""
    with file_lock(Path(spool_dir) / LOCK_FILE, f"Another process is delivering {spool_dir}; waiting for it"):
        yield


def is_transient(error: Exception) -> bool:
    """Whether the store may take the same request later (an outage) rather than refuse it for good."""
    if isinstance(error, MlflowException):
        return error.get_http_status_code() >= 500 or store.is_locked_database(error)
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return error.response.status_code >= 500
    return isinstance(error, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError))


def deliver(client: MlflowClient, target: Target, spool: Spool, record: Record, uncertain: bool) -> None:
    """Write one record into the store; `uncertain`: an earlier attempt may have reached it."""
    fields, run_id = record.fields, target.run_id
    if record.kind == "metrics":
        metrics = [Metric(key, value, timestamp, step) for key, value, timestamp, step in fields["metrics"]]
        for chunk in chunks(metrics, MAX_METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=chunk)
    elif record.kind == "params":
        params = [Param(key, value) for key, value in fields["params"].items()]
        for chunk in chunks(params, MAX_PARAMS_PER_BATCH):
            client.log_batch(run_id, params=chunk)
    elif record.kind == "tags":
        tags = [RunTag(key, value) for key, value in fields["tags"].items()]
        for chunk in chunks(tags, MAX_TAGS_PER_BATCH):
            client.log_batch(run_id, tags=chunk)
    elif record.kind == "dataset":
        context = [InputTag(MLFLOW_DATASET_CONTEXT, fields["context"])]
        client.log_inputs(run_id, datasets=[DatasetInput(Dataset(**fields["dataset"]), tags=context)])
    elif record.kind == "artifact":
        client.log_artifact(run_id, str(spool.path(fields["path"])), fields.get("artifact_path"))
    elif record.kind == "image":
        deliver_image(client, run_id, spool, fields, uncertain)
    elif record.kind == "model":
        deliver_model(client, target, spool, fields)
    elif record.kind == "register":
        register_model(client, target, fields)
    elif record.kind == "status":
        client.set_terminated(run_id, fields["status"], fields["end_time"])
    else:
        raise ValueError(f"Unknown spool record kind {record.kind!r} in {spool.directory}")


def chunks(items: list, size: int) -> list[list]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def deliver_image(client: MlflowClient, run_id: str, spool: Spool, fields: dict, uncertain: bool) -> None:
    """A picture at its step (MLflow's image charts); not sent again if a cut-off attempt already stored it."""
    key, step, timestamp = fields["key"], fields["step"], fields["timestamp"]
    if uncertain and already_logged_image(client, run_id, key, step, timestamp):
        client.set_tag(run_id, MLFLOW_LOGGED_IMAGES, True)
        return
    with Image.open(spool.path(fields["path"])) as image:
        client.log_image(run_id, image.convert("RGB"), key=key, step=step, timestamp=timestamp, synchronous=True)


def already_logged_image(client: MlflowClient, run_id: str, key: str, step: int, timestamp: int) -> bool:
    """Whether `log_image(key=, step=, timestamp=)` already stored its file.

    MLflow names the file images/KEY+step+STEP+timestamp+TIMESTAMP+UUID.png (a fresh
    UUID per call, so a second call would add a second picture); no public call
    finds one by key and step. tests/test_mlflow_delivery.py fails if the naming moves.
    """
    prefix = f"{key.replace('/', '~')}+step+{step}+timestamp+{timestamp}+"
    return any(
        artifact.path.rsplit("/", 1)[-1].startswith(prefix) and artifact.path.endswith(".png")
        for artifact in client.list_artifacts(run_id, "images")
    )


def find_logged_model(client: MlflowClient, target: Target, delivery_id: str) -> LoggedModel | None:
    """The logged model an earlier attempt created for this record, if any."""
    models = client.search_logged_models(
        experiment_ids=[target.experiment_id], filter_string=f"source_run_id = '{target.run_id}'"
    )
    return next((model for model in models if model.tags.get(DELIVERY_TAG) == delivery_id), None)


def deliver_model(client: MlflowClient, target: Target, spool: Spool, fields: dict) -> None:
    """The model folder saved at the end of the run as a READY logged model, output of the run at its step.

    Mirrors what `mlflow.models.Model.log` does, split so that each part can be
    repeated: create the logged model (or find it), link it as the run's output,
    write its ids into MLmodel, upload the folder, mark it READY.
    """
    model = find_logged_model(client, target, fields["delivery_id"])
    if model is not None and model.status == LoggedModelStatus.READY:
        return
    if model is None:
        model = client.create_logged_model(
            target.experiment_id,
            name=fields["name"],
            source_run_id=target.run_id,
            tags={DELIVERY_TAG: fields["delivery_id"]},
            params=client.get_run(target.run_id).data.params,
        )
    outputs = client.get_run(target.run_id).outputs
    if model.model_id not in {output.model_id for output in (outputs.model_outputs if outputs else [])}:
        client.log_outputs(target.run_id, [LoggedModelOutput(model.model_id, step=fields["step"])])
    folder = spool.path(fields["path"])
    description = Model.load(folder / MLMODEL_FILE_NAME)
    description.model_id = description.model_uuid = model.model_id
    description.run_id, description.artifact_path = target.run_id, model.artifact_location
    description.save(folder / MLMODEL_FILE_NAME)
    client.log_model_artifacts(model.model_id, str(folder))
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)


def register_model(client: MlflowClient, target: Target, fields: dict) -> None:
    """A version of registered model `name` from the run's logged model (logger.register_as)."""
    name = fields["name"]
    model = find_logged_model(client, target, fields["delivery_id"])
    if model is None:
        # Permanent (a 404): the model record was refused, so this version can never be made.
        raise MlflowException(
            f"No logged model of run {target.run_id} to register as {name!r}", RESOURCE_DOES_NOT_EXIST
        )
    source = f"models:/{model.model_id}"
    versions = client.search_model_versions(f"name = '{name}' and run_id = '{target.run_id}'")
    if any(version.source == source for version in versions):
        return
    try:
        client.create_registered_model(name)
    except MlflowException as error:
        if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise
    version = client.create_model_version(name, source, run_id=target.run_id, model_id=model.model_id)
    log.info("Registered model %r version %s (%s)", name, version.version, source)
