"""trainer.monitor: one rule for "better", used by the checkpoint, callbacks, sweeps and the comparison."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from ssnets.common.errors import UserError
from ssnets.training.checkpoint import EpochCheckpoint, Progress, read_progress
from ssnets.training.job import train
from ssnets.training.monitor import Monitor

from conftest import TINY, compose_config


def test_improvement_follows_the_mode_and_min_delta():
    higher, lower = Monitor("val_miou", "max"), Monitor("val_loss", "min")
    assert higher.improves(0.5, None) and lower.improves(0.5, None)
    assert higher.improves(0.6, 0.5) and not higher.improves(0.5, 0.6)
    assert lower.improves(0.5, 0.6) and not lower.improves(0.6, 0.5)
    assert not higher.improves(0.55, 0.5, min_delta=0.1) and lower.improves(0.3, 0.5, min_delta=0.1)
    assert not higher.improves(math.nan, None) and not higher.improves(None, 0.1)
    assert higher.best([0.2, 0.7, 0.4]) == 0.7 and lower.best([0.2, 0.7, 0.1]) == 0.1


def test_sorting_puts_the_best_first_and_missing_values_last():
    values = [0.3, None, 0.9, 0.5]
    assert sorted(values, key=Monitor("m", "max").sort_key) == [0.9, 0.5, 0.3, None]
    assert sorted(values, key=Monitor("m", "min").sort_key) == [0.3, 0.5, 0.9, None]


def test_an_unknown_mode_is_one_sentence():
    with pytest.raises(UserError, match=r"^trainer.monitor.mode='up' is not one of max, min\.$"):
        Monitor("val_miou", "up")


def dense_model() -> keras.Model:
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_the_checkpoint_keeps_the_best_epoch_by_the_monitor(tmp_path):
    """val_loss falls, rises, falls: with mode min best.keras is the third epoch's model."""
    model = dense_model()
    progress = Progress()
    checkpoint = EpochCheckpoint(tmp_path, progress, Monitor("val_loss", "min"))
    checkpoint.set_model(model)
    checkpoint.on_train_begin()
    for epoch, val_loss in enumerate([0.5, 0.7, 0.2, 0.3]):
        model.layers[-1].kernel.assign(np.full((2, 1), epoch, "float32"))
        checkpoint.on_epoch_end(epoch, {"val_loss": val_loss})
    checkpoint.on_train_end()
    assert (progress.best_epoch, progress.best_score, progress.epoch) == (2, 0.2, 4)
    best = keras.models.load_model(tmp_path / "best.keras")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(best.layers[-1].kernel), np.full((2, 1), 2.0))


def test_a_run_selects_and_returns_by_the_monitor(tmp_path):
    """trainer.monitor=val_loss/min: best.keras, best_epoch and the value a sweep job returns follow val_loss."""
    cfg = compose_config(
        [
            *TINY,
            "trainer.epochs=3",
            "logger=none",
            "trainer.monitor.name=val_loss",
            "trainer.monitor.mode=min",
            "trainer.num_preview=0",  # no pictures at all
        ]
    )
    metrics = train(cfg, tmp_path)
    assert not (tmp_path / "predictions.png").exists()
    history = read_progress(tmp_path).history["val_loss"]
    assert metrics["best_epoch"] == int(np.argmin(history))
    assert metrics["val_loss"] == pytest.approx(min(history))


def test_an_interval_writes_the_first_and_last_epoch_and_keeps_the_best_in_memory_between(tmp_path):
    """trainer.checkpoint_interval_s longer than the fit: epochs 2 and 3 are not written, yet best.keras ends
    with epoch 2's weights (the best by val_loss) and the state with all four epochs."""
    model = dense_model()
    progress = Progress()
    checkpoint = EpochCheckpoint(tmp_path, progress, Monitor("val_loss", "min"), interval_seconds=3600)
    checkpoint.set_model(model)
    checkpoint.set_params({"epochs": 4})
    checkpoint.on_train_begin()
    committed = []
    for epoch, val_loss in enumerate([0.5, 0.7, 0.2, 0.3]):
        model.layers[-1].kernel.assign(np.full((2, 1), epoch, "float32"))
        checkpoint.on_epoch_end(epoch, {"val_loss": val_loss})
        committed.append(read_progress(tmp_path).epoch)
    checkpoint.on_train_end()
    assert committed == [1, 1, 1, 4]
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == ["epoch-0004.weights.npz", "state.json"]
    assert (progress.best_epoch, read_progress(tmp_path).best_epoch) == (2, 2)
    best = keras.models.load_model(tmp_path / "best.keras")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(best.layers[-1].kernel), np.full((2, 1), 2.0))


def test_early_stopping_before_the_last_epoch_still_writes_the_epoch_it_stopped_at(tmp_path):
    model = dense_model()
    checkpoint = EpochCheckpoint(tmp_path, Progress(), Monitor("val_loss", "min"), interval_seconds=3600)
    checkpoint.set_model(model)
    checkpoint.set_params({"epochs": 10})
    checkpoint.on_train_begin()
    for epoch, val_loss in enumerate([0.5, 0.4, 0.6]):
        checkpoint.on_epoch_end(epoch, {"val_loss": val_loss})
    assert read_progress(tmp_path).epoch == 1
    checkpoint.on_train_end()
    assert read_progress(tmp_path).epoch == 3 and read_progress(tmp_path).best_epoch == 1
