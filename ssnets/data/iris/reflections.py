"""Corneal reflections (spots, rings, LED rows and windows mirrored near the pupil) and glints on the wet lid margin."""

from __future__ import annotations

import math

import numpy as np
import skimage.draw
import skimage.filters

from ssnets.data.iris.appearance import Look, rgb
from ssnets.data.iris.canvas import SUPERSAMPLING, Box, bounding_box, origin
from ssnets.data.iris.geometry import EyeGeometry

# Light sources seen on the cornea: NIR cameras carry LED illuminators (one, a pair as on
# the LG and IrisKing sensors, or a ring of them as on CASIA's), visible-light captures
# mirror lamps and windows.
NIR_REFLECTIONS = {"spot": 0.4, "ring": 0.15, "leds": 0.45}
VISIBLE_REFLECTIONS = {"spot": 0.4, "ellipse": 0.25, "ring": 0.07, "window": 0.28}


def _reflection_shape(
    rng: np.random.Generator, geo: EyeGeometry, look: Look, centre: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Subpixel (rows, cols) of one light source's reflection on the cornea; `centre` in output pixels.

    Shapes are drawn round in the scene, i.e. `aspect` times narrower in output pixels.
    """
    scale = geo.iris_radius * SUPERSAMPLING
    aspect = geo.pixel_aspect
    row, col = centre[1] * SUPERSAMPLING - 0.5, centre[0] * SUPERSAMPLING - 0.5
    kinds = NIR_REFLECTIONS if look.nir else VISIBLE_REFLECTIONS
    kind = rng.choice(list(kinds), p=list(kinds.values()))
    if kind == "spot":
        radius = max(1.0, scale * rng.uniform(0.02, 0.08))
        return skimage.draw.ellipse(row, col, radius, max(1.0, radius / aspect), shape=shape)
    if kind == "ellipse":
        semi_axes = scale * rng.uniform(0.03, 0.14), scale * rng.uniform(0.015, 0.05) / aspect
        return skimage.draw.ellipse(row, col, *semi_axes, shape=shape, rotation=rng.uniform(0, np.pi))
    if kind == "ring":
        outer, inner = scale * rng.uniform(0.06, 0.2), rng.uniform(0.4, 0.7)
        rows, cols = skimage.draw.ellipse(row, col, outer, outer / aspect, shape=shape)
        keep = np.hypot(rows - row, (cols - col) * aspect) >= inner * outer
        return rows[keep], cols[keep]
    if kind == "window":
        return _window_reflection(rng, row, col, scale, aspect, shape)
    count = int(rng.integers(2, 9))
    spacing = scale * rng.uniform(0.05, 0.2 if count == 2 else 0.12)
    angle = rng.uniform(0, np.pi) if count > 2 else rng.normal(0, 0.2)  # a pair sits side by side
    offsets = (np.arange(count) - (count - 1) / 2) * spacing
    radius = max(1.0, min(0.3 * spacing, scale * 0.06))
    dots = [
        skimage.draw.ellipse(
            row + o * math.sin(angle),
            col + o * math.cos(angle) / aspect,
            radius,
            max(1.0, radius / aspect),
            shape=shape,
        )
        for o in offsets
    ]
    return np.concatenate([d[0] for d in dots]), np.concatenate([d[1] for d in dots])


def _window_reflection(
    rng: np.random.Generator, row: float, col: float, scale: float, aspect: float, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """A rotated rectangle, sometimes split into panes by dark bars."""
    height, width = scale * rng.uniform(0.05, 0.25, 2)
    panes_down, panes_across = rng.integers(1, 3, 2)
    bar = rng.uniform(0.08, 0.2)
    angle = rng.normal(0, 0.3)
    cos, sin = math.cos(angle), math.sin(angle)
    rows, cols = [], []
    for i in range(panes_down):
        for j in range(panes_across):
            top, bottom = (i + bar / 2) / panes_down - 0.5, (i + 1 - bar / 2) / panes_down - 0.5
            left, right = (j + bar / 2) / panes_across - 0.5, (j + 1 - bar / 2) / panes_across - 0.5
            corner_y = np.array([top, top, bottom, bottom]) * height
            corner_x = np.array([left, right, right, left]) * width
            pane_rows = row + corner_y * cos + corner_x * sin
            pane_cols = col + (corner_x * cos - corner_y * sin) / aspect
            pane = skimage.draw.polygon(pane_rows, pane_cols, shape=shape)
            rows.append(pane[0])
            cols.append(pane[1])
    return np.concatenate(rows), np.concatenate(cols)


def paint_reflections(
    rng: np.random.Generator, geo: EyeGeometry, look: Look, picture: np.ndarray, eye_alpha: np.ndarray, box: Box
) -> np.ndarray:
    """Corneal reflections of 1-4 light sources near the pupil, painted on `picture` (covering subpixels `box`);
    return their saturated cores there."""
    shape = picture.shape[1:]
    cores = np.zeros(shape, bool)
    anchor = np.array(geo.pupil_center) + rng.normal(0, 0.25 * geo.iris_radius, 2)
    box_corner = origin(box)[::-1] / SUPERSAMPLING  # as (x, y) in output pixels
    for index in range(int(rng.integers(1, 4 if look.nir else 5))):
        centre = anchor if index == 0 else anchor + rng.normal(0, 0.35 * geo.iris_radius, 2)
        centre = np.array(geo.to_pixels(*centre))
        cores[_reflection_shape(rng, geo, look, centre - box_corner, shape)] = True
    cores &= eye_alpha > 0.5
    around = bounding_box(cores)
    if around is None:
        return cores
    # A soft glow around the cores; blurring only their padded bounding box keeps it cheap.
    pad = 8
    around = (
        slice(max(around[0].start - pad, 0), min(around[0].stop + pad, shape[0])),
        slice(max(around[1].start - pad, 0), min(around[1].stop + pad, shape[1])),
    )
    core = cores[around].astype(np.float32)
    glow = skimage.filters.gaussian(core, sigma=rng.uniform(0.8, 2.5))
    alpha = np.maximum(core * rng.uniform(0.85, 1.0), glow * rng.uniform(0.3, 0.8)) * eye_alpha[around]
    light = rng.uniform(0.9, 1.0) * rgb(rng.normal(1.0, 0.02, 3))
    lit = picture[(slice(None), *around)]
    lit += alpha * (light - lit)
    return cores
