"""mixed_bfloat16 on a CPU: tried in a child process first, so a kernel crash is one sentence, never an abort;
trainer.precision=auto takes it only where the child measured it faster."""

from __future__ import annotations

import json

import pytest

from ssnets.common.errors import UserError
from ssnets.training import precision

from conftest import compose_config

TINY_BUILDER = """
import keras


def build(input_shape, num_classes, **kwargs):
    inputs = keras.Input(input_shape)
    features = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    outputs = keras.layers.Conv2D(num_classes, 1, activation="softmax", dtype="float32")(features)
    return keras.Model(inputs, outputs)
"""

ABORTING_BUILDER = """
import os


def build(**kwargs):
    os.abort()  # what the oneDNN bf16 kernels did to FastFCN8 on an Intel Xeon with AMX-BF16
"""


def test_a_crash_of_the_child_stops_the_run_with_one_sentence(tmp_path, monkeypatch):
    (tmp_path / "aborting_builder.py").write_text(ABORTING_BUILDER)
    monkeypatch.chdir(tmp_path)  # the child (python -m) imports the builder from its working directory
    monkeypatch.syspath_prepend(str(tmp_path))
    cache = tmp_path / "bf16_check.json"
    cfg = compose_config(
        [
            "trainer.precision=mixed_bfloat16",
            f"trainer.bf16_check_cache={cache}",
            "model._target_=aborting_builder.build",
        ]
    )
    with pytest.raises(
        UserError, match=r"^trainer.precision=mixed_bfloat16 crashed TensorFlow's CPU kernels for fast_fcn8"
    ):
        precision.resolve_precision(cfg)
    (verdict,) = json.loads(cache.read_text()).values()
    assert verdict == {"works": False, "exit_code": -6}  # SIGABRT


@pytest.mark.slow
def test_a_working_check_is_remembered(tmp_path, monkeypatch):
    cache = tmp_path / "bf16_check.json"
    cfg = compose_config(
        ["trainer.precision=mixed_bfloat16", f"trainer.bf16_check_cache={cache}", "model=mobilenet_unet"]
    )
    precision.resolve_precision(cfg)
    verdicts = json.loads(cache.read_text())
    ((key, verdict),) = verdicts.items()
    assert verdict["works"] and verdict["exit_code"] == 0 and verdict["mixed_bfloat16"] > 0
    assert precision.cpu_model() in key

    def no_second_child(*args, **kwargs):
        raise AssertionError("the remembered verdict should have been used")

    monkeypatch.setattr(precision, "run_check", no_second_child)
    precision.resolve_precision(cfg)


def test_auto_takes_bfloat16_only_where_it_measured_faster(tmp_path, monkeypatch):
    (tmp_path / "tiny_builder.py").write_text(TINY_BUILDER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    cache = tmp_path / "bf16_check.json"
    overrides = [f"trainer.bf16_check_cache={cache}", "model._target_=tiny_builder.build", "data.image_size=32"]
    chosen = precision.resolve_precision(compose_config(["trainer.precision=auto", *overrides]))
    ((key, verdict),) = json.loads(cache.read_text()).items()
    assert "32px batch 8" in key and verdict["works"]
    speedup = verdict["float32"] / verdict["mixed_bfloat16"]
    assert chosen == ("mixed_bfloat16" if speedup >= precision.MIN_SPEEDUP else "float32")
    # What is explicitly asked for is kept as it is.
    assert precision.resolve_precision(compose_config(["trainer.precision=float32", *overrides])) == "float32"
