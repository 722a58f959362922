"""How much mIoU a stride-8 output can reach on the synthetic iris masks, per input size.

FCN8 predicts class logits on a grid 8x coarser than its input and
interpolates them to full size, so small inputs cap its mIoU whatever the
training. For each mask this fits the coarse logit grid whose bilinear
upsampling best matches the mask's signed distance (clipped to +-1 pixel, least
squares) and scores the thresholded result: a lower bound of that cap.

    python scripts/resolution_ceiling.py --sizes 96 128 160 --count 60
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage

from ssnets.data.iris import render_sample, sample_rng
from ssnets.task.metrics import confusion_matrix, segmentation_metrics

VAL_SPLIT = 1  # sample_rng's split index of the val split


def bilinear_matrix(cells: int, stride: int) -> np.ndarray:
    """(cells*stride, cells) 1-D bilinear interpolation (half-pixel centres, edge clamped)."""
    matrix = np.zeros((cells * stride, cells))
    for row in range(cells * stride):
        position = (row + 0.5) / stride - 0.5
        left = int(np.floor(position))
        weight = position - left
        for column, share in ((left, 1.0 - weight), (left + 1, weight)):
            matrix[row, min(max(column, 0), cells - 1)] += share
    return matrix


def best_coarse_prediction(mask: np.ndarray, fit: np.ndarray, upsample: np.ndarray) -> np.ndarray:
    inside = mask.astype(bool)
    distance = ndimage.distance_transform_edt(inside) - ndimage.distance_transform_edt(~inside)
    logits = fit @ np.clip(distance, -1.0, 1.0).ravel()
    return (upsample @ logits).reshape(mask.shape) > 0


def ceiling(size: int, stride: int, count: int, seed: int) -> float:
    upsample = np.kron(*(2 * [bilinear_matrix(size // stride, stride)]))
    fit = np.linalg.pinv(upsample)
    masks = np.stack([render_sample(sample_rng(seed, VAL_SPLIT, index), size)[1] for index in range(count)])
    predictions = np.stack([best_coarse_prediction(mask, fit, upsample) for mask in masks]).astype(np.uint8)
    return segmentation_metrics(confusion_matrix(masks, predictions, 2, None), ["background", "iris"])["miou"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 128, 160])
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--count", type=int, default=60, help="val masks per size")
    parser.add_argument("--seed", type=int, default=0, help="data.seed of the synthetic set")
    args = parser.parse_args()
    print(f"| image size | stride-{args.stride} mIoU ceiling ({args.count} val masks) |\n|---|---|")
    for size in args.sizes:
        print(f"| {size} | {ceiling(size, args.stride, args.count, args.seed):.4f} |", flush=True)


if __name__ == "__main__":
    main()
