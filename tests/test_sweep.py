"""Sweeps through the real entry point: joblib and submitit_local multiruns on the smoke experiment.

The Optuna search (hparams_search) is tests/test_search.py.
"""

from __future__ import annotations

import multiprocessing
import os
import re

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf, open_dict

from ssnets.tracking import sweep
from ssnets.training import device_share

from conftest import CONF_DIR, TINY, compose_config, run_cli

# Job process start-up (TensorFlow import) is most of a smoke job; the model is kept small.
SMOKE = ["experiment=smoke", "model=mobilenet_unet", "logger.log_model=false"]
WITHOUT_TRACKING_ENV = {"MLFLOW_TRACKING_URI": ""}


def runs_of(tracking_uri: str, experiment: str = "ssnets"):
    client = MlflowClient(tracking_uri)
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def job_output(result) -> str:
    return result.stdout[-4000:] + result.stderr[-4000:]


def smoke_sweep(tmp_path, tracking_uri: str, *overrides: str):
    """(sweep dir, result) of `python -m ssnets.run -m` on the smoke experiment plus `overrides`."""
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        ["-m", *SMOKE, *overrides, f"logger.tracking_uri={tracking_uri}", f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path,
    )
    return sweep_dir, result


@pytest.fixture(scope="module")
def grid_sweep(tmp_path_factory):
    """2 widths x 2 conv types, 4 joblib jobs at once, into the default store (./mlflow.db) of a fresh folder."""
    work = tmp_path_factory.mktemp("grid")
    sweep_dir = work / "sweep"
    result = run_cli(
        [
            "-m",
            *SMOKE,
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=4",
            "model.alpha=0.35,1.0",
            "model.conv_type=conv,ds",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=work,
        env=WITHOUT_TRACKING_ENV,
    )
    assert result.returncode == 0, job_output(result)
    return sweep_dir, runs_of(f"sqlite:///{work / 'mlflow.db'}"), result


@pytest.mark.slow
def test_every_combination_is_one_finished_run(grid_sweep):
    _, runs, _ = grid_sweep
    assert len(runs) == 4
    assert {run.info.status for run in runs} == {"FINISHED"}
    combinations = {(run.data.params["model.alpha"], run.data.params["model.conv_type"]) for run in runs}
    assert combinations == {("0.35", "conv"), ("0.35", "ds"), ("1.0", "conv"), ("1.0", "ds")}
    assert len({run.data.params["total_params"] for run in runs}) == 4
    for run in runs:
        assert run.data.metrics["train_images_per_second"] > 0
        assert 0 <= run.data.metrics["val_miou"] <= 1


@pytest.mark.slow
def test_jobs_share_the_sweep_tag_and_directory(grid_sweep):
    sweep_dir, runs, _ = grid_sweep
    assert {run.data.tags[sweep.SWEEP_ID_TAG] for run in runs} == {str(sweep_dir)}
    assert sorted(run.data.tags[sweep.SWEEP_JOB_TAG] for run in runs) == ["0", "1", "2", "3"]
    for job in range(4):
        assert (sweep_dir / str(job) / ".hydra" / "overrides.yaml").is_file()
        assert (sweep_dir / str(job) / "predictions.png").is_file()


@pytest.mark.slow
def test_parallel_jobs_share_the_cpu_threads(grid_sweep):
    sweep_dir, _, _ = grid_sweep
    threads = max(1, len(os.sched_getaffinity(0)) // 4)
    for job in range(4):
        log = (sweep_dir / str(job) / "run.log").read_text()
        assert f"Job {job} uses {threads} CPU threads" in log


@pytest.mark.slow
def test_submitit_sweep_records_a_failing_job_and_finishes_the_other(tmp_path, tracking_uri):
    """The SLURM code path on one machine; job 0 asks for a batch larger than the training set."""
    sweep_dir, result = smoke_sweep(tmp_path, tracking_uri, "hydra/launcher=submitit_local", "data.batch_size=32,8")
    assert result.returncode != 0, job_output(result)
    runs = {run.data.params["data.batch_size"]: run for run in runs_of(tracking_uri)}
    assert runs["32"].info.status == "FAILED"
    assert "data.batch_size=32 is larger than the 16 training images" in runs["32"].data.tags["failure_reason"]
    assert runs["8"].info.status == "FINISHED"
    assert {run.data.tags[sweep.SWEEP_ID_TAG] for run in runs.values()} == {str(sweep_dir)}
    assert list((sweep_dir / ".submitit").glob("*/*_log.out"))


def write_like_a_job(tracking_uri: str, job: int, start) -> str:
    """What a training job writes, through ssnets' tracker, starting when every writer is ready."""
    from ssnets.tracking.mlflow_tracker import MlflowTracker

    tracker = MlflowTracker(tracking_uri, "parallel", run_name=None, log_model=False)
    start.wait()
    with tracker.start({"job": str(job)}):
        tracker.log_params({f"param_{index}": index for index in range(50)})
        for epoch in range(10):
            tracker.log_metrics({"loss": 1 / (epoch + 1), "val_miou": epoch / 10}, step=epoch)
    return tracker.run_id


def test_four_parallel_writers_into_a_fresh_store_lose_nothing(tmp_path, monkeypatch):
    """Without store.prepare, 1 of 4 runs survived here (schema-migration race), 8 times in 8."""
    monkeypatch.chdir(tmp_path)  # the writers' working directory, where MLflow puts artifacts
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(4) as pool:
        for round_ in range(3):
            uri = f"sqlite:///{tmp_path / f'round{round_}.db'}"
            start = manager.Barrier(4)
            run_ids = pool.starmap(write_like_a_job, [(uri, job, start) for job in range(4)])
            runs = runs_of(uri, "parallel")
            assert sorted(run.info.run_id for run in runs) == sorted(run_ids)
            assert [run.info.status for run in runs] == ["FINISHED"] * 4
            assert all(len(run.data.params) == 50 and run.data.metrics["val_miou"] == 0.9 for run in runs)


@pytest.fixture
def multirun_job():
    """Makes HydraConfig what job `num` of a joblib multirun with `n_jobs` sees."""

    def as_job(num: int, n_jobs: int):
        cfg = compose_config(["hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_jobs}"], return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.mode = RunMode.MULTIRUN
            cfg.hydra.job.num = num
        HydraConfig.instance().set_config(cfg)

    yield as_job
    HydraConfig.instance().cfg = None


def test_parallel_jobs_are_pinned_to_their_own_gpu(multirun_job, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    multirun_job(num=3, n_jobs=2)
    device_share.configure_job()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    # A worker process that ran a job before keeps its GPU: CUDA reads the variable once.
    multirun_job(num=4, n_jobs=2)
    device_share.configure_job()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"


def test_sequential_jobs_keep_every_gpu(multirun_job, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    multirun_job(num=3, n_jobs=1)
    device_share.configure_job()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "4,5"


def test_cpu_threads_per_job():
    assert device_share.cpu_threads_per_job(OmegaConf.create({"n_jobs": 1})) is None
    cpus = len(os.sched_getaffinity(0))
    assert device_share.cpu_threads_per_job(OmegaConf.create({"n_jobs": 2})) == max(1, cpus // 2)
    assert device_share.cpu_threads_per_job(OmegaConf.create({"cpus_per_task": 6, "tasks_per_node": 1})) == 6


def test_experiments_compose():
    smoke = compose_config(["experiment=smoke"])
    tiny = compose_config(TINY)
    assert OmegaConf.to_container(smoke.data) == OmegaConf.to_container(tiny.data)
    assert OmegaConf.to_container(smoke.trainer) == OmegaConf.to_container(tiny.trainer)

    # data=iris brings the synthetic set's recipe (recipe/iris.yaml); data=folder gets the groups' own
    # defaults, the real-data recipe, without naming an experiment.
    synthetic, real = compose_config([]), compose_config(["data=folder", "data.root=/data"])
    for cfg, augmentation, epochs in ((synthetic, "none", 3), (real, "real", 10)):
        assert (cfg.augmentation.name, cfg.optimizer.lr, cfg.scheduler._target_, cfg.data.batch_size) == (
            augmentation,
            1e-3,
            "ssnets.training.schedules.cosine_schedule",
            8,
        )
        assert cfg.trainer.epochs == epochs
    assert (real.augmentation.vertical_flip, real.augmentation.rotate90, real.data.class_names) == (True, True, None)
    assert (synthetic.trainer.precision, real.trainer.precision) == ("auto", "float32")
    assert compose_config(["augmentation=iris"]).augmentation.name == "iris"  # the command line wins over a recipe
    assert compose_config(["optimizer.lr=1e-2", "scheduler=constant"]).optimizer.lr == 1e-2

    l2 = {
        name: compose_config(["experiment=iris_tutorial", f"model={name}"]).trainer.l2
        for name in ("fcn8", "fast_fcn8", "mobilenet_unet")
    }
    assert l2 == {"fcn8": 2e-5, "fast_fcn8": 2.5e-4, "mobilenet_unet": 2.5e-4}
    tutorial = compose_config(["experiment=iris_tutorial"], return_hydra_config=True)
    assert (tutorial.data.image_size, tutorial.data.batch_size, tutorial.trainer.epochs) == (224, 16, 130)
    assert tutorial.hydra.sweeper.params.model == "fcn8,fast_fcn8,mobilenet_unet"

    arch = compose_config(["experiment=arch_sweep"], return_hydra_config=True)
    models = arch.hydra.sweeper.params.model.split(",")
    assert set(models) | {"fast_fcn8"} == {path.stem for path in (CONF_DIR / "model").glob("*.yaml")}
    assert arch.hydra.sweeper.params["model.conv_type"] == "conv,ds"


def test_slurm_launcher_config():
    cfg = compose_config(["hydra/launcher=slurm"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.gpus_per_node == 1


@pytest.mark.slow
def test_job_log_names_the_sweep(grid_sweep):
    _, _, result = grid_sweep
    # Logged once, before the jobs start: at the top of the output, which job_output() cuts off.
    assert re.search(r"MLflow experiment 'ssnets' \(id \d+\) ready", result.stdout + result.stderr)
