"""A shared MLflow tracking server: a real `mlflow server` on 127.0.0.1, started and stopped by the tests."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import mlflow
import pytest
import requests
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from ssnets.tracking.base import build_tracker
from ssnets.tracking.mlflow_tracker import MlflowTracker

from conftest import run_cli

SERVER_START_SECONDS = 120
# Job start-up (TensorFlow import) is most of a smoke job; the model is kept small.
SMOKE = ["experiment=smoke", "model=mobilenet_unet", "model.alpha=0.35", "logger.log_model=false"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` with a sqlite backend and artifacts on disk; yields its URI once /health answers."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log_file = open(root / "server.log", "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + SERVER_START_SECONDS
    while True:
        assert process.poll() is None, (root / "server.log").read_text()[-3000:]
        try:
            if requests.get(f"{uri}/health", timeout=2).ok:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, f"mlflow server not healthy after {SERVER_START_SECONDS} s"
        time.sleep(1)
    yield uri
    process.terminate()
    process.wait(timeout=30)
    log_file.close()


def finished_runs(uri: str, experiment: str):
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return [run for run in client.search_runs([found.experiment_id]) if run.info.status == "FINISHED"] if found else []


@pytest.mark.slow
def test_parallel_sweep_records_every_run_on_the_server(server, tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        [
            "-m",
            *SMOKE,
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "model.conv_type=conv,ds",
            "seed=1,2",
            f"logger.tracking_uri={server}",
            "logger.experiment_name=shared",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": ""},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    runs = finished_runs(server, "shared")
    assert len(runs) == 4
    assert {(run.data.params["model.conv_type"], run.data.params["seed"]) for run in runs} == {
        ("conv", "1"),
        ("conv", "2"),
        ("ds", "1"),
        ("ds", "2"),
    }
    client = MlflowClient(server)
    for run in runs:
        assert 0 <= run.data.metrics["val_miou"] <= 1
        # Artifacts travel through the server into its --artifacts-destination.
        assert "config.yaml" in {artifact.path for artifact in client.list_artifacts(run.info.run_id)}


def test_mlflow_tracking_uri_is_honoured_when_logger_tracking_uri_is_null(server, monkeypatch):
    # A URI set in this process by an earlier test would win over the environment
    # (and set_tracking_uri(None) clears both).
    mlflow.set_tracking_uri(None)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    logger = OmegaConf.create(
        {
            "_target_": "ssnets.tracking.mlflow_tracker.MlflowTracker",
            "tracking_uri": None,
            "experiment_name": "from_env",
            "run_name": None,
            "log_model": False,
        }
    )
    tracker = build_tracker(logger)
    assert isinstance(tracker, MlflowTracker)
    with tracker.start({"job": "env"}):
        tracker.log_metrics({"val_miou": 0.5}, step=0)
    assert mlflow.get_tracking_uri() == server
    runs = finished_runs(server, "from_env")
    assert [run.info.run_id for run in runs] == [tracker.run_id]
    assert runs[0].data.metrics["val_miou"] == 0.5
