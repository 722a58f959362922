"""How a trained iris model does on domains it was not trained on, and on the failure modes seen on real eyes.

    python scripts/iris_domain_check.py outputs/2026-12-02/01-00-00 --count 120
    python scripts/iris_domain_check.py best.keras --folder old=/tmp/old_nir --folder casia=/data/casia_masks

For each synthetic domain (near-infrared and visible light, drawn with a seed
no dataset uses) it reports iris IoU over the whole set, the per-image median
and worst tenth, and the share of pixels predicted iris in three places where
real predictions went wrong: the band of sclera just outside the limbus
(`limbus_spill`), the part of the iris disk hidden by the upper lid
(`above_lid`) and the skin, brow and hair more than two iris radii from the
eye (`far_false_positive`); NIR images are also split by limbus contrast (the
outer iris over the sclera, `low_contrast` above 0.8). `--folder NAME=DIR`
adds a folder with img/ and mask/ (masks 0/1 or 0/255), scored by IoU only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import skimage.io
import skimage.transform

from ssnets.data.iris import render_with_geometry, sample_rng
from ssnets.data.iris.geometry import EyeGeometry
from ssnets.tracking.artifacts import load_model, model_input_size

SEED = 987_654  # no dataset of the project is drawn with it
LOW_CONTRAST = 0.8


def region_masks(geo: EyeGeometry, size: int) -> dict[str, np.ndarray]:
    """Boolean (size, size) regions of one synthetic image, from the geometry it was drawn with."""
    rows, cols = np.mgrid[:size, :size]
    x, y = (cols + 0.5) * geo.pixel_aspect, rows + 0.5
    gx, gy = geo.to_iris_frame(x, y)
    ring = np.hypot(gx, gy) / geo.iris_radius
    along, across = geo.to_eye_frame(x, y)
    u = along / geo.half_width
    opening = (across > geo.upper_lid(u)) & (across < geo.lower_lid(u)) & (np.abs(u) < 1)
    return {
        "limbus_spill": opening & (ring > 1.05) & (ring < 1.35),
        "above_lid": (ring < 0.95) & (across < geo.upper_lid(u) - 1),
        "far_false_positive": ring > 2.0,
        "outer_iris": opening & (ring > 0.75) & (ring < 0.95),
        "sclera": opening & (ring > 1.3) & (np.abs(u) < 0.85),
    }


def predict_iris(model, images: np.ndarray, batch: int = 16) -> np.ndarray:
    chunks = [model.predict_on_batch(images[i : i + batch].astype(np.float32)) for i in range(0, len(images), batch)]
    return np.concatenate([np.asarray(c) for c in chunks]).argmax(-1) == 1


def iou_summary(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    intersection = (predicted & truth).sum(axis=(1, 2))
    union = (predicted | truth).sum(axis=(1, 2))
    per_image = np.where(union > 0, intersection / np.maximum(union, 1), 1.0)
    false_positive, missed = (predicted & ~truth).sum(), (~predicted & truth).sum()
    return {
        "iris_iou": float(intersection.sum() / max(union.sum(), 1)),
        "median_image_iou": float(np.median(per_image)),
        "worst_tenth_iou": float(np.quantile(per_image, 0.1)),
        "false_positive_to_missed": float(false_positive / max(missed, 1)),
    }


def synthetic_report(model, size: int, mode: str, count: int) -> dict[str, float]:
    samples = [render_with_geometry(sample_rng(SEED, 0, index), size, mode) for index in range(count)]
    images = np.stack([s[0] for s in samples])
    truth = np.stack([s[1] for s in samples]).astype(bool)
    predicted = predict_iris(model, images)
    report = iou_summary(predicted, truth)
    spills = {name: [0, 0] for name in ("limbus_spill", "above_lid", "far_false_positive")}
    low_contrast = []
    for index, (image, _, geo) in enumerate(samples):
        regions = region_masks(geo, size)
        for name, counts in spills.items():
            counts[0] += int((predicted[index] & regions[name]).sum())
            counts[1] += int(regions[name].sum())
        if mode == "nir" and regions["outer_iris"].sum() >= 10 and regions["sclera"].sum() >= 10:
            grey = image[..., 0].astype(float)
            contrast = np.median(grey[regions["outer_iris"]]) / max(np.median(grey[regions["sclera"]]), 1.0)
            if contrast > LOW_CONTRAST:
                low_contrast.append(index)
    report.update({name: hits / max(total, 1) for name, (hits, total) in spills.items()})
    if low_contrast:
        report["low_contrast_images"] = len(low_contrast)
        report["low_contrast_iou"] = iou_summary(predicted[low_contrast], truth[low_contrast])["iris_iou"]
    return report


def folder_report(model, size: int, root: Path) -> dict[str, float]:
    """IoU on a folder's images resized to the model's input (bilinear), as `ssnets.predict` feeds them."""
    names = sorted(p.name for p in (root / "img").iterdir())
    images, masks = [], []
    for name in names:
        image = skimage.io.imread(root / "img" / name)
        image = np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image[..., :3]
        mask_file = next((root / "mask").glob(Path(name).stem + ".*"))
        images.append(skimage.transform.resize(image, (size, size), order=1, preserve_range=True))
        mask = skimage.io.imread(mask_file)
        masks.append(skimage.transform.resize(mask > 0, (size, size), order=0) > 0.5)
    return iou_summary(predict_iris(model, np.stack(images)), np.stack(masks))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a .keras file, run directory, MLflow run id or runs:/ URI")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--count", type=int, default=120, help="synthetic images per domain")
    parser.add_argument("--modes", default="nir,visible")
    parser.add_argument("--folder", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--out", type=Path, help="also write the report as JSON")
    args = parser.parse_args(argv)

    model = load_model(args.run, args.tracking_uri)
    size = model_input_size(model)[0]
    report = {mode: synthetic_report(model, size, mode, args.count) for mode in args.modes.split(",") if mode}
    for item in args.folder:
        name, _, folder = item.partition("=")
        report[name] = folder_report(model, size, Path(folder))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
