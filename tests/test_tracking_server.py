"""A shared MLflow tracking server: a real `mlflow server` on 127.0.0.1, started, killed and restarted by the tests.

Eight parallel jobs write into one server; a server killed in the middle of a run
and back later loses nothing, and one that never comes back leaves the records for
`python -m ssnets.sync`; the comparison view opens in a real (headless) Chromium.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow.entities import LoggedModelStatus
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from test_resume import start_cli, wait_for_epochs

from ssnets.tracking.base import build_tracker
from ssnets.tracking.mlflow_tracker import SYNC_COMMAND, MlflowTracker
from ssnets.tracking.spool import SPOOL_DIR
from ssnets.tracking.system_metrics import SYSTEM_METRIC_PREFIX
from ssnets.training.epoch_pictures import PICTURE_KEY

from conftest import REPO, TINY, run_cli

SERVER_START_SECONDS = 120
# Job start-up (TensorFlow import) is most of a smoke job; the model is kept small.
SMALL_MODEL = ["model=mobilenet_unet", "model.alpha=0.35"]
SMOKE = ["experiment=smoke", *SMALL_MODEL, "logger.log_model=false"]
# MLflow's client retries a failed request 7 times over ~4 minutes before the delivery's own
# loop (which waits for /health) takes over; fewer keep these tests short.
QUICK_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
TRACKED_PER_EPOCH = ("loss", "val_loss", "miou", "val_miou", "learning_rate")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MlflowServer:
    """`mlflow server` with a sqlite backend and artifacts on disk, on one port for its whole life, so a test
    can kill it (SIGKILL, its whole process group) and start it again where clients expect it."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log_file = open(self.root / "server.log", "a")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.root / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log_file.close()  # the server has its own copy
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            assert self.process.poll() is None, (self.root / "server.log").read_text()[-3000:]
            try:
                if requests.get(f"{self.uri}/health", timeout=5).ok:
                    return
            except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still starting up
                pass
            assert time.monotonic() < deadline, f"mlflow server not healthy after {SERVER_START_SECONDS} s"
            time.sleep(0.5)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        os.killpg(self.process.pid, sig)
        self.process.wait(timeout=30)
        self.process = None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module's tests; yields its URI once /health answers."""
    root = tmp_path_factory.mktemp("mlflow-server")
    running = MlflowServer(root)
    running.start()
    yield running.uri
    running.kill(signal.SIGTERM)


@pytest.fixture
def quick_retries(monkeypatch):
    """MLflow's HTTP client gives up on a dead server after one retry (seven, about 4 minutes, by default)."""
    for name, value in QUICK_RETRIES.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def own_server(tmp_path):
    """A server of this test alone, to kill and restart."""
    running = MlflowServer(tmp_path)
    yield running
    if running.process is not None:
        running.kill()


def runs_of(uri: str, experiment: str):
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id]) if found else []


def steps_in_logging_order(client: MlflowClient, run_id: str, name: str) -> list[int]:
    history = sorted(client.get_metric_history(run_id, name), key=lambda metric: (metric.timestamp, metric.step))
    return [metric.step for metric in history]


def picture_steps(client: MlflowClient, run_id: str) -> list[int]:
    files = [a.path for a in client.list_artifacts(run_id, "images") if a.path.endswith(".png")]
    return sorted(int(path.split("+step+")[1].split("+")[0]) for path in files if PICTURE_KEY in path)


def assert_every_epoch_once(client: MlflowClient, run_id: str, epochs: int) -> None:
    """Each per-epoch record in the store once, in order; the final metrics, pictures, system metrics, model."""
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    for name in TRACKED_PER_EPOCH:
        final = [epochs] if name == "val_miou" else []  # the final evaluation is logged at step = epochs
        assert steps_in_logging_order(client, run_id, name) == [*range(epochs), *final], name
    assert picture_steps(client, run_id) == list(range(epochs))
    samples = sorted(steps_in_logging_order(client, run_id, f"{SYSTEM_METRIC_PREFIX}cpu_utilization_percentage"))
    assert samples and samples == list(range(len(samples)))
    assert run.inputs.dataset_inputs[0].dataset.name == "iris"
    assert "config.yaml" in {artifact.path for artifact in client.list_artifacts(run_id)}
    (model,) = client.search_logged_models([run.info.experiment_id])
    assert model.status == LoggedModelStatus.READY and model.source_run_id == run_id


@pytest.fixture(scope="module")
def parallel_sweep(server, tmp_path_factory):
    """Eight smoke jobs at once (joblib), all into the module's server."""
    work = tmp_path_factory.mktemp("sweep")
    sweep_dir = work / "sweep"
    result = run_cli(
        [
            "-m",
            *SMOKE,
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=8",
            "model.conv_type=conv,ds",
            "seed=1,2,3,4",
            "logger.system_metrics_interval=1",
            f"logger.tracking_uri={server}",
            "logger.experiment_name=shared",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=work,
        env={"MLFLOW_TRACKING_URI": ""},
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return sweep_dir, runs_of(server, "shared")


@pytest.mark.slow
def test_eight_parallel_jobs_lose_no_run_and_no_metric_on_the_server(server, parallel_sweep):
    sweep_dir, runs = parallel_sweep
    assert len(runs) == 8 and {run.info.status for run in runs} == {"FINISHED"}
    assert {(run.data.params["model.conv_type"], run.data.params["seed"]) for run in runs} == {
        (conv_type, str(seed)) for conv_type in ("conv", "ds") for seed in (1, 2, 3, 4)
    }
    for run in runs:
        conv_type, job = run.data.params["model.conv_type"], run.data.tags["sweep_job"]
        assert run.info.run_name == f"mobilenet_unet-{conv_type}-iris-64-{job}"
    client = MlflowClient(server)
    for run in runs:
        assert 0 <= run.data.metrics["val_miou"] <= 1
        for name in TRACKED_PER_EPOCH:
            final = [1] if name == "val_miou" else []
            assert steps_in_logging_order(client, run.info.run_id, name) == [0, *final], name
        assert picture_steps(client, run.info.run_id) == [0]
        # Artifacts travel through the server into its --artifacts-destination.
        assert "config.yaml" in {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    assert not list(sweep_dir.glob(f"*/{SPOOL_DIR}"))


def load_screenshot_script():
    spec = importlib.util.spec_from_file_location("mlflow_ui_screenshot", REPO / "scripts" / "mlflow_ui_screenshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_the_comparison_view_shows_run_names_and_val_miou_in_a_real_browser(server, parallel_sweep, tmp_path):
    """The link ssnets.compare prints, opened in headless Chromium: the runs table of the sweep, with val_miou."""
    _, runs = parallel_sweep
    tracker = MlflowTracker(server, "shared")
    records = [tracker.get_run(run.info.run_id) for run in runs]
    links = tracker.comparison_links(records, "val_miou", "max")
    screenshot = tmp_path / "table.png"
    dom = load_screenshot_script().headless_chromium(links["table"], (1900, 700), screenshot)
    assert screenshot.stat().st_size > 10_000
    assert "viewing a shared view" in dom
    for run in runs:
        assert run.info.run_name in dom, run.info.run_name
    assert "val_miou" in dom and "model.conv_type" in dom
    charts = load_screenshot_script().headless_chromium(links["charts"], (1900, 1000))
    assert "Parallel Coordinates" in charts


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
    runs = [run for run in runs_of(server, "from_env") if run.info.status == "FINISHED"]
    assert [run.info.run_id for run in runs] == [tracker.run_id]
    assert runs[0].data.metrics["val_miou"] == 0.5


@pytest.mark.slow
def test_logging_returns_at_once_while_the_server_is_down_and_all_arrives_later(own_server, tmp_path, quick_retries):
    own_server.start()
    tracker = MlflowTracker(own_server.uri, "down", system_metrics=False)
    with tracker.start({}, run_dir=tmp_path / "run"):
        own_server.kill()
        started = time.perf_counter()
        for step in range(200):
            tracker.log_metrics({"loss": 1 / (step + 1), "val_miou": step / 200}, step=step)
        seconds = time.perf_counter() - started
        own_server.start()
    assert seconds < 1.0, f"200 log_metrics calls took {seconds:.2f} s with the server down"
    client = MlflowClient(own_server.uri)
    assert client.get_run(tracker.run_id).info.status == "FINISHED"
    for name in ("loss", "val_miou"):
        assert steps_in_logging_order(client, tracker.run_id, name) == list(range(200))


def start_outage_run(server: MlflowServer, work: Path, epochs: int, *overrides: str) -> tuple[subprocess.Popen, Path]:
    run_dir = work / "run"
    args = [
        *TINY,
        *SMALL_MODEL,
        f"trainer.epochs={epochs}",
        "trainer.epoch_pictures_interval_s=0",  # a picture every epoch: every record must arrive
        "logger.system_metrics_interval=1",
        f"logger.tracking_uri={server.uri}",
        "logger.experiment_name=outage",
        f"hydra.run.dir={run_dir}",
        *overrides,
    ]
    return start_cli(args, work, work / "run.log"), run_dir


@pytest.mark.slow
def test_a_server_killed_after_epoch_1_and_back_two_epochs_later_loses_nothing(
    own_server, tmp_path, monkeypatch, quick_retries
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    own_server.start()
    epochs, log = 4, tmp_path / "run.log"
    process, run_dir = start_outage_run(own_server, tmp_path, epochs)
    wait_for_epochs(process, run_dir, 1, log)
    own_server.kill()
    wait_for_epochs(process, run_dir, 3, log)  # training goes on meanwhile
    own_server.start()
    assert process.wait(timeout=600) == 0, log.read_text()[-4000:]
    output = log.read_text()
    assert "does not answer" in output and "answers again" in output
    (run,) = runs_of(own_server.uri, "outage")
    assert_every_epoch_once(MlflowClient(own_server.uri), run.info.run_id, epochs)
    assert not (run_dir / SPOOL_DIR).exists()


@pytest.mark.slow
def test_with_the_server_gone_for_good_the_run_finishes_and_sync_delivers_later(
    own_server, tmp_path, monkeypatch, quick_retries
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    own_server.start()
    epochs, log = 2, tmp_path / "run.log"
    process, run_dir = start_outage_run(own_server, tmp_path, epochs, "logger.delivery_timeout=5")
    wait_for_epochs(process, run_dir, 1, log)
    own_server.kill()
    assert process.wait(timeout=600) == 0, log.read_text()[-4000:]
    output = log.read_text()
    (spool,) = (run_dir / SPOOL_DIR).iterdir()
    assert f"they are kept in {spool}: deliver them with `{SYNC_COMMAND} {run_dir}`" in output

    own_server.start()
    (run,) = runs_of(own_server.uri, "outage")
    assert run.info.status == "RUNNING"  # its end is among the records not delivered yet
    synced = subprocess.run(
        [sys.executable, "-m", "ssnets.sync", str(run_dir)], capture_output=True, text=True, timeout=600
    )
    assert synced.returncode == 0, synced.stdout[-3000:] + synced.stderr[-3000:]
    assert f"run {run.info.run_id} in {own_server.uri}: delivered" in synced.stdout + synced.stderr
    assert_every_epoch_once(MlflowClient(own_server.uri), run.info.run_id, epochs)
    assert not (run_dir / SPOOL_DIR).exists()
