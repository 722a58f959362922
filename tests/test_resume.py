"""Interrupted runs continue where they stopped, in the same MLflow run; finished sweep jobs are skipped."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ssnets.common.errors import UserError
from ssnets.tracking.base import build_tracker
from ssnets.training import resume
from ssnets.training.checkpoint import Progress, read_progress, state_path

from conftest import TINY, compose_config, run_cli

EPOCHS = 3


def start_cli(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ssnets.run", *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )


def wait_for_epochs(process: subprocess.Popen, run_dir: Path, epochs: int, log: Path, timeout: float = 400) -> None:
    """Poll the committed checkpoint until `epochs` epochs are done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = read_progress(run_dir) if state_path(run_dir).exists() else None
        if progress is not None and progress.epoch >= epochs:
            return
        assert process.poll() is None, log.read_text()[-3000:]
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"no checkpoint of epoch {epochs} within {timeout}s: {log.read_text()[-3000:]}")


def metric_steps(client: MlflowClient, run_id: str, name: str) -> list[int]:
    return [metric.step for metric in client.get_metric_history(run_id, name)]


@pytest.mark.slow
def test_run_killed_in_epoch_2_resumes_into_one_run_with_every_epoch_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    job = [*TINY, f"trainer.epochs={EPOCHS}", f"logger.tracking_uri={uri}", "logger.experiment_name=kill"]
    log = tmp_path / "killed.log"
    process = start_cli([*job, f"hydra.run.dir={run_dir}"], tmp_path, log)
    wait_for_epochs(process, run_dir, 1, log)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert read_progress(run_dir).epoch == 1, "the kill was meant to land in epoch 2"

    resumed = run_cli([*job, f"trainer.resume={run_dir}", f"hydra.run.dir={tmp_path / 'resumed'}"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "Resumed from" in resumed.stdout + resumed.stderr

    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("kill").experiment_id
    runs = client.search_runs([experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    for name in ("loss", "val_loss", "miou"):
        assert metric_steps(client, run.info.run_id, name) == list(range(EPOCHS)), name
    assert metric_steps(client, run.info.run_id, "val_miou") == [*range(EPOCHS), EPOCHS]
    progress = read_progress(run_dir)
    assert progress.epoch == EPOCHS and len(progress.history["loss"]) == EPOCHS
    assert sorted(p.name for p in (run_dir / "checkpoint").iterdir()) == ["epoch-0003.weights.npz", "state.json"]
    assert not list(run_dir.glob(".tmp-*"))

    # Re-running the job as a sweep with trainer.resume=auto finds it finished and skips it.
    again = run_cli(["-m", *job, "trainer.resume=auto", f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"Skipping this job: run {run.info.run_id} already finished it" in again.stdout + again.stderr
    assert len(client.search_runs([experiment_id])) == 1


def fake_run(client: MlflowClient, experiment_id: str, cfg, run_dir: Path, status: str, epoch: int) -> str:
    """An MLflow run and checkpoint as ssnets.run leaves them, without training."""
    params = resume.job_params(cfg)
    digest = resume.job_hash(params)
    run = client.create_run(experiment_id, tags={resume.JOB_HASH_TAG: digest, resume.RUN_DIR_TAG: str(run_dir)})
    client.set_terminated(run.info.run_id, status)
    progress = Progress(epoch=epoch, job={"hash": digest, "params": params, "run_id": run.info.run_id})
    state_path(run_dir).parent.mkdir(parents=True)
    state_path(run_dir).write_text(json.dumps(progress.__dict__))
    return run.info.run_id


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("sweep")

    def config(*overrides: str):
        return compose_config([*TINY, f"logger.tracking_uri={uri}", "logger.experiment_name=sweep", *overrides])

    return client, experiment_id, config


def test_auto_skips_finished_jobs_continues_unfinished_and_starts_new_ones(tmp_path, store):
    client, experiment_id, config = store
    finished = fake_run(client, experiment_id, config("seed=1"), tmp_path / "a", "FINISHED", EPOCHS)
    killed = fake_run(client, experiment_id, config("seed=2"), tmp_path / "b", "KILLED", 1)

    def resolve(seed: int) -> resume.Job:
        cfg = config(f"seed={seed}", "trainer.resume=auto")
        return resume.resolve(cfg, tmp_path / f"new{seed}", build_tracker(cfg.logger))

    done = resolve(1)
    assert (done.state, done.run_dir) == (resume.JobState.FINISHED, tmp_path / "a")
    assert done.finished_metrics == client.get_run(finished).data.metrics
    continued = resolve(2)
    assert (continued.state, continued.run_id, continued.run_dir, continued.progress.epoch) == (
        resume.JobState.CONTINUING,
        killed,
        tmp_path / "b",
        1,
    )
    fresh = resolve(3)
    assert (fresh.state, fresh.run_id, fresh.run_dir) == (resume.JobState.NEW, None, tmp_path / "new3")


def test_resume_by_run_id_finds_the_run_directory(tmp_path, store):
    client, experiment_id, config = store
    killed = fake_run(client, experiment_id, config(), tmp_path / "b", "KILLED", 2)
    cfg = config(f"trainer.resume={killed}")
    job = resume.resolve(cfg, tmp_path / "new", build_tracker(cfg.logger))
    assert (job.state, job.run_id, job.run_dir, job.progress.epoch) == (
        resume.JobState.CONTINUING,
        killed,
        tmp_path / "b",
        2,
    )


def test_resume_with_other_overrides_names_what_changed(tmp_path, store):
    client, experiment_id, config = store
    fake_run(client, experiment_id, config(), tmp_path / "b", "KILLED", 1)
    cfg = config(f"trainer.resume={tmp_path / 'b'}", "optimizer.lr=0.1")
    with pytest.raises(UserError, match=r"started with different optimizer\.lr\b.*; resume it with the overrides"):
        resume.resolve(cfg, tmp_path / "new", build_tracker(cfg.logger))


def test_resume_of_a_finished_run_or_unknown_target_is_refused(tmp_path, store):
    client, experiment_id, config = store
    fake_run(client, experiment_id, config(), tmp_path / "done", "FINISHED", EPOCHS)
    cfg = config(f"trainer.resume={tmp_path / 'done'}")
    with pytest.raises(UserError, match="already finished; there is nothing to resume"):
        resume.resolve(cfg, tmp_path / "new", build_tracker(cfg.logger))
    cfg = config("trainer.resume=0123456789abcdef")
    with pytest.raises(UserError, match="is neither a run directory nor a run id"):
        resume.resolve(cfg, tmp_path / "new", build_tracker(cfg.logger))
    (tmp_path / "empty").mkdir()
    cfg = config(f"trainer.resume={tmp_path / 'empty'}")
    with pytest.raises(UserError, match="holds no checkpoint"):
        resume.resolve(cfg, tmp_path / "new", build_tracker(cfg.logger))


def test_an_epoch_logged_before_its_checkpoint_was_written_is_not_logged_twice(tmp_path, store):
    """Killed before epoch 2 was written (trainer.checkpoint_interval_s): the tracker has epochs 0 and 1, the checkpoint
    only epoch 0. The resumed run trains epoch 1 again and logs every epoch once."""
    from ssnets.training.job import train

    client, _, config = store
    run_dir = tmp_path / "run"
    train(config("trainer.epochs=2"), run_dir)
    progress = read_progress(run_dir)
    run_id = progress.job["run_id"]
    progress.epoch, progress.history = 1, {name: values[:1] for name, values in progress.history.items()}
    progress.best_epoch, progress.best_score = 0, progress.history["val_miou"][0]
    state_path(run_dir).write_text(json.dumps(progress.__dict__))
    client.set_terminated(run_id, "KILLED")

    train(config("trainer.epochs=2", f"trainer.resume={run_dir}"), run_dir)
    assert client.get_run(run_id).info.status == "FINISHED"
    for name in ("loss", "val_loss", "miou"):
        assert metric_steps(client, run_id, name) == [0, 1], name
    assert read_progress(run_dir).epoch == 2
