"""Bad input stops before any training with one sentence that names the value and says what to do.

The checks run in-process through the config the command line composes;
test_failures and test_run prove the CLI prints such a sentence without a
traceback and exits 1. Bad image and mask files are tested in test_folder.
"""

from __future__ import annotations

import numpy as np
import pytest
from hydra.errors import ConfigCompositionException
from mlflow.tracking import MlflowClient
from skimage import io as skio

from ssnets.common.errors import UserError
from ssnets.data import load_splits
from ssnets.models import build_model
from ssnets.training import validation
from ssnets.training.job import train

from conftest import TINY, compose_config, run_cli


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.image_size=abc", r"^data.image_size='abc' must be a whole number of at least 1\.$"),
        ("data.image_size=-64", r"^data.image_size=-64 must be a whole number"),
        ("trainer.epochs=0", r"^trainer.epochs=0 must be a whole number of at least 1\.$"),
        ("data.batch_size=2.5", r"^data.batch_size=2.5 must be a whole number"),
        ("optimizer.lr=-0.001", r"^optimizer.lr=-0.001 must be a number above 0, e.g. optimizer.lr=1e-4\.$"),
        ("optimizer.lr=fast", r"^optimizer.lr='fast' must be a number above 0"),
        (
            "data.num_classes=3",
            r"^data.class_names lists 2 names but data.num_classes is 3; give one name per class\.$",
        ),
    ],
)
def test_bad_config_values(override, message):
    with pytest.raises(UserError, match=message):
        validation.check_config(compose_config([*TINY, override]))


def test_data_root_not_given():
    with pytest.raises(UserError, match=r"^data.root has no value; set it on the command line, e.g. data.root=\.\.\.$"):
        validation.check_config(compose_config(["data=folder"]))


def test_batch_larger_than_the_training_set():
    cfg = compose_config([*TINY, "data.batch_size=32"])
    with pytest.raises(
        UserError, match=r"^data.batch_size=32 is larger than the 16 training images; use data.batch_size=16"
    ):
        validation.check_splits(cfg.data, load_splits(cfg.data, None, cfg.seed))


def build(*overrides: str):
    cfg = compose_config([*TINY, *overrides])
    return build_model(cfg.model, (cfg.data.image_size,) * 2 + (3,), cfg.data.num_classes, cfg.trainer.l2)


def test_image_size_the_model_cannot_take():
    with pytest.raises(UserError, match=r"^image_size 70 is not divisible by 32, which .* needs; use e.g. 64 or 96\.$"):
        build("data.image_size=70")


def test_missing_weights_file(tmp_path):
    missing = tmp_path / "encoder.weights.h5"
    with pytest.raises(UserError, match=rf"^Weights file {missing} does not exist\.$"):
        build("model=mobilenet_unet", f"model.weights={missing}")


def test_unknown_key_names_it_and_how_to_add_one():
    with pytest.raises(
        ConfigCompositionException,
        match=r"Could not override 'trainer.nokey'.\nTo append to your config use \+trainer.nokey=1",
    ):
        compose_config(["trainer.nokey=1"])


def test_bad_data_file_fails_the_run_before_training(tmp_path, tracking_uri, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "data"
    for split in ("train", "val"):
        for kind in ("img", "mask"):
            (root / split / kind).mkdir(parents=True)
        skio.imsave(root / split / "img" / "a.png", np.zeros((64, 64, 3), np.uint8), check_contrast=False)
        skio.imsave(root / split / "mask" / "a.png", np.zeros((64, 64), np.uint8), check_contrast=False)
    (root / "val" / "img" / "a.png").write_bytes(b"\x89PNG truncated")
    cfg = compose_config(
        [
            "data=folder",
            f"data.root={root}",
            "data.image_size=64",
            "data.batch_size=1",
            f"logger.tracking_uri={tracking_uri}",
            "logger.experiment_name=bad",
        ]
    )
    with pytest.raises(UserError, match=r"^Cannot read .*val/img/a.png \(not a readable image: corrupt, truncated"):
        train(cfg, tmp_path / "run")
    client = MlflowClient(tracking_uri)
    [failed] = client.search_runs([client.get_experiment_by_name("bad").experiment_id])
    assert failed.info.status == "FAILED"
    assert failed.data.tags["failure_reason"].startswith("UserError: Cannot read")
    assert failed.data.metrics == {}


def test_unknown_model_lists_the_choices_without_a_traceback(tmp_path):
    result = run_cli(["model=resnet", f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Could not find 'model/resnet'" in output
    assert "fast_fcn8" in output and "mobilenet_unet" in output
    assert "Traceback" not in output
