"""A second synthetic domain for recipe measurements: electron-microscopy-like cell membranes.

    python scripts/cells_dataset.py --out /tmp/cells --num-train 24 --num-val 30 --image-size 256

Writes root/{train,val}/{img,mask}/NNNNN.png in ssnets' folder layout (masks: 1 =
membrane, 0 = cell interior, as in the ISBI 2012 EM segmentation challenge), so
`data=folder data.root=/tmp/cells` trains on it. Cells are a jittered Voronoi
tessellation; membranes are its boundaries drawn 2-5 px wide with wavy edges;
interiors carry textured cytoplasm and dark organelles (mitochondria, vesicles) that
are not membrane; then blur, uneven illumination and noise. Unlike the iris set it
has no fixed layout (cells fill the frame at any orientation), so it tells whether a
recipe that holds on iris also holds on images of another kind. Deterministic per seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import draw, filters, io, morphology, segmentation

SPLITS = ("train", "val")


def render_cells(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 (size, size), membrane mask uint8 {0, 1})."""
    cell_diameter = rng.uniform(28, 60)
    count = int((size / cell_diameter) ** 2 * 1.3)
    labels = np.zeros((size, size), np.int32)
    centres = rng.uniform(-0.1 * size, 1.1 * size, (count, 2))
    rows, cols = np.indices((size, size))
    # A warped distance makes the cells irregular rather than straight-edged polygons.
    warp = np.stack([filters.gaussian(rng.normal(0, 1, (size, size)), 12) for _ in range(2)]) * cell_diameter * 2.5
    distance = np.full((size, size), np.inf)
    for index, (row, col) in enumerate(centres, start=1):
        d = np.hypot(rows + warp[0] - row, cols + warp[1] - col)
        closer = d < distance
        labels[closer], distance[closer] = index, d[closer]
    boundary = segmentation.find_boundaries(labels, mode="thick")
    membrane = morphology.dilation(boundary, morphology.disk(int(rng.integers(1, 3))))

    cytoplasm = 0.62 + 0.08 * filters.gaussian(rng.normal(0, 1, (size, size)), 2) / 0.1
    cytoplasm += 0.05 * np.sin(labels * 1.7)  # cells differ a little in density
    image = np.clip(cytoplasm, 0, 1)
    for _ in range(int(rng.integers(count, 3 * count))):  # organelles: dark, inside cells, not membrane
        centre = rng.uniform(0, size, 2)
        radii = rng.uniform(2, 7), rng.uniform(2, 12)
        rr, cc = draw.ellipse(*centre, *radii, shape=(size, size), rotation=rng.uniform(0, np.pi))
        keep = ~membrane[rr, cc]
        image[rr[keep], cc[keep]] = rng.uniform(0.25, 0.45)
    image[membrane] = rng.uniform(0.08, 0.2) + 0.05 * rng.normal(0, 1, membrane.sum())

    image = filters.gaussian(image, rng.uniform(0.6, 1.6))
    light = 1 + rng.uniform(0, 0.3) * ndimage.zoom(rng.normal(0, 1, (4, 4)), size / 4, order=3)[:size, :size]
    image = np.clip(image * light + rng.normal(0, rng.uniform(0.02, 0.07), (size, size)), 0, 1)
    return np.round(image * 255).astype(np.uint8), membrane.astype(np.uint8)


def write_split(root: Path, split: str, count: int, size: int, seed: int) -> None:
    for kind in ("img", "mask"):
        (root / split / kind).mkdir(parents=True, exist_ok=True)
    for index in range(count):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split), index)))
        image, mask = render_cells(rng, size)
        io.imsave(root / split / "img" / f"{index:05d}.png", image, check_contrast=False)
        io.imsave(root / split / "mask" / f"{index:05d}.png", mask * np.uint8(255), check_contrast=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--num-train", type=int, default=24)
    parser.add_argument("--num-val", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for split, count in (("train", args.num_train), ("val", args.num_val)):
        write_split(args.out, split, count, args.image_size, args.seed)
    print(f"Wrote {args.num_train} train and {args.num_val} val images to {args.out}")


if __name__ == "__main__":
    main()
