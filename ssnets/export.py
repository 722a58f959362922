"""Export a trained model for serving:  python -m ssnets.export run=RUN format=savedmodel|onnx|tflite

Every format holds the whole model, preprocessing included: input `image`,
float32 raw pixels 0..255 (batch, H, W, C); output float32 class probabilities
(batch, H, W, classes). SavedModel and ONNX come from Keras' own `model.export`
(ONNX through tf2onnx), TFLite from TensorFlow's converter run on that
SavedModel. Each file is then loaded with its own runtime (TensorFlow,
onnxruntime, the TFLite interpreter), run on a few images and compared with
the Keras model; the comparison is printed and a mismatch beyond `check.atol`
makes the command exit 1.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import hydra
import keras
import numpy as np
import tensorflow as tf
from omegaconf import DictConfig, ListConfig

from ssnets.common.errors import UserError, exit_on_user_error
from ssnets.data.images import resize_image
from ssnets.predict import find_samples, read_image
from ssnets.tracking.artifacts import load_model, model_input_size

log = logging.getLogger("ssnets.export")

Predictor = Callable[[np.ndarray], np.ndarray]

# Keras exports ONNX through tf2onnx; onnxruntime checks the file.
ONNX_PACKAGES = ("tf2onnx", "onnxruntime")


def export_savedmodel(model: keras.Model, path: Path) -> None:
    model.export(str(path), format="tf_saved_model", verbose=False)


def export_onnx(model: keras.Model, path: Path) -> None:
    if not all(importlib.util.find_spec(package) for package in ONNX_PACKAGES):
        raise UserError(
            f"format=onnx needs {' and '.join(ONNX_PACKAGES)}; install them with pip install -e '.[export]'."
        )
    model.export(str(path), format="onnx", verbose=False)


def export_tflite(model: keras.Model, path: Path) -> None:
    with tempfile.TemporaryDirectory() as saved_model:
        export_savedmodel(model, Path(saved_model))
        path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(saved_model).convert())


def load_savedmodel(path: Path) -> tuple[Predictor, str]:
    serving = tf.saved_model.load(str(path)).signatures["serving_default"]
    ((name, spec),) = serving.structured_input_signature[1].items()
    ((output_name, output_spec),) = serving.structured_outputs.items()
    signature = f"{name} {spec.dtype.name} {spec.shape} -> {output_name} {output_spec.dtype.name} {output_spec.shape}"
    return lambda images: serving(**{name: tf.constant(images)})[output_name].numpy(), signature


def load_onnx(path: Path) -> tuple[Predictor, str]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (input_,), (output,) = session.get_inputs(), session.get_outputs()
    signature = f"{input_.name} {input_.type} {input_.shape} -> {output.name} {output.type} {output.shape}"
    return lambda images: session.run([output.name], {input_.name: images})[0], signature


def load_tflite(path: Path) -> tuple[Predictor, str]:
    interpreter = tf.lite.Interpreter(model_path=str(path))
    (input_,), (output,) = interpreter.get_input_details(), interpreter.get_output_details()
    signature = (
        f"{input_['name']} {input_['dtype'].__name__} {input_['shape_signature'].tolist()} -> "
        f"{output['name']} {output['dtype'].__name__} {output['shape_signature'].tolist()}"
    )

    def predict(images: np.ndarray) -> np.ndarray:
        interpreter.resize_tensor_input(input_["index"], images.shape)
        interpreter.allocate_tensors()
        interpreter.set_tensor(input_["index"], images)
        interpreter.invoke()
        return interpreter.get_tensor(output["index"])

    return predict, signature


@dataclass(frozen=True)
class Format:
    file_name: str
    write: Callable[[keras.Model, Path], None]
    load: Callable[[Path], tuple[Predictor, str]]


FORMATS = {
    "savedmodel": Format("saved_model", export_savedmodel, load_savedmodel),
    "onnx": Format("model.onnx", export_onnx, load_onnx),
    "tflite": Format("model.tflite", export_tflite, load_tflite),
}


@dataclass(frozen=True)
class Check:
    """An export's outputs against the Keras model's on the same images."""

    format: str
    path: Path
    signature: str
    images: int
    max_abs_difference: float
    label_agreement: float
    atol: float

    @property
    def passed(self) -> bool:
        return self.max_abs_difference <= self.atol

    def __str__(self) -> str:
        verdict = "OK" if self.passed else "MISMATCH"
        return (
            f"{self.format} {self.path}: {self.signature}; on {self.images} images max |exported - keras| "
            f"= {self.max_abs_difference:.1e} (tolerance {self.atol:.0e}), labels agree on "
            f"{100 * self.label_agreement:.2f}% of pixels: {verdict}"
        )


def check_images(model: keras.Model, images: str | None, count: int) -> np.ndarray:
    """float32 (N, H, W, C) at the model's input size: the given images, else `count` seeded random-pixel images."""
    height, width, channels = model_input_size(model)
    if images is None:
        return np.random.default_rng(0).integers(0, 256, (count, height, width, channels)).astype(np.float32)
    samples = find_samples(images)[:count]
    return np.stack([resize_image(read_image(path, channels), height) for path, _ in samples]).astype(np.float32)


def export(model: keras.Model, format_name: str, output: Path, images: np.ndarray, atol: float) -> Check:
    """Write `model` in `format_name` under `output`, then check it against the Keras model on `images`."""
    spec = FORMATS[format_name]
    path = output / spec.file_name
    spec.write(model, path)
    predict, signature = spec.load(path)
    expected = keras.ops.convert_to_numpy(model.predict_on_batch(images))
    exported = predict(images)
    return Check(
        format_name,
        path,
        signature,
        len(images),
        float(np.max(np.abs(exported - expected))),
        float(np.mean(np.argmax(exported, axis=-1) == np.argmax(expected, axis=-1))),
        atol,
    )


def run_export(cfg: DictConfig) -> list[Check]:
    """What `python -m ssnets.export` does: every requested format, written and checked."""
    format_names: Sequence[str] = list(cfg.format) if isinstance(cfg.format, ListConfig) else [cfg.format]
    unknown = [name for name in format_names if name not in FORMATS]
    if unknown:
        raise UserError(f"format={','.join(unknown)} is not one of {', '.join(FORMATS)}; pick one or a list of them.")
    model = load_model(str(cfg.run), cfg.tracking_uri)
    images = check_images(model, cfg.check.images, cfg.check.count)
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    checks = []
    for name in format_names:
        checks.append(export(model, name, output, images, cfg.check.atol))
        log.info("%s", checks[-1])
    return checks


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error(log):
        checks = run_export(cfg)
    if not all(check.passed for check in checks):
        log.error("An export does not reproduce the Keras model within %g; do not serve it.", cfg.check.atol)
        sys.exit(1)


if __name__ == "__main__":
    main()
