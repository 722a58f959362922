"""The hyperparameter search (hydra/sweeper=ssnets_optuna): search space, pruning, resuming, parallel workers.

The pruning test runs `python -m ssnets.run -m` on the smoke experiment. The tests of
resuming and of parallel workers run the same sweeper over a small Hydra app written
into a temporary folder, whose jobs only sleep and return a value: what they check (trial
numbers, counts, start and end times) is the sweeper's, and they stay fast and exact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from ssnets.common.errors import UserError
from ssnets.search.budget import Progress, Requeue
from ssnets.search.space import SearchSpace, quoted
from ssnets.search.study import absolute_storage
from ssnets.search.trial_job import job_error

from conftest import compose_config, run_cli

SMOKE = ["experiment=smoke", "model=mobilenet_unet", "logger.log_model=false"]
# Heartbeats, retries and fail_stale_trials are "experimental" in Optuna 4.9.
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

APP = """
import time

import hydra


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    time.sleep(cfg.slow_seconds if cfg.x > 0.8 else cfg.seconds)
    return -((cfg.x - 0.3) ** 2)


if __name__ == "__main__":
    main()
"""

APP_CONFIG = """
defaults:
  - override hydra/sweeper: ssnets_optuna
  - _self_
x: 0.0
seconds: 0.2
slow_seconds: 0.2
logger:
  _target_: ssnets.tracking.mlflow_tracker.MlflowTracker
  tracking_uri: ???
  experiment_name: search-app
hydra:
  sweeper:
    study_name: app
    direction: maximize
    n_trials: 4
    params:
      x: interval(0, 1)
"""


def test_search_space_takes_hydras_sweep_syntax():
    space = SearchSpace.parse(
        {
            "optimizer.lr": "tag(log, interval(1e-5, 1e-2))",
            "augmentation.strength": "interval(0, 1)",
            "data.batch_size": "choice(4, 8, 16)",
            "model": "fast_fcn8,mobilenet_unet",
            "trainer.epochs": "range(2, 11, 4)",
            "loss.smooth": "range(0.5, 2.0, 0.5)",
            "seed": "7",
        },
        ["hparams_search=iris_optuna", "seed=3", "loss.name='a b',c"],
    )
    assert space.distributions == {
        "optimizer.lr": FloatDistribution(1e-5, 1e-2, log=True),
        "augmentation.strength": FloatDistribution(0.0, 1.0),
        "data.batch_size": CategoricalDistribution([4, 8, 16]),
        "model": CategoricalDistribution(["fast_fcn8", "mobilenet_unet"]),
        "trainer.epochs": IntDistribution(2, 10, step=4),  # range() leaves out its stop, as Python's does
        "loss.smooth": FloatDistribution(0.5, 1.5, step=0.5),
        "loss.name": CategoricalDistribution(["'a b'", "c"]),  # as an override writes it
    }
    assert space.expressions["optimizer.lr"] == "tag(log, interval(1e-5, 1e-2))"
    assert space.fixed == ["hparams_search=iris_optuna", "seed=3"]  # the command line wins
    overrides = space.overrides({"optimizer.lr": 0.001, "loss.name": "'a b'", "data.batch_size": 8, "x": True})
    assert overrides[2:] == ["optimizer.lr=0.001", "loss.name='a b'", "data.batch_size=8", "x=true"]
    parsed = OverridesParser.create().parse_overrides(overrides)
    assert [override.value() for override in parsed[2:]] == [0.001, "a b", 8, True]


@pytest.mark.parametrize("params", [{"seed": "1"}, {"x": "interval(0"}, {"x": "range(3, 1)"}])
def test_a_search_space_without_a_search_or_that_optuna_cannot_take_is_one_sentence(params):
    with pytest.raises(UserError):
        SearchSpace.parse(params, [])


QUOTED = ["sqlite:////tmp/a b/x.db", "postgresql://u:p@h/db?x=1", "it's", "a\\b", "end\\", "q\\'x"]


@pytest.mark.parametrize("text", QUOTED)
def test_quoted_override_values_read_back_unchanged(text):
    assert OverridesParser.create().parse_override(f"key={quoted(text)}").value() == text


def test_relative_storages_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_storage("sqlite:///studies/optuna.db") == f"sqlite:///{tmp_path}/studies/optuna.db"
    assert absolute_storage("journal.log") == str(tmp_path / "journal.log")
    assert absolute_storage("postgresql://u:p@host/db") == "postgresql://u:p@host/db"
    with pytest.raises(UserError, match="in memory"):
        absolute_storage("sqlite:///:memory:")


def test_iris_search_config_composes():
    cfg = compose_config(["hparams_search=iris_optuna"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.ssnets_optuna_sweeper.ssnets_optuna_sweeper.SsnetsOptunaSweeper"
    assert set(sweeper.params) == {"model", "optimizer.lr", "trainer.l2", "data.batch_size", "augmentation.strength"}
    assert (sweeper.pruner._target_, sweeper.pruner.n_warmup_steps, sweeper.direction) == (
        "optuna.pruners.MedianPruner",
        2,
        "max",
    )
    assert sweeper.storage == "sqlite:///optuna.db"
    hyperband = compose_config(
        ["hparams_search=iris_optuna", "hydra/sweeper/pruner=hyperband"], return_hydra_config=True
    )
    assert hyperband.hydra.sweeper.pruner.max_resource == hyperband.trainer.epochs == 7


def test_hydra_finds_the_sweeper_plugin():
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    from hydra_plugins.ssnets_optuna_sweeper.ssnets_optuna_sweeper import SsnetsOptunaSweeper

    assert SsnetsOptunaSweeper in Plugins.instance().discover(Sweeper)


def test_a_failed_jobs_exception_is_where_the_search_reads_it():
    """JobReturn.return_value prints an error line before it re-raises; the search reads _return_value."""
    result = JobReturn(status=JobStatus.FAILED)
    result.return_value = ValueError("boom")
    assert isinstance(job_error(result), ValueError)


def test_the_pruning_callback_reports_each_epoch_and_stops_a_trial_its_pruner_gives_up(tmp_path):
    """What a trial's job does, against a study another process (here: this test) asked the trial from."""
    import keras

    from ssnets.training.pruning import PLANNED_EPOCHS_ATTR, OptunaPruning

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.add_trial(optuna.create_trial(value=0.6, intermediate_values={0: 0.5, 1: 0.6}))
    study.ask()  # trial 1, running
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1)
    callback = OptunaPruning(storage, "s", trial_number=1, monitor="val_miou", pruner=pruner)
    callback.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    callback.set_params({"epochs": 3})
    callback.model.stop_training = False  # as Model.fit starts
    callback.on_train_begin()
    callback.on_epoch_end(0, {"val_miou": 0.55})  # above the median at epoch 0: carries on
    assert not callback.model.stop_training
    callback.on_epoch_end(1, {"val_miou": 0.1})
    assert callback.model.stop_training
    with pytest.raises(optuna.TrialPruned, match="Trial 1 pruned after epoch 2 of 3 \\(val_miou 0.1000\\)"):
        callback.on_train_end()
    trial = study.get_trials()[1]
    assert trial.intermediate_values == {0: 0.55, 1: 0.1} and trial.user_attrs[PLANNED_EPOCHS_ATTR] == 3


def test_workers_asking_at_once_on_sqlite_get_distinct_trials(tmp_path):
    """Four threads ask ten trials each, queued ones first. Plain RDBStorage on sqlite handed one queued
    trial to several of them here (40 asks, 31 distinct trials); open_storage's sqlite takes its lock first."""
    from ssnets.training.pruning import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    for index in range(20):
        study.enqueue_trial({"x": index / 20})
    asked: list[int] = []

    def ask_ten():
        worker = optuna.load_study(study_name="s", storage=storage)
        asked.extend(worker.ask({"x": FloatDistribution(0, 1)}).number for _ in range(10))

    threads = [threading.Thread(target=ask_ten) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(asked) == list(range(40))
    assert len(study.get_trials(states=(TrialState.RUNNING,))) == 40


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_trial_whose_heartbeat_stops_is_failed_and_queued_again(tmp_path):
    requeue = Requeue(max_retries=1)
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1, heartbeat_stale_trial_callback=requeue
    )
    study = optuna.create_study(storage=storage)
    trial = study.ask({"x": FloatDistribution(0, 1)})
    storage.record_heartbeat(trial._trial_id)  # what Study.optimize's heartbeat thread does
    assert Progress.of(study).running == 1
    time.sleep(3.5)  # no heartbeat for more than twice the interval (the database clock counts whole seconds)
    optuna.storages.fail_stale_trials(study)
    states = [t.state for t in study.get_trials()]
    assert states == [TrialState.FAIL, TrialState.WAITING]
    assert study.get_trials()[1].params == trial.params
    progress = Progress.of(study)
    assert (progress.failed, progress.waiting, progress.counted, progress.to_ask(1)) == (0, 1, 1, 1)


def write_app(folder: Path, tracking_uri: str) -> Path:
    (folder / "conf").mkdir(parents=True)
    (folder / "conf" / "config.yaml").write_text(APP_CONFIG.replace("???", tracking_uri))
    (folder / "app.py").write_text(APP)
    return folder / "app.py"


def app_command(app: Path, sweep_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(app), "-m", f"hydra.sweep.dir={sweep_dir}", *overrides]


def run_app(app: Path, sweep_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        app_command(app, sweep_dir, *overrides), cwd=app.parent, capture_output=True, text=True, timeout=300
    )


def output(result) -> str:
    return result.stdout[-4000:] + result.stderr[-4000:]


def study_trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    """The trials of the app's study ([] before the study exists)."""
    if "://" not in storage:
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
    try:
        return optuna.load_study(study_name="app", storage=storage).get_trials()
    except KeyError:
        return []


@pytest.fixture
def app(tmp_path, tracking_uri):
    return write_app(tmp_path / "app", tracking_uri)


TWO_SLOTS = {
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],  # two processes of this machine
    "submitit": ["hydra/launcher=submitit_local", "hydra.sweeper.n_jobs=2"],  # SLURM's code path, run here
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", TWO_SLOTS)
def test_parallel_trials_start_as_soon_as_a_slot_is_free(app, tmp_path, launcher):
    """Trial 0 takes 15 s; with two slots, trials 1-3 run one after another beside it, not after it."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    result = run_app(
        app,
        tmp_path / "sweep",
        *TWO_SLOTS[launcher],
        f"hydra.sweeper.storage={storage}",
        "slow_seconds=15",
        "hydra.sweeper.enqueue_trials=[{x:0.9},{x:0.1},{x:0.2},{x:0.35}]",
    )
    assert result.returncode == 0, output(result)
    trials = study_trials(storage)
    assert [trial.number for trial in trials] == [0, 1, 2, 3]
    assert {trial.state for trial in trials} == {TrialState.COMPLETE}
    slow = trials[0]
    assert all(trial.datetime_complete < slow.datetime_complete for trial in trials[1:])
    assert trials[3].datetime_start > trials[1].datetime_complete  # it waited for a free slot, not for trial 0
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert results["trials"]["complete"] == 4 and results["best_params"] == {"x": 0.35}


@pytest.mark.slow
def test_two_workers_on_one_journal_share_the_study(app, tmp_path, tracking_uri):
    """Two commands on one journal file, started at once: distinct trial numbers, none lost, one parent run."""
    journal = str(tmp_path / "study.log")
    overrides = [f"hydra.sweeper.storage={journal}", "hydra.sweeper.n_trials=8", "seconds=2"]
    workers = [
        subprocess.Popen(
            app_command(app, tmp_path / f"sweep{index}", *overrides),
            cwd=app.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(2)
    ]
    logs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], "\n".join(log[-3000:] for log in logs)
    trials = study_trials(journal)
    assert sorted(trial.number for trial in trials) == list(range(8))
    assert {trial.state for trial in trials} == {TrialState.COMPLETE}
    assert len({trial.user_attrs["worker"] for trial in trials}) == 2  # both workers ran trials
    ran_here = [sorted(int(path.name) for path in (tmp_path / f"sweep{index}").glob("[0-9]*")) for index in range(2)]
    assert sorted(ran_here[0] + ran_here[1]) == list(range(8))
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("search-app").experiment_id])
    assert [run.info.run_name for run in runs] == ["app"]  # one parent run, however many workers


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["xx=interval(0, 1)"], "A trial's overrides do not compose: "),  # the app has no key xx
        (["hydra.sweeper.n_jobs=2"], "hydra.sweeper.n_jobs=2 needs a launcher that runs jobs in processes"),
    ],
)
def test_a_search_that_cannot_run_stops_before_its_first_trial(app, tmp_path, overrides, message):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    result = run_app(app, tmp_path / "sweep", f"hydra.sweeper.storage={storage}", *overrides)
    assert result.returncode == 1 and message in result.stderr, output(result)
    assert study_trials(storage) == []


@pytest.mark.slow
def test_a_killed_search_continues_and_runs_the_killed_trial_again(app, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    overrides = [f"hydra.sweeper.storage={storage}", "hydra.sweeper.n_trials=3", "seconds=3"]
    worker = subprocess.Popen(
        app_command(app, tmp_path / "sweep", *overrides),
        cwd=app.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            states = [trial.state for trial in study_trials(storage)]
            if states == [TrialState.COMPLETE, TrialState.RUNNING]:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"trial 1 never ran: {states}")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    killed = study_trials(storage)
    assert [trial.state for trial in killed] == [TrialState.COMPLETE, TrialState.RUNNING]

    result = run_app(app, tmp_path / "sweep-again", *overrides)
    assert result.returncode == 0, output(result)
    trials = study_trials(storage)
    assert [trial.state for trial in trials] == [TrialState.COMPLETE, TrialState.FAIL] + [TrialState.COMPLETE] * 2
    assert trials[2].params == killed[1].params  # trial 1 again, first
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trials[2]) == 1
    assert trials[0].datetime_complete == killed[0].datetime_complete  # the finished trial was kept
    progress = Progress.of(optuna.load_study(study_name="app", storage=storage))
    assert (progress.complete, progress.counted) == (3, 3)


@pytest.mark.slow
def test_a_hopeless_trial_is_pruned_and_both_runs_are_nested_under_the_study(tmp_path, tracking_uri):
    """Trial 0 trains at lr 1e-3, trial 1 at 1e-9: after its first epoch trial 1 is below trial 0 there (val mIoU
    0.28 against 0.45, measured) and the median pruner stops it."""
    search = tmp_path / "conf" / "hparams_search"
    search.mkdir(parents=True)
    (search / "prune_test.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - override /hydra/sweeper: ssnets_optuna\n  - override /hydra/sweeper/pruner: median\n"
        "hydra:\n  sweeper:\n    n_trials: 2\n    pruner: {n_startup_trials: 1, n_warmup_steps: 0}\n"
        "    enqueue_trials: [{optimizer.lr: 1.0e-3}, {optimizer.lr: 1.0e-9}]\n"
        "    params: {optimizer.lr: 'tag(log, interval(1e-10, 1e-1))'}\n"
    )
    sweep_dir = tmp_path / "sweep"
    result = run_cli(
        [
            "-m",
            "hparams_search=prune_test",
            f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
            *SMOKE,
            "trainer.epochs=3",
            f"logger.tracking_uri={tracking_uri}",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, output(result)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"  # the default storage, in the working directory
    (name,) = optuna.get_all_study_names(storage)
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert [trial.state for trial in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert len(trials[0].intermediate_values) == 3 and list(trials[1].intermediate_values) == [0]

    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("ssnets").experiment_id])
    (parent,) = [run for run in runs if "optuna_trial" not in run.data.tags]
    by_trial = {int(run.data.tags["optuna_trial"]): run for run in runs if run is not parent}
    assert parent.info.run_name == name and parent.data.tags["optuna_search_state"] == "finished"
    assert parent.data.params["search.optimizer.lr"] == "tag(log, interval(1e-10, 1e-1))"
    assert parent.data.metrics["best_value"] == pytest.approx(trials[0].value)
    assert parent.data.metrics["trials_pruned"] == 1 and parent.data.metrics["epochs_saved_by_pruning"] == 2
    assert parent.data.tags["best_params.optimizer.lr"] == "0.001"
    artifacts = {artifact.path for artifact in client.list_artifacts(parent.info.run_id)}
    assert {"optimization_history.png", "intermediate_values.png", "optimization_results.yaml"} <= artifacts
    assert {run.data.tags["mlflow.parentRunId"] for run in by_trial.values()} == {parent.info.run_id}
    complete, pruned = by_trial[0], by_trial[1]
    assert (complete.info.status, complete.data.tags["optuna_state"]) == ("FINISHED", "complete")
    assert (pruned.info.status, pruned.data.tags["optuna_state"]) == ("KILLED", "pruned")
    assert pruned.data.tags["failure_reason"].startswith("PrunedTrial: Trial 1 pruned after epoch 1 of 3")
    # The pruned run keeps its epoch: the value the pruner judged.
    history = client.get_metric_history(pruned.info.run_id, "val_miou")
    assert [(metric.step, metric.value) for metric in history] == [(0, pytest.approx(trials[1].intermediate_values[0]))]
