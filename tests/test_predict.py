"""`python -m ssnets.predict` end to end: a run trained a few steps segments new images of mixed sizes.

The tests marked slow share one training run and one prediction (about 2.5 min on 2 cores).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from skimage import io as skio
from skimage.transform import resize

from ssnets.common.errors import UserError
from ssnets.data.images import mask_to_labels
from ssnets.data.iris import render_sample, sample_rng
from ssnets.data.types import MaskSpec
from ssnets.predict import run_prediction
from ssnets.task.metrics import confusion_matrix, segmentation_metrics
from ssnets.tracking.artifacts import load_model

from conftest import TINY, compose_config, run_cli

# (height, width) of the new images; the first is the model's own input size, the last is stored grey.
SIZES = [(64, 64), (100, 80), (48, 48), (97, 130), (75, 75)]
NUM_CLASSES = 2


def predict_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ssnets.predict", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny MobileNetV2-UNet run, logged to its own MLflow store."""
    work = tmp_path_factory.mktemp("trained")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    result = run_cli(
        [
            *TINY,
            "model=mobilenet_unet",
            "augmentation=none",
            f"logger.tracking_uri={uri}",
            "logger.experiment_name=predict",
            f"hydra.run.dir={work / 'run'}",
        ],
        cwd=work,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("predict").experiment_id])
    return SimpleNamespace(work=work, uri=uri, run_id=run.info.run_id, run_dir=work / "run")


@pytest.fixture(scope="module")
def new_images(tmp_path_factory) -> Path:
    """Synthetic eyes at SIZES with 0/255 masks, laid out as img/ and mask/ like a real split."""
    root = tmp_path_factory.mktemp("new")
    (root / "img").mkdir()
    (root / "mask").mkdir()
    for index, shape in enumerate(SIZES):
        image, mask = render_sample(sample_rng(99, 0, index), 128)
        image = np.round(resize(image, shape, order=1, preserve_range=True)).astype(np.uint8)
        mask = resize(mask, shape, order=0, preserve_range=True, anti_aliasing=False).astype(np.uint8)
        if index == len(SIZES) - 1:
            image = image[..., 0]
        skio.imsave(root / "img" / f"eye{index}.png", image, check_contrast=False)
        skio.imsave(root / "mask" / f"eye{index}.png", mask * 255, check_contrast=False)
    return root


@pytest.fixture(scope="module")
def prediction(trained, new_images, tmp_path_factory):
    """predict from the MLflow run id, in batches of 2, with probabilities."""
    output = tmp_path_factory.mktemp("prediction") / "out"
    result = predict_cli(
        [
            f"run={trained.run_id}",
            f"tracking_uri={trained.uri}",
            f"input={new_images}",
            f"output={output}",
            "probabilities=true",
            "batch_size=2",
        ],
        cwd=trained.work,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return SimpleNamespace(output=output, log=result.stdout + result.stderr)


def names(new_images: Path) -> list[str]:
    return sorted(path.stem for path in (new_images / "img").iterdir())


@pytest.mark.slow
def test_every_image_gets_a_mask_and_an_overlay_at_its_own_size(prediction, new_images):
    for name in names(new_images):
        height, width = skio.imread(new_images / "img" / f"{name}.png").shape[:2]
        mask = skio.imread(prediction.output / "mask" / f"{name}.png")
        assert mask.shape == (height, width)
        assert set(np.unique(mask)) <= set(range(NUM_CLASSES))
        assert skio.imread(prediction.output / "overlay" / f"{name}.png").shape == (height, width, 3)


@pytest.mark.slow
def test_probabilities_are_class_maps_whose_argmax_is_the_mask(prediction, new_images):
    for name in names(new_images):
        probabilities = np.load(prediction.output / "probabilities" / f"{name}.npy")
        mask = skio.imread(prediction.output / "mask" / f"{name}.png")
        assert probabilities.shape == (*mask.shape, NUM_CLASSES) and probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-4)
        np.testing.assert_array_equal(np.argmax(probabilities, axis=-1), mask)


@pytest.mark.slow
def test_evaluation_equals_the_metrics_module_on_the_written_masks(prediction, new_images):
    total = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    for name in names(new_images):
        truth_path = new_images / "mask" / f"{name}.png"
        truth = mask_to_labels(skio.imread(truth_path), MaskSpec(NUM_CLASSES), truth_path)
        total += confusion_matrix(truth, skio.imread(prediction.output / "mask" / f"{name}.png"), NUM_CLASSES)
    expected = segmentation_metrics(total, ["class_0", "class_1"])
    reported = json.loads((prediction.output / "metrics.json").read_text())
    assert reported == pytest.approx(expected, nan_ok=True)
    assert f"mIoU {expected['miou']:.4f}, E1 {100 * expected['e1']:.2f}%" in prediction.log


@pytest.mark.slow
def test_image_at_the_model_size_gets_the_saved_models_own_prediction(prediction, trained, new_images):
    """Preprocessing comes from the model: predict's mask is argmax of best.keras on the raw pixels."""
    model = load_model(str(trained.run_dir))
    image = skio.imread(new_images / "img" / "eye0.png").astype(np.float32)
    expected = np.argmax(model.predict_on_batch(image[None]), axis=-1)[0]
    np.testing.assert_array_equal(skio.imread(prediction.output / "mask" / "eye0.png"), expected)


@pytest.mark.slow
def test_one_file_from_a_keras_path_writes_no_metrics(trained, new_images, tmp_path):
    cfg = compose_config(
        [f"run={trained.run_dir / 'best.keras'}", f"input={new_images / 'img' / 'eye1.png'}", f"output={tmp_path}"],
        config_name="predict",
    )
    assert run_prediction(cfg) is None
    assert skio.imread(tmp_path / "mask" / "eye1.png").shape == SIZES[1]
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "probabilities").exists()


def test_a_missing_input_is_a_user_error(tmp_path):
    cfg = compose_config(["run=anything", f"input={tmp_path / 'nowhere'}", f"output={tmp_path}"], config_name="predict")
    with pytest.raises(UserError, match="nowhere does not exist"):
        run_prediction(cfg)


def test_an_unknown_run_is_one_line_without_traceback(new_images, tmp_path):
    result = predict_cli(
        [f"run={tmp_path / 'no_such_run'}", f"input={new_images}", f"output={tmp_path / 'out'}"], tmp_path
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "no_such_run is neither an MLflow run id" in output
    assert "Traceback" not in output
