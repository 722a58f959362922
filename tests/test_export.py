"""`python -m ssnets.export`: every format written, reloaded with its own runtime and matching Keras.

The tests marked slow share one export of all formats (about 90 s on 2 cores).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime
import pytest
import tensorflow as tf
from skimage import io as skio

from ssnets.common.errors import UserError
from ssnets.data.iris import render_sample, sample_rng
from ssnets.export import run_export
from ssnets.models import build_model

from conftest import TINY, compose_config

SIZE = 64
# Largest |exported - keras| class probability accepted, as the command's default check.atol.
ATOL = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A 64x64 MobileNetV2-UNet saved as .keras, exported to all formats by one command, checked on iris images."""
    work = tmp_path_factory.mktemp("export")
    cfg = compose_config([*TINY, "model=mobilenet_unet"])
    model = build_model(cfg.model, (SIZE, SIZE, 3), cfg.data.num_classes, 0.0)
    model.save(work / "model.keras")
    (work / "images").mkdir()
    images = np.stack([render_sample(sample_rng(7, 0, index), SIZE)[0] for index in range(3)])
    for index, image in enumerate(images):
        skio.imsave(work / "images" / f"eye{index}.png", image, check_contrast=False)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssnets.export",
            f"run={work / 'model.keras'}",
            "format=[savedmodel,onnx,tflite]",
            f"output={work / 'out'}",
            f"check.images={work / 'images'}",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    expected = model.predict_on_batch(images.astype(np.float32))
    return SimpleNamespace(
        out=work / "out", log=result.stdout + result.stderr, images=images.astype(np.float32), expected=expected
    )


@pytest.mark.slow
def test_the_command_prints_each_formats_check(exported):
    for name, file_name in (("savedmodel", "saved_model"), ("onnx", "model.onnx"), ("tflite", "model.tflite")):
        line = next(line for line in exported.log.splitlines() if f"ssnets.export][INFO] - {name} " in line)
        assert str(exported.out / file_name) in line
        assert "on 3 images" in line and "(tolerance 1e-04)" in line and line.endswith(": OK")


@pytest.mark.slow
def test_savedmodel_has_an_image_signature_and_reproduces_keras(exported):
    serving = tf.saved_model.load(str(exported.out / "saved_model")).signatures["serving_default"]
    spec = serving.structured_input_signature[1]["image"]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, SIZE, SIZE, 3]
    (probabilities,) = serving(image=tf.constant(exported.images)).values()
    np.testing.assert_allclose(probabilities.numpy(), exported.expected, atol=ATOL)


@pytest.mark.slow
def test_onnx_reproduces_keras_in_onnxruntime(exported):
    session = onnxruntime.InferenceSession(str(exported.out / "model.onnx"), providers=["CPUExecutionProvider"])
    (input_,) = session.get_inputs()
    assert input_.name == "image" and input_.type == "tensor(float)" and input_.shape[1:] == [SIZE, SIZE, 3]
    (probabilities,) = session.run(None, {"image": exported.images})
    np.testing.assert_allclose(probabilities, exported.expected, atol=ATOL)


@pytest.mark.slow
def test_tflite_reproduces_keras_in_the_interpreter(exported):
    interpreter = tf.lite.Interpreter(model_path=str(exported.out / "model.tflite"))
    (input_,), (output,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(input_["index"], exported.images.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_["index"], exported.images)
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(output["index"]), exported.expected, atol=ATOL)


def test_an_unknown_format_is_a_user_error(tmp_path: Path):
    cfg = compose_config(
        [f"run={tmp_path / 'model.keras'}", "format=[onnx,pdf]", f"output={tmp_path}"], config_name="export"
    )
    with pytest.raises(UserError, match="format=pdf is not one of savedmodel, onnx, tflite"):
        run_export(cfg)
