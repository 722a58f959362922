"""The MLflow tracker's spool and delivery, into a real sqlite store: everything arrives, once, in order.

No training here: the tracker is driven as the training job drives it, with a
two-layer Keras model where a model is needed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from mlflow.entities import LoggedModelStatus
from mlflow.tracking import MlflowClient

from ssnets.tracking import delivery as delivery_module
from ssnets.tracking.datasets import DatasetDescription
from ssnets.tracking.delivery import Delivery, already_logged_image, deliver
from ssnets.tracking.mlflow_tracker import MlflowTracker
from ssnets.tracking.mlflow_ui import DESCRIPTION_TAG, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND
from ssnets.tracking.spool import REJECTED_FILE, SPOOL_DIR, Spool
from ssnets.tracking.system_metrics import SYSTEM_METRIC_PREFIX

EPOCHS = 3
DATASET = DatasetDescription("iris", "/data/iris", {}, {"train": 16, "val": 8}, "0123abcd", (8, 8, 3))


def tiny_model() -> keras.Model:
    inputs = keras.Input((8, 8, 3))
    return keras.Model(inputs, keras.layers.Conv2D(2, 1, activation="softmax")(inputs))


def log_like_a_job(tracker: MlflowTracker, artifact: Path) -> None:
    """Params, the dataset, per-epoch metrics and pictures, final metrics, an artifact and the model."""
    tracker.log_params({"model.name": "tiny", "optimizer.lr": 0.001, "model.weights": None})
    tracker.log_dataset(DATASET)
    for epoch in range(EPOCHS):
        tracker.log_metrics({"loss": 1.0 / (epoch + 1), "val_miou": epoch / 10}, step=epoch)
        tracker.log_image("val_predictions", np.full((8, 24, 3), 40 * epoch, np.uint8), step=epoch)
    tracker.log_metrics({"val_miou": 0.5, "val_e1": 0.1}, step=EPOCHS)
    tracker.log_artifact(artifact)
    tracker.log_model(tiny_model(), np.zeros((1, 8, 8, 3), np.float32))


def steps(client: MlflowClient, run_id: str, name: str) -> list[int]:
    return sorted(metric.step for metric in client.get_metric_history(run_id, name))


def assert_logged_once(client: MlflowClient, run_id: str) -> None:
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"model.name": "tiny", "optimizer.lr": "0.001", "model.weights": "null"}
    assert steps(client, run_id, "loss") == list(range(EPOCHS))
    assert steps(client, run_id, "val_miou") == list(range(EPOCHS + 1))
    pictures = [a.path for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png")]
    assert sorted(int(path.split("+step+")[1].split("+")[0]) for path in pictures) == list(range(EPOCHS))
    assert "config.yaml" in {artifact.path for artifact in client.list_artifacts(run_id)}
    (dataset,) = [dataset_input.dataset for dataset_input in run.inputs.dataset_inputs]
    assert (dataset.name, dataset.digest, json.loads(dataset.profile)) == ("iris", "0123abcd", {"train": 16, "val": 8})
    (model,) = client.search_logged_models([run.info.experiment_id])
    assert model.status == LoggedModelStatus.READY
    assert [output.model_id for output in run.outputs.model_outputs] == [model.model_id]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the sqlite store keeps its artifacts in ./mlruns
    artifact = tmp_path / "config.yaml"
    artifact.write_text("seed: 1\n")
    return f"sqlite:///{tmp_path / 'mlflow.db'}", artifact


def test_a_run_reaches_the_store_whole_and_leaves_no_spool(store, tmp_path):
    uri, artifact = store
    tracker = MlflowTracker(uri, "delivered", system_metrics_interval=0.2, register_as="tiny-segmenter")
    with tracker.start({"job": "1"}, run_name="tiny-run", run_dir=tmp_path / "run"):
        log_like_a_job(tracker, artifact)
        time.sleep(1.0)  # a few system metrics samples
    client = MlflowClient(uri)
    assert_logged_once(client, tracker.run_id)
    run = client.get_run(tracker.run_id)
    assert (run.info.run_name, run.data.tags["job"]) == ("tiny-run", "1")
    cpu = steps(client, tracker.run_id, f"{SYSTEM_METRIC_PREFIX}cpu_utilization_percentage")
    assert len(cpu) >= 2 and cpu == list(range(len(cpu)))
    (version,) = client.search_model_versions("name = 'tiny-segmenter'")
    assert version.run_id == tracker.run_id
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND and DESCRIPTION_TAG in experiment.tags
    assert not (tmp_path / "run" / SPOOL_DIR).exists()


def test_records_sent_again_after_a_cut_off_delivery_are_stored_once(store, tmp_path, monkeypatch):
    """Every record reaches the store, then its process dies before the cursor moves; the next delivery resends it."""
    uri, artifact = store
    # Held back: the records stay in the spool for this test to deliver by hand.
    monkeypatch.setattr(Delivery, "start_background", lambda self: None)
    tracker = MlflowTracker(uri, "resent", system_metrics=False, register_as="tiny-segmenter", delivery_timeout=0)
    with tracker.start({}, run_dir=tmp_path / "run"):
        log_like_a_job(tracker, artifact)
        # What is still in the spool counts as logged (resume's missing-epoch check relies on it).
        assert sorted(step for step, _ in tracker.metric_history(tracker.run_id, "loss")) == list(range(EPOCHS))
    (folder,) = (tmp_path / "run" / SPOOL_DIR).iterdir()
    spool = Spool(folder)
    assert [record.kind for record in spool.pending()] == [
        "params",
        "dataset",
        *["metrics", "image"] * EPOCHS,
        "metrics",
        "artifact",
        "model",
        "register",
        "status",
    ]
    client = MlflowClient(uri)
    while spool.pending_count():
        record = spool.pending()[0]
        deliver(client, spool.target, spool, record, uncertain=False)  # reached the store, cursor not moved
        resend = Delivery(Spool(folder))  # a new process: unsure whether the first record got there
        assert resend.step()
    assert_logged_once(client, tracker.run_id)
    assert len(client.search_model_versions("name = 'tiny-segmenter'")) == 1


def test_a_record_the_store_refuses_is_set_aside_and_the_rest_still_go(store, tmp_path):
    uri, _ = store
    tracker = MlflowTracker(uri, "refused", system_metrics=False)
    with tracker.start({}, run_dir=tmp_path / "run"):
        tracker.log_params({"seed": 1})
        tracker.log_params({"seed": 2})  # MLflow never changes a logged param
        tracker.log_metrics({"loss": 0.5}, step=0)
    client = MlflowClient(uri)
    run = client.get_run(tracker.run_id)
    assert (run.info.status, run.data.params["seed"], run.data.metrics["loss"]) == ("FINISHED", "1", 0.5)
    (folder,) = (tmp_path / "run" / SPOOL_DIR).iterdir()
    (rejected,) = [json.loads(line) for line in (folder / REJECTED_FILE).read_text().splitlines()]
    assert rejected["params"] == {"seed": "2"} and "rejected_because" in rejected


def test_a_line_cut_short_by_a_kill_is_dropped_and_the_rest_kept(store, tmp_path, monkeypatch):
    uri, _ = store
    monkeypatch.setattr(Delivery, "start_background", lambda self: None)
    tracker = MlflowTracker(uri, "cut", system_metrics=False, delivery_timeout=0)
    with tracker.start({}, run_dir=tmp_path / "run"):
        tracker.log_metrics({"loss": 0.5}, step=0)
    (folder,) = (tmp_path / "run" / SPOOL_DIR).iterdir()
    with open(folder / "records.jsonl", "ab") as file:
        file.write(b'{"kind": "metrics", "metr')
    spool = Spool(folder)
    assert [record.kind for record in spool.pending()] == ["metrics", "status"]
    assert Delivery(spool).deliver_until(time.monotonic() + 60)
    assert MlflowClient(uri).get_run(tracker.run_id).data.metrics == {"loss": 0.5}


def test_mlflow_still_names_step_images_as_already_logged_image_expects(store, tmp_path):
    """already_logged_image reads MLflow's file naming of log_image(key=, step=); this fails if it moves."""
    uri, _ = store
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("naming"))
    run_id = run.info.run_id
    assert not already_logged_image(client, run_id, "val_predictions", 3, 1_700_000_000_000)
    image = np.zeros((4, 4, 3), np.uint8)
    client.log_image(run_id, image, key="val_predictions", step=3, timestamp=1_700_000_000_000, synchronous=True)
    assert already_logged_image(client, run_id, "val_predictions", 3, 1_700_000_000_000)
    assert not already_logged_image(client, run_id, "val_predictions", 4, 1_700_000_000_000)


def test_outages_and_refusals_are_told_apart():
    from mlflow.exceptions import MlflowException, RestException

    assert delivery_module.is_transient(MlflowException("API request to http://x failed with exception Connection"))
    assert delivery_module.is_transient(MlflowException("(sqlite3.OperationalError) database is locked"))
    refused = RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "Changing param values"})
    assert not delivery_module.is_transient(refused)
