"""Pretraining: `model.weights=` a run id, a runs:/ URI, a run directory or a .keras file starts a run from another.

The fast tests log a model through the MLflow tracker (as every run does) and
resolve it with `ssnets.tracking.artifacts.local_weights`; the slow one trains a
2-class synthetic iris run and fine-tunes it on a 3-class folder of images, as
the README tells users with few real images to do.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from mlflow import MlflowClient
from omegaconf import OmegaConf
from skimage import io as skio

from ssnets.common.errors import UserError
from ssnets.data import iris
from ssnets.models import build_model
from ssnets.models.layers import walk_layers
from ssnets.tracking.artifacts import load_model, local_weights
from ssnets.tracking.mlflow_tracker import MlflowTracker
from ssnets.training import job

from conftest import TINY, compose_config

SIZE = 64
SMALL_MODEL = ["model=mobilenet_unet", "model.conv_type=ds"]


def layer_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    return {layer.name: layer.get_weights() for layer in walk_layers(model) if layer.weights}


@pytest.fixture(scope="module")
def logged_model(tmp_path_factory) -> tuple[str, str, keras.Model]:
    """(tracking URI, run id, model) of a run that logged a 2-class MobileNetV2-UNet the way training does."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    model_cfg = compose_config(SMALL_MODEL).model
    model = build_model(model_cfg, (SIZE, SIZE, 3), 2, 0.0)
    tracker = MlflowTracker(tracking_uri=uri, experiment_name="pretraining")
    with tracker.start({}) as run:
        run.log_model(model, input_example=np.zeros((1, SIZE, SIZE, 3), np.float32))
    return uri, run.run_id, model


@pytest.mark.parametrize("form", ["run id", "runs:/ URI"])
def test_a_run_id_or_uri_becomes_a_local_keras_file_for_the_block(logged_model, form):
    uri, run_id, model = logged_model
    reference = run_id if form == "run id" else f"runs:/{run_id}/model"
    model_cfg = compose_config([*SMALL_MODEL, f"model.weights={reference}"]).model
    with local_weights(model_cfg, uri) as resolved:
        path = Path(resolved.weights)
        assert path.suffix == ".keras" and path.is_file()
        assert model_cfg.weights == reference  # the run's own config keeps what the user wrote
        downloaded = keras.models.load_model(path, compile=False)
    assert not path.exists()  # the download lived only as long as the block
    for name, weights in layer_weights(model).items():
        for ours, theirs in zip(layer_weights(downloaded)[name], weights, strict=True):
            np.testing.assert_array_equal(ours, theirs)


def test_a_run_directory_gives_its_best_model_and_files_pass_through(tmp_path):
    run_dir = tmp_path / "outputs" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "best.keras").write_bytes(b"stand-in: only the path is looked at")
    for weights, expected in ((str(run_dir), str(run_dir / "best.keras")), (None, None), ("imagenet", "imagenet")):
        model_cfg = OmegaConf.create({"name": "m", "weights": weights})
        with local_weights(model_cfg) as resolved:
            assert resolved.weights == expected


def test_an_unknown_run_stops_with_one_sentence_naming_the_store(logged_model):
    uri, _, _ = logged_model
    model_cfg = OmegaConf.create({"weights": "0123456789abcdef0123456789abcdef"})
    with pytest.raises(
        UserError, match=rf"^Cannot download model.weights=runs:/0123456789abcdef.*from the MLflow store {uri}"
    ):
        with local_weights(model_cfg, uri):
            pass


def write_three_class_folder(root: Path, size: int, counts: dict[str, int]) -> None:
    """Eye images with masks 0 background, 1 iris, 2 pupil (a user's own labelling)."""
    for split_index, (split, count) in enumerate(counts.items()):
        for kind in ("img", "mask"):
            (root / split / kind).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            image, mask, geo = iris.render_with_geometry(iris.sample_rng(11, split_index, index), size, "nir")
            rows, cols = np.mgrid[:size, :size]
            gx, gy = geo.to_iris_frame((cols + 0.5) * geo.pixel_aspect, rows + 0.5)
            pupil = np.hypot(gx - geo.pupil_offset[0], gy - geo.pupil_offset[1]) < geo.pupil_radius
            labels = np.where(pupil, 2, mask).astype(np.uint8)
            skio.imsave(root / split / "img" / f"eye{index}.png", image, check_contrast=False)
            skio.imsave(root / split / "mask" / f"eye{index}.png", labels, check_contrast=False)


@pytest.mark.slow
def test_a_synthetic_run_starts_a_three_class_run_on_a_folder(tmp_path, tracking_uri):
    # 1. Pretrain on synthetic iris (2 classes) and log the model.
    pretrain = compose_config(
        [*TINY, *SMALL_MODEL, f"logger.tracking_uri={tracking_uri}", "logger.experiment_name=pretrain"]
    )
    job.train(pretrain, tmp_path / "pretrain")
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("pretrain").experiment_id])
    pretrained = load_model(run.info.run_id, tracking_uri)

    # 2. Fine-tune on a user's folder with 3 classes, starting from that run by its id.
    root = tmp_path / "real"
    write_three_class_folder(root, 80, {"train": 8, "val": 4})
    folder_tiny = [override for override in TINY if not override.startswith("data.num_")]  # iris-only keys
    finetune = compose_config(
        [
            *folder_tiny,
            *SMALL_MODEL,
            "data=folder",
            f"data.root={root}",
            "data.image_size=64",
            "data.batch_size=4",
            "data.num_classes=3",
            "data.class_names=[background,iris,pupil]",
            f"model.weights={run.info.run_id}",
            f"logger.tracking_uri={tracking_uri}",
            "logger.experiment_name=finetune",
        ]
    )
    with pytest.warns(UserWarning, match="left at their initialisation: score_upconv"):
        setup = job.set_up(finetune)
    started = layer_weights(setup.model)
    for name, weights in layer_weights(pretrained).items():
        if name != "score_upconv":  # the head is sized for 3 classes now
            for ours, theirs in zip(started[name], weights, strict=True):
                np.testing.assert_array_equal(ours, theirs)
    assert started["score_upconv"][-1].shape == (3,)  # its bias: one per class

    metrics = job.train(finetune, tmp_path / "finetune")
    assert {"val_iou_background", "val_iou_iris", "val_iou_pupil"} <= set(metrics)
    (tuned,) = client.search_runs([client.get_experiment_by_name("finetune").experiment_id])
    assert tuned.info.status == "FINISHED"
    assert tuned.data.params["model.weights"] == run.info.run_id
