"""Command line: `python -m ssnets.data.iris --out DIR [--preview grid.png]` writes a dataset (and a preview)."""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import skimage.io
import skimage.transform

from ssnets.data.iris.appearance import MODES
from ssnets.data.iris.cache import COMPLETE_MARKER, SPLITS, write_dataset
from ssnets.data.iris.render import DEFAULT_FRAME_ASPECT, DEFAULT_MODE
from ssnets.task.pictures import overlay

log = logging.getLogger(__name__)


def preview_grid(root: Path, count: int) -> np.ndarray:
    """Up to `count` samples from the first non-empty split, each as image | iris-tinted overlay.

    Each is shown unsqueezed to its camera frame (4:3 by default), as a person sees the capture;
    the files themselves are square.
    """
    split = next(root / s for s in SPLITS if (root / s / "img").is_dir())
    frame_aspect = json.loads((root / COMPLETE_MARKER).read_text())["frame_aspect"]
    names = sorted(p.name for p in (split / "img").glob("*.png"))[:count]
    pairs = []
    for name in names:
        image = skimage.io.imread(split / "img" / name)
        mask = skimage.io.imread(split / "mask" / name) // 255
        pair = np.stack([image, overlay(image, mask)])
        width = round(image.shape[1] * frame_aspect)
        frames = skimage.transform.resize(pair, (2, image.shape[0], width), order=1, preserve_range=True)
        pairs.append(np.concatenate(list(np.round(frames).astype(np.uint8)), axis=1))
    per_row = max(1, math.ceil(math.sqrt(len(pairs) / 2)))
    blank = np.zeros_like(pairs[0])
    pairs += [blank] * (-len(pairs) % per_row)
    rows = [np.concatenate(pairs[i : i + per_row], axis=1) for i in range(0, len(pairs), per_row)]
    return np.concatenate(rows, axis=0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ssnets.data.iris",
        description="Write a synthetic iris dataset as DIR/{train,val,test}/{img,mask}/NNNNN.png.",
    )
    parser.add_argument("--out", type=Path, required=True, help="new or empty folder to write into")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--num-train", type=int, default=800)
    parser.add_argument("--num-val", type=int, default=100)
    parser.add_argument("--num-test", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mode", choices=MODES, default=DEFAULT_MODE, help="near-infrared, visible light or both")
    parser.add_argument(
        "--frame-aspect", type=float, default=DEFAULT_FRAME_ASPECT, help="camera frame width / height (4:3)"
    )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--preview", type=Path, help="also write a PNG grid of samples with their masks overlaid")
    parser.add_argument("--preview-count", type=int, default=8)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = args.out.expanduser()
    if out.exists() and any(out.iterdir()):
        parser.error(f"--out {out} is not empty; choose a new folder or remove it first.")
    if args.preview and args.num_train + args.num_val + args.num_test <= 0:
        parser.error("--preview needs at least one sample; raise --num-train.")
    out.parent.mkdir(parents=True, exist_ok=True)
    counts = {"train": args.num_train, "val": args.num_val, "test": args.num_test}
    write_dataset(out, args.image_size, counts, args.seed, args.workers, args.mode, args.frame_aspect)
    log.info("Wrote %s", out)
    if args.preview:
        skimage.io.imsave(args.preview, preview_grid(out, args.preview_count), check_contrast=False)
        log.info("Wrote preview %s", args.preview)


if __name__ == "__main__":
    main()
