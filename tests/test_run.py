"""The training entry point end to end on tiny settings, with a temporary MLflow store."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlparse

import keras
import pytest
from mlflow.tracking import MlflowClient

from ssnets.data import load_splits
from ssnets.data.pipeline import make_dataset
from ssnets.task.metrics import confusion_matrix, segmentation_metrics
from ssnets.tracking.artifacts import load_model
from ssnets.tracking.mlflow_ui import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND
from ssnets.training import job
from ssnets.training.evaluate import predict_labels
from ssnets.training.fit import build_optimizer

from conftest import TINY, compose_config, run_cli


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One real `python -m ssnets.run` of the default model on tiny synthetic data."""
    work = tmp_path_factory.mktemp("cli")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    result = run_cli(
        [
            *TINY,
            "trainer.epochs=2",
            f"logger.tracking_uri={uri}",
            "logger.experiment_name=e2e",
            f"hydra.run.dir={work / 'run'}",
        ],
        cwd=work,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("e2e").experiment_id])
    return work, client, runs, result


def test_one_finished_run_with_config_params_and_counts(cli_run):
    _, _, runs, _ = cli_run
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["model.name"] == "fast_fcn8"
    assert params["model.conv_type"] == "ds"
    assert float(params["optimizer.lr"]) == pytest.approx(1e-3)
    assert params["scheduler._target_"] == "ssnets.training.schedules.cosine_schedule"
    assert params["data.image_size"] == "64"
    assert int(params["total_params"]) > int(params["trainable_params"]) > 1_000_000
    assert {"backend", "device", "git_commit"} <= set(run.data.tags)


def test_metrics_per_epoch_and_final(cli_run):
    _, client, runs, _ = cli_run
    run = runs[0]
    metrics = run.data.metrics
    for name in (
        "val_miou",
        "val_e1",
        "val_pixel_accuracy",
        "val_iou_background",
        "val_iou_iris",
        "test_miou",
        "test_e1",
        "train_seconds",
    ):
        assert name in metrics, name
    assert metrics["val_e1"] == pytest.approx(1 - metrics["val_pixel_accuracy"])
    for name in ("loss", "val_loss"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [0, 1]
    # per-epoch val_miou from Keras at steps 0,1, then the final evaluation at step 2
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_miou")] == [0, 1, 2]


def test_artifacts_and_checkpoint(cli_run):
    work, client, runs, _ = cli_run
    names = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"config.yaml", "predictions.png", "model_summary.txt"} <= names
    assert (work / "run" / "best.keras").exists()
    assert runs[0].outputs.model_outputs or client.search_logged_models(experiment_ids=[runs[0].info.experiment_id])


def test_the_dataset_a_picture_per_epoch_and_the_experiment_kind_are_recorded(cli_run):
    _, client, runs, _ = cli_run
    run = runs[0]
    (dataset_input,) = run.inputs.dataset_inputs
    dataset = dataset_input.dataset
    assert (dataset.name, dataset.source_type) == ("iris", "code")
    assert json.loads(dataset.profile) == {"train": 16, "val": 8, "test": 4}
    assert json.loads(dataset.source)["tags"]["image_size"] == 64
    pictures = [a.path for a in client.list_artifacts(run.info.run_id, "images") if a.path.endswith(".png")]
    assert sorted(path.split("+step+")[1].split("+")[0] for path in pictures) == ["0", "1"]
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND


def test_logged_model_and_best_keras_are_the_weights_without_optimizer_state(cli_run, tmp_path):
    """Adam's two moments made both 3x the weights (247.5 MB for the 64x64 FastFCN8, now 82.7 MB)."""
    work, client, runs, _ = cli_run
    (logged,) = client.search_logged_models([runs[0].info.experiment_id])
    folder = Path(urlparse(logged.artifact_location).path)
    logged_bytes = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    weights = tmp_path / "model.weights.h5"
    load_model(str(work / "run" / "best.keras")).save_weights(weights)
    assert logged_bytes == pytest.approx(weights.stat().st_size, rel=0.10)
    assert (work / "run" / "best.keras").stat().st_size == pytest.approx(weights.stat().st_size, rel=0.10)


def test_final_metrics_are_those_of_the_saved_best_model(cli_run):
    work, _, runs, _ = cli_run
    cfg = compose_config(TINY)
    val = load_splits(cfg.data)["val"]
    model = load_model(str(work / "run" / "best.keras"))
    truths, predictions = predict_labels(model, make_dataset(val, 8, training=False))
    expected = segmentation_metrics(confusion_matrix(truths, predictions, 2), ["background", "iris"])
    assert runs[0].data.metrics["val_miou"] == pytest.approx(expected["miou"], abs=1e-6)
    assert runs[0].data.metrics["val_e1"] == pytest.approx(expected["e1"], abs=1e-6)


def test_summary_printed(cli_run):
    _, _, runs, result = cli_run
    output = result.stdout + result.stderr
    assert runs[0].info.run_id in output
    assert "val mIoU" in output and "E1" in output


def test_command_line_overrides_compose():
    cfg = compose_config(
        [
            "model=fcn8",
            "data.image_size=128",
            "trainer.epochs=3",
            "optimizer=sgd",
            "optimizer.lr=1e-2",
            "augmentation=none",
            "seed=7",
        ]
    )
    assert cfg.model.name == "fcn8" and cfg.model.conv_type == "conv"
    assert cfg.data.image_size == 128 and cfg.trainer.epochs == 3 and cfg.seed == 7
    assert cfg.augmentation.name == "none"
    optimizer = build_optimizer(cfg.optimizer)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert float(keras.ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(1e-2)


def test_failing_run_is_marked_failed(tmp_path, tracking_uri, monkeypatch):
    def broken_fit(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(job, "fit", broken_fit)
    cfg = compose_config([*TINY, f"logger.tracking_uri={tracking_uri}", "logger.experiment_name=fail"])
    with pytest.raises(RuntimeError, match="boom"):
        job.train(cfg, tmp_path)
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("fail").experiment_id])
    assert [r.info.status for r in runs] == ["FAILED"]


def test_logger_none_trains_without_a_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = compose_config([*TINY, "logger=none", "augmentation=none"])
    metrics = job.train(cfg, tmp_path)
    assert 0.0 <= metrics["val_miou"] <= 1.0
    assert not (tmp_path / "mlflow.db").exists()
    assert (tmp_path / "best.keras").exists()


def test_user_error_is_one_sentence_without_traceback(tmp_path):
    result = run_cli(
        ["data=folder", f"data.root={tmp_path / 'missing'}", "logger=none", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "missing does not exist" in output
    assert "Traceback" not in output


def test_progress_into_a_pipe_is_one_line_per_epoch(cli_run):
    """trainer.verbose=auto: Keras would redraw its progress bar with backspaces and carriage returns."""
    _, _, _, result = cli_run
    assert "\x08" not in result.stdout and "\r" not in result.stdout
    epoch_lines = [line for line in result.stdout.splitlines() if "val_miou:" in line]
    assert len(epoch_lines) == 2


def test_logged_model_serves_from_a_fresh_process(cli_run):
    """What `mlflow models serve` does: load the pyfunc flavor with nothing of ssnets imported beforehand."""
    import json
    import subprocess
    import sys

    work, _, runs, _ = cli_run
    script = (
        "import json, sys, numpy as np, mlflow\n"
        f"model = mlflow.pyfunc.load_model('runs:/{runs[0].info.run_id}/model')\n"
        "probabilities = np.asarray(model.predict(np.zeros((2, 64, 64, 3), np.float32)))\n"
        "print(json.dumps({'shape': probabilities.shape, 'sum': float(probabilities.sum(-1).mean())}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["shape"] == [2, 64, 64, 2]
    assert served["sum"] == pytest.approx(1.0, abs=1e-5)


def test_number_like_experiment_and_run_names_are_names(tracking_uri):
    """The command line turns logger.experiment_name=nan into a float and run_name=2024 into an int."""
    from ssnets.tracking.base import build_tracker

    cfg = compose_config([f"logger.tracking_uri={tracking_uri}", "logger.experiment_name=nan", "logger.run_name=2024"])
    with build_tracker(cfg.logger).start(tags={}) as tracker:
        run_id = tracker.run_id
    client = MlflowClient(tracking_uri)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "nan"
    assert (run.info.run_name, run.info.status) == ("2024", "FINISHED")
