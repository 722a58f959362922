"""Segment new images with a trained model:  python -m ssnets.predict run=RUN input=DIR_OR_FILE output=DIR

Images of any size are resized (bilinear) to the model's input size; the
model's preprocessing lives inside it. Its class probabilities are resized
back to the image's own size (bilinear) before the argmax, so masks have smooth
edges at any scale. For each input NAME the output gets `mask/NAME.png` (class
ids), `overlay/NAME.png` and, with `probabilities=true`, `probabilities/NAME.npy`.
An input folder with img/ and mask/ is also evaluated: mIoU, per-class IoU and
E1 over all its pixels at their original size, printed and in `metrics.json`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hydra
import keras
import numpy as np
from omegaconf import DictConfig
from skimage.transform import resize

from ssnets.common.errors import UserError, exit_on_user_error
from ssnets.data.folder import pair_files
from ssnets.data.images import (
    IMAGE_SUFFIXES,
    check_mask_size,
    mask_to_labels,
    read_file,
    resize_image,
    to_uint8_channels,
)
from ssnets.data.types import MaskSpec
from ssnets.task.metrics import confusion_matrix, segmentation_metrics
from ssnets.task.pictures import overlay, save_png
from ssnets.tracking.artifacts import load_model, model_input_size

log = logging.getLogger("ssnets.predict")

Sample = tuple[Path, Path | None]
"""An image and, when evaluating, its mask."""


def find_samples(input_path: str) -> list[Sample]:
    """The images `input_path` names, paired with masks when it is a folder with img/ and mask/."""
    path = Path(input_path).expanduser()
    if path.is_file():
        return [(path, None)]
    if not path.is_dir():
        raise UserError(
            f"input={input_path} does not exist; pass an image, a folder of images, or a folder with img/ and mask/."
        )
    if (path / "img").is_dir() and (path / "mask").is_dir():
        return pair_files(path)
    folder = path / "img" if (path / "img").is_dir() else path
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise UserError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); point input= at images.")
    stems = [p.stem for p in images]
    for image in images:
        if stems.count(image.stem) > 1:
            raise UserError(
                f"Several images in {folder} are named {image.stem}.*; their outputs would collide, so rename one."
            )
    return [(image, None) for image in images]


def read_image(path: Path, channels: int) -> np.ndarray:
    """uint8 (H, W, channels) at the file's own size, converted as training converts images."""
    return to_uint8_channels(read_file(path), channels, path)


def segment(model: keras.Model, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Class probabilities (H, W, classes) float32 for uint8 images of any sizes, each at its own size."""
    height, width, _ = model_input_size(model)
    batch = np.stack([resize_image(image, height) for image in images]).astype(np.float32)
    probabilities = keras.ops.convert_to_numpy(model.predict_on_batch(batch))
    return [resize_probabilities(p, image.shape[:2]) for p, image in zip(probabilities, images, strict=True)]


def resize_probabilities(probabilities: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if probabilities.shape[:2] == shape:
        return probabilities
    return resize(probabilities, shape, order=1).astype(np.float32)


class Writer:
    """Writes one image's outputs and returns its confusion matrix against its mask (if any)."""

    def __init__(self, output: Path, num_classes: int, probabilities: bool, ignore_index: int | None):
        self.output = output
        self.mask_spec = MaskSpec(num_classes, ignore_index)
        self.probabilities = probabilities
        for folder in ("mask", "overlay") + (("probabilities",) if probabilities else ()):
            (output / folder).mkdir(parents=True, exist_ok=True)

    def __call__(self, sample: Sample, image: np.ndarray, probabilities: np.ndarray) -> np.ndarray | None:
        image_path, mask_path = sample
        name = image_path.stem
        labels = np.argmax(probabilities, axis=-1).astype(np.uint8)
        save_png(self.output / "mask" / f"{name}.png", labels)
        save_png(self.output / "overlay" / f"{name}.png", overlay(image, labels))
        if self.probabilities:
            np.save(self.output / "probabilities" / f"{name}.npy", probabilities)
        if mask_path is None:
            return None
        truth = mask_to_labels(read_file(mask_path), self.mask_spec, mask_path)
        check_mask_size(truth.shape, labels.shape, mask_path)
        return confusion_matrix(truth, labels, self.mask_spec.num_classes, self.mask_spec.ignore_index)


def predict(
    model: keras.Model,
    samples: Sequence[Sample],
    output: Path,
    *,
    batch_size: int,
    probabilities: bool = False,
    ignore_index: int | None = None,
) -> np.ndarray | None:
    """Segment every sample in batches, writing outputs; the summed confusion matrix when masks were given."""
    _, _, channels = model_input_size(model)
    num_classes = model.output_shape[-1]
    write = Writer(output, num_classes, probabilities, ignore_index)
    progress = keras.utils.Progbar(len(samples), unit_name="image")
    total = np.zeros((num_classes, num_classes), dtype=np.int64) if samples[0][1] is not None else None
    # Threads read and write (skimage and PNG coding release the GIL) while the model runs batches.
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        for start in range(0, len(samples), batch_size):
            batch = samples[start : start + batch_size]
            images = list(pool.map(lambda sample: read_image(sample[0], channels), batch))
            for matrix in pool.map(write, batch, images, segment(model, images)):
                if total is not None:
                    total += matrix
            progress.add(len(batch))
    return total


def class_names(configured: Sequence[str] | None, num_classes: int) -> list[str]:
    if configured is None:
        return [f"class_{k}" for k in range(num_classes)]
    if len(configured) != num_classes:
        raise UserError(
            f"class_names has {len(configured)} names but the model predicts {num_classes} classes; "
            "give one name per class."
        )
    return list(configured)


def run_prediction(cfg: DictConfig) -> dict[str, float] | None:
    """What `python -m ssnets.predict` does; returns the metrics when the input had masks."""
    samples = find_samples(cfg.input)
    model = load_model(str(cfg.run), cfg.tracking_uri)
    height, width, channels = model_input_size(model)
    log.info("Segmenting %d images at %dx%dx%d with %s", len(samples), height, width, channels, cfg.run)
    output = Path(cfg.output)
    matrix = predict(
        model,
        samples,
        output,
        batch_size=cfg.batch_size,
        probabilities=cfg.probabilities,
        ignore_index=cfg.ignore_index,
    )
    log.info("Wrote masks and overlays to %s", output)
    if matrix is None:
        return None
    metrics = segmentation_metrics(matrix, class_names(cfg.class_names, model.output_shape[-1]))
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log.info(
        "mIoU %.4f, E1 %.2f%% over %d images against %s", metrics["miou"], 100 * metrics["e1"], len(samples), cfg.input
    )
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error(log):
        run_prediction(cfg)


if __name__ == "__main__":
    main()
