"""Failures are recorded and lose nothing: SIGTERM, NaN loss, an unreachable server, a full disk, parallel writers."""

from __future__ import annotations

import errno
import signal
import time

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from test_resume import metric_steps, start_cli, wait_for_epochs

from ssnets.common.errors import UserError
from ssnets.training import checkpoint as checkpoint_module
from ssnets.training.checkpoint import EpochCheckpoint, Progress, load_snapshot, read_progress, save_snapshot
from ssnets.training.divergence import StopOnNonFiniteLoss, TrainingDiverged
from ssnets.training.monitor import Monitor

from conftest import TINY, run_cli


def only_run(uri: str, experiment: str):
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1, runs
    return client, runs[0]


@pytest.mark.slow
def test_sigterm_ends_the_run_killed_keeps_the_checkpoint_and_resumes_by_run_id(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    job = [*TINY, "trainer.epochs=2", f"logger.tracking_uri={uri}", "logger.experiment_name=term"]
    log = tmp_path / "terminated.log"
    process = start_cli([*job, f"hydra.run.dir={run_dir}"], tmp_path, log)
    wait_for_epochs(process, run_dir, 1, log)
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    returncode = process.wait(timeout=60)
    exit_seconds = time.monotonic() - sent
    output = log.read_text()
    assert returncode == 128 + signal.SIGTERM, output[-3000:]
    assert exit_seconds < 15, exit_seconds
    assert f"Stopped by SIGTERM; continue with trainer.resume={run_dir}." in output
    assert "Traceback" not in output
    client, run = only_run(uri, "term")
    assert run.info.status == "KILLED"
    assert run.data.tags["failure_reason"].startswith("Stopped by SIGTERM")
    progress = read_progress(run_dir)
    assert progress.epoch == 1 and (run_dir / "checkpoint" / progress.weights).is_file()

    resumed = run_cli(
        [*job, f"trainer.resume={run.info.run_id}", f"hydra.run.dir={tmp_path / 'resumed'}"], cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    client, finished = only_run(uri, "term")
    assert finished.info.run_id == run.info.run_id and finished.info.status == "FINISHED"
    assert metric_steps(client, run.info.run_id, "loss") == [0, 1]


@pytest.mark.slow
def test_nan_loss_stops_at_once_and_fails_the_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_cli(
        [
            *TINY,
            "trainer.epochs=3",
            "optimizer.lr=1e30",
            f"logger.tracking_uri={uri}",
            "logger.experiment_name=diverged",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    message = [line for line in output.splitlines() if "Loss became" in line]
    assert len(message) == 1 and "at epoch 1, step" in message[0] and "lower optimizer.lr" in message[0]
    client, run = only_run(uri, "diverged")
    assert run.info.status == "FAILED"
    assert run.data.tags["failure_reason"].startswith("TrainingDiverged: Loss became")
    assert read_progress(tmp_path / "run").epoch == 0
    assert metric_steps(client, run.info.run_id, "loss") == []


def tiny_model() -> keras.Model:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="dense")(inputs))
    model.compile(optimizer="adam", loss="mse")
    return model


class PoisonWeightsAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch: int):
        super().__init__()
        self.poison_epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.poison_epoch:
            kernel = self.model.get_layer("dense").kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def fit_tiny(model: keras.Model, run_dir, callbacks, epochs: int = 3) -> None:
    x, y = np.ones((8, 4), "float32"), np.ones((8, 1), "float32")
    checkpoint = EpochCheckpoint(run_dir, Progress(), Monitor("val_loss", "min"))
    model.fit(x, y, validation_data=(x, y), batch_size=4, epochs=epochs, verbose=0, callbacks=[checkpoint, *callbacks])


def test_nan_keeps_the_last_good_checkpoint(tmp_path):
    model = tiny_model()
    with pytest.raises(TrainingDiverged, match=r"^Loss became nan at epoch 2, step 1; lower optimizer.lr"):
        fit_tiny(model, tmp_path, [StopOnNonFiniteLoss(), PoisonWeightsAtEpoch(1)])
    progress = read_progress(tmp_path)
    assert progress.epoch == 1 and len(progress.history["loss"]) == 1
    restored = tiny_model()
    restored.optimizer.build(restored.trainable_variables)
    load_snapshot(restored, tmp_path / "checkpoint" / progress.weights)
    assert np.isfinite(restored.get_layer("dense").kernel.numpy()).all()


def test_full_disk_is_one_sentence_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """The second epoch's weights meet a full disk half-way: training stops with
    one sentence and the first epoch's checkpoint stays in force."""
    calls = []

    def fail_second_save(path, snapshot):
        calls.append(path)
        save_snapshot(path, snapshot)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")  # half a file on disk, then the disk is full

    monkeypatch.setattr(checkpoint_module, "save_snapshot", fail_second_save)
    with pytest.raises(
        UserError, match=r"^Cannot write .*epoch-0002.weights.npz \(No space left on device\); free disk"
    ):
        fit_tiny(tiny_model(), tmp_path, [])
    progress = read_progress(tmp_path)
    assert progress.epoch == 1 and progress.weights == "epoch-0001.weights.npz"
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == ["epoch-0001.weights.npz", "state.json"]


def test_unreachable_tracking_server_stops_within_seconds_naming_it(tmp_path):
    start = time.monotonic()
    result = run_cli(
        [*TINY, "logger.tracking_uri=http://127.0.0.1:9", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path
    )
    seconds = time.monotonic() - start
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "MLflow tracking server http://127.0.0.1:9 cannot be reached (ConnectionError)" in output
    assert "Traceback" not in output and "Epoch 1" not in output
    assert seconds < 90, seconds  # Python and TensorFlow start-up included; MLflow's own retries take minutes


def test_a_checkpoint_of_an_earlier_version_is_one_sentence(tmp_path):
    model = tiny_model()
    model.save_weights(tmp_path / "epoch-0001.weights.h5")  # what resume checkpoints were before .weights.npz
    with pytest.raises(UserError, match=r"was written by an earlier ssnets .*; finish that run with the version"):
        load_snapshot(model, tmp_path / "epoch-0001.weights.h5")
