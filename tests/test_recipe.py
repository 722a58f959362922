"""Training recipe options end to end: losses, class weights, LR schedulers, early stopping, val_fraction.

Five tiny runs through `training.job.train` (what `python -m ssnets.run` calls), each
pairing one loss with one scheduler, log into one temporary MLflow store;
together they take a few minutes, so the tests that read them are marked slow.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from ssnets.common.errors import UserError
from ssnets.data import load_splits
from ssnets.data.pipeline import make_dataset
from ssnets.data.splitting import hold_out_validation
from ssnets.data.types import Split
from ssnets.training.callbacks import build_callbacks
from ssnets.training.evaluate import evaluate
from ssnets.training.job import train

from conftest import TINY, compose_config

BASE = [*TINY, "augmentation=none", "logger.log_model=false", "logger.experiment_name=recipe"]
NO_VAL = ["data.num_val=0", "trainer.val_fraction=0.25"]
RUNS = {
    "ce_auto_constant": ["loss=ce", "loss.class_weights=auto", "scheduler=constant", "trainer.epochs=2", *NO_VAL],
    "dice_cosine": ["loss=dice", "scheduler=cosine", "scheduler.warmup_epochs=1", "trainer.epochs=3"],
    "focal_step": [
        "loss=focal",
        "loss.gamma=1.5",
        "scheduler=step",
        "scheduler.step_epochs=1",
        "scheduler.gamma=0.5",
        "trainer.epochs=2",
    ],
    # min_delta=1: no epoch after the first can count as a val_miou gain, so the plateau is certain.
    "ce_dice_plateau": [
        "loss=ce_dice",
        "scheduler=plateau",
        "scheduler.patience=1",
        "scheduler.min_delta=1.0",
        "trainer.epochs=3",
    ],
    "lovasz_early_stop": [
        "loss=lovasz",
        "loss.class_weights=[1,4]",
        "scheduler=constant",
        "trainer.epochs=4",
        "trainer.early_stopping.patience=1",
        "trainer.early_stopping.min_delta=1.0",
    ],
}
LR = 1e-3  # the default run's optimizer.lr (conf/recipe/iris.yaml)
EXPECTED_LEARNING_RATES = {
    "ce_auto_constant": [LR, LR],
    # warm-up epoch at LR*1/2, then half a cosine over the 2 remaining epochs: LR, LR*(1 + cos(pi/2))/2
    "dice_cosine": [LR / 2, LR, LR / 2],
    "focal_step": [LR, LR / 2],
    # the plateau is seen at the end of epoch 1 and again at the end of epoch 2
    "ce_dice_plateau": [LR, LR, LR / 2],
    "lovasz_early_stop": [LR, LR],
}
TARGETS = {
    "ce_auto_constant": ("ssnets.task.losses.CrossEntropy", "ssnets.training.schedules.constant_schedule"),
    "dice_cosine": ("ssnets.task.losses.DiceLoss", "ssnets.training.schedules.cosine_schedule"),
    "focal_step": ("ssnets.task.losses.FocalLoss", "ssnets.training.schedules.step_schedule"),
    "ce_dice_plateau": ("ssnets.task.losses.CrossEntropyDiceLoss", "keras.callbacks.ReduceLROnPlateau"),
    "lovasz_early_stop": ("ssnets.task.losses.LovaszSoftmaxLoss", "ssnets.training.schedules.constant_schedule"),
}


def config(name: str, tracking_uri: str):
    return compose_config([*BASE, *RUNS[name], f"logger.tracking_uri={tracking_uri}", f"logger.run_name={name}"])


@pytest.fixture(scope="module")
def recipe_runs(tmp_path_factory):
    """{name: (config, run dir, MLflow run)} for every entry of RUNS, trained in this process."""
    work = tmp_path_factory.mktemp("recipe")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    for name in RUNS:
        (work / name).mkdir()
        train(config(name, uri), work / name)
    client = MlflowClient(uri)
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("recipe").experiment_id])}
    assert set(runs) == set(RUNS)
    return client, {name: (config(name, uri), work / name, runs[name]) for name in RUNS}


@pytest.mark.slow
def test_every_recipe_finishes_and_logs_its_options(recipe_runs):
    _, runs = recipe_runs
    for name, (_, _, mlflow_run) in runs.items():
        assert mlflow_run.info.status == "FINISHED", name
        params, metrics = mlflow_run.data.params, mlflow_run.data.metrics
        assert (params["loss._target_"], params["scheduler._target_"]) == TARGETS[name]
        for key in ("val_mean_dice", "val_dice_background", "val_dice_iris", "test_mean_dice"):
            assert 0.0 <= metrics[key] <= 1.0, (name, key)
    assert runs["focal_step"][2].data.params["loss.gamma"] == "1.5"
    # mean Dice per epoch (Keras metric) and at the end, like val_miou
    dice_history = recipe_runs[0].get_metric_history(runs["dice_cosine"][2].info.run_id, "val_mean_dice")
    assert [m.step for m in dice_history] == [0, 1, 2, 3]
    assert runs["ce_dice_plateau"][2].data.params["scheduler.monitor"] == "val_miou"


@pytest.mark.slow
def test_learning_rate_is_logged_every_epoch(recipe_runs):
    client, runs = recipe_runs
    for name, expected in EXPECTED_LEARNING_RATES.items():
        history = client.get_metric_history(runs[name][2].info.run_id, "learning_rate")
        assert [m.step for m in history] == list(range(len(expected))), name
        assert [m.value for m in history] == pytest.approx(expected, rel=1e-6), name


@pytest.mark.slow
def test_auto_class_weights_are_the_training_masks_inverse_frequencies(recipe_runs):
    _, runs = recipe_runs
    cfg, _, mlflow_run = runs["ce_auto_constant"]
    masks = load_splits(cfg.data, cfg.trainer.val_fraction, cfg.seed)["train"].masks
    iris_pixels = int((masks == 1).sum())
    background_pixels = masks.size - iris_pixels
    params = mlflow_run.data.params
    assert float(params["class_weight_background"]) == pytest.approx(masks.size / (2 * background_pixels))
    assert float(params["class_weight_iris"]) == pytest.approx(masks.size / (2 * iris_pixels))
    assert params["loss.class_weights"] == "auto"
    listed = runs["lovasz_early_stop"][2].data.params
    assert (float(listed["class_weight_background"]), float(listed["class_weight_iris"])) == (1.0, 4.0)
    assert not any(key.startswith("class_weight_") for key in runs["dice_cosine"][2].data.params)


@pytest.mark.slow
def test_early_stopping_stops_on_a_stall_and_ends_with_the_best_epoch(recipe_runs):
    client, runs = recipe_runs
    _, _, mlflow_run = runs["lovasz_early_stop"]
    run_id = mlflow_run.info.run_id
    # 4 epochs asked, patience 1: epoch 0 is the best, epoch 1 the stall that stops the run
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [0, 1]
    assert mlflow_run.data.metrics["best_epoch"] == 0
    epoch_val_miou = [m.value for m in client.get_metric_history(run_id, "val_miou") if m.step < 2]
    assert mlflow_run.data.metrics["val_miou"] == pytest.approx(epoch_val_miou[0], abs=1e-6)


@pytest.mark.slow
def test_each_runs_best_model_loads_and_gives_the_logged_metrics(recipe_runs):
    """best.keras of every loss loads without custom_objects; evaluated, it gives the logged val metrics."""
    _, runs = recipe_runs
    for name, (cfg, run_dir, mlflow_run) in runs.items():
        model = keras.models.load_model(run_dir / "best.keras")
        val = load_splits(cfg.data, cfg.trainer.val_fraction, cfg.seed)["val"]
        got = evaluate(model, make_dataset(val, 8, training=False), 2, ["background", "iris"], None)
        for key in ("miou", "mean_dice", "e1"):
            assert mlflow_run.data.metrics[f"val_{key}"] == pytest.approx(got[key], abs=1e-6), (name, key)


def test_val_fraction_holds_out_training_images_by_seed():
    cfg = compose_config([*TINY, *NO_VAL])
    splits = load_splits(cfg.data, 0.25, seed=42)
    train, val = splits["train"], splits["val"]
    assert (len(train), len(val), len(splits["test"])) == (12, 4, 4)
    assert sorted(train.names + val.names) == [f"{i:05d}" for i in range(16)]
    assert load_splits(cfg.data, 0.25, seed=42)["val"].names == val.names
    assert load_splits(cfg.data, 0.25, seed=7)["val"].names != val.names


def test_held_out_samples_keep_their_image_mask_and_name():
    # sample i: every image pixel is i, every mask pixel i % 2, name s<i>
    count = 10
    images = np.broadcast_to(np.arange(count, dtype=np.uint8)[:, None, None, None], (count, 2, 2, 3)).copy()
    masks = np.broadcast_to((np.arange(count) % 2).astype(np.uint8)[:, None, None], (count, 2, 2)).copy()
    test = Split(images[:1], masks[:1], ("t0",))
    splits = hold_out_validation(
        {"train": Split(images, masks, tuple(f"s{i}" for i in range(count))), "test": test}, 0.3, seed=1
    )
    assert (len(splits["train"]), len(splits["val"])) == (7, 3) and splits["test"] is test
    for split in (splits["train"], splits["val"]):
        ids = [int(name[1:]) for name in split.names]
        assert ids == sorted(ids)
        np.testing.assert_array_equal(split.images[:, 0, 0, 0], ids)
        np.testing.assert_array_equal(split.masks[:, 0, 0], np.array(ids) % 2)


@pytest.mark.parametrize(
    "overrides, fraction, match",
    [
        (NO_VAL[:1], None, r"val is missing"),
        ([], 0.25, r"already has a val split \(8 images\)"),
        (NO_VAL[:1], 0.01, r"val_fraction=0.01 of 16 training images leaves no validation"),
    ],
)
def test_val_split_problems_are_user_errors(overrides, fraction, match):
    cfg = compose_config([*TINY, *overrides])
    with pytest.raises(UserError, match=match):
        load_splits(cfg.data, fraction, seed=0)


def callbacks_of(overrides: list[str], history=None) -> list[keras.callbacks.Callback]:
    return build_callbacks(compose_config(overrides).callbacks, history)


def test_recipe_callbacks_follow_the_config():
    default = callbacks_of([])
    assert [type(c) for c in default] == [keras.callbacks.LearningRateScheduler]
    plateau, stopping = callbacks_of(["scheduler=plateau", "trainer.early_stopping.patience=5"])
    assert isinstance(plateau, keras.callbacks.ReduceLROnPlateau)
    assert (plateau.monitor, plateau.mode) == ("val_miou", "max")
    assert isinstance(stopping, keras.callbacks.EarlyStopping)
    assert (stopping.monitor, stopping.mode, stopping.patience) == ("val_miou", "max", 5)
    # restoring belongs to trainer.restore_best (training.fit reloads best.keras)
    assert stopping.restore_best_weights is False


def test_one_trainer_monitor_drives_plateau_and_early_stopping():
    monitor = ["trainer.monitor.name=val_loss", "trainer.monitor.mode=min"]
    plateau, stopping = callbacks_of(["scheduler=plateau", "trainer.early_stopping.patience=2", *monitor])
    assert (plateau.monitor, plateau.mode) == ("val_loss", "min")
    assert (stopping.monitor, stopping.mode) == ("val_loss", "min")


def test_callbacks_are_composed_from_config_entries():
    added = callbacks_of(
        ["+callbacks.epochs_csv._target_=keras.callbacks.CSVLogger", "+callbacks.epochs_csv.filename=e.csv"]
    )
    assert [type(c) for c in added] == [keras.callbacks.LearningRateScheduler, keras.callbacks.CSVLogger]
    assert added[1].filename == "e.csv"
    assert callbacks_of(["callbacks=none", "trainer.early_stopping.patience=5"]) == []
    assert callbacks_of(["callbacks.lr_schedule=null"]) == []


def test_early_stopping_of_a_resumed_run_counts_on_from_its_earlier_epochs():
    overrides = ["trainer.early_stopping.patience=2"]
    # best 0.6 at epoch 1, one epoch (0.55) waited since
    stopping = callbacks_of(overrides, history={"val_miou": [0.5, 0.6, 0.55], "loss": [3.0, 2.0, 1.0]})[-1]
    stopping.set_model(keras.Sequential())
    stopping.on_train_begin()
    assert (stopping.best, stopping.wait) == (0.6, 1)
    stopping.on_epoch_end(3, {"val_miou": 0.58})
    assert stopping.model.stop_training
    fresh = callbacks_of(overrides)[-1]
    fresh.set_model(keras.Sequential())
    fresh.on_train_begin()
    fresh.on_epoch_end(0, {"val_miou": 0.58})
    assert (fresh.best, fresh.wait) == (0.58, 0) and not getattr(fresh.model, "stop_training", False)


def test_cosine_schedule_without_warm_up_by_hand():
    scheduler = callbacks_of(["scheduler=cosine", "trainer.epochs=4", "scheduler.min_lr=1e-5"])[0]
    rates = [scheduler.schedule(epoch) for epoch in range(4)]
    expected = [1e-5 + (LR - 1e-5) * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)]
    assert rates == pytest.approx(expected)
    assert np.all(np.diff(rates) < 0)
