"""Procedurally generated iris close-ups with NICE-I style masks.

Real iris sets (UBIRIS.v2 / NICE-I, NICE-II, MobBIO) cannot be downloaded on
the machines this project runs on, so the default dataset is drawn here. Models
trained only on it are judged on real photographs, so every sample varies what
real captures vary: skin tone and shading, eye shape and openness, gaze and
zoom, iris colour and stroma texture, off-centre pupils, eyelid and eyelash
occlusion, corneal reflections, uneven light, blur, noise, and a share of
near-infrared (grey) captures.

Each sample is rendered at `SUPERSAMPLING` times the output size and averaged
down, so edges are anti-aliased; the mask is downsampled over the same blocks
(a pixel is iris when most of its area is visible iris), so it matches the
image pixel for pixel. Mask convention (NICE-I): 1 = visible iris, i.e. inside
the iris, outside the pupil, between the eyelids and not hidden by eyelashes
or specular reflections; 0 = everything else.

Rendering works on channel-first float32 planes (3, H, W) and paints the eye
only inside the eye opening's bounding box: both keep a 224x224 sample at a
few tens of milliseconds.

`ensure_dataset` writes root/{train,val,test}/{img,mask}/NNNNN.png once per
(generator version, size, counts, seed) and reuses it afterwards;
`python -m ssnets.data.iris --out DIR --preview grid.png` does the same by hand.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import imageio.v3 as imageio
import numpy as np
import skimage.draw
import skimage.filters
import skimage.io
import skimage.util
from scipy import ndimage

from ssnets.data.folder import MaskSpec, Split, load_folder
from ssnets.visualize import overlay

GENERATOR_VERSION = 1
SUPERSAMPLING = 2
SPLITS = ("train", "val", "test")
COMPLETE_MARKER = "dataset.json"
NIR_FRACTION = 0.2

log = logging.getLogger(__name__)

Box = tuple[slice, slice]


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class EyeGeometry:
    """Where the parts of one eye lie, in output pixels (x right, y down; pixel k spans [k, k+1)).

    The iris is a circle in its own frame, which is squashed along `squash_angle`
    to mimic off-axis gaze; the pupil is a (slightly wobbly) circle in that same
    frame, offset from the iris centre. The eyelids are curves in the eye frame,
    whose `along` axis runs from corner to corner through `eye_center`.
    """

    iris_center: tuple[float, float]
    iris_radius: float
    squash: float
    squash_angle: float
    pupil_offset: tuple[float, float]
    pupil_radius: float
    pupil_wobble: tuple[tuple[int, float, float], ...]  # (harmonic, relative amplitude, phase)
    eye_center: tuple[float, float]
    half_width: float
    tilt: float
    medial_side: int  # +1 or -1: the end of the along axis where the nose is
    upper_height: float
    lower_height: float
    upper_power: float
    lower_power: float
    upper_skew: float
    lower_skew: float

    def to_eye_frame(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(along, across) in pixels; across grows downwards."""
        dx, dy = x - self.eye_center[0], y - self.eye_center[1]
        cos, sin = math.cos(self.tilt), math.sin(self.tilt)
        return dx * cos + dy * sin, -dx * sin + dy * cos

    def from_eye_frame(self, along: np.ndarray, across: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cos, sin = math.cos(self.tilt), math.sin(self.tilt)
        return self.eye_center[0] + along * cos - across * sin, self.eye_center[1] + along * sin + across * cos

    def upper_lid(self, u: np.ndarray) -> np.ndarray:
        """`across` of the upper lid margin at relative position u = along / half_width."""
        return -self.upper_height * lid_profile(u, self.upper_power, self.upper_skew)

    def lower_lid(self, u: np.ndarray) -> np.ndarray:
        return self.lower_height * lid_profile(u, self.lower_power, self.lower_skew)

    def to_iris_frame(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates in which the iris is the circle of radius iris_radius around 0."""
        dx, dy = x - self.iris_center[0], y - self.iris_center[1]
        cos, sin = math.cos(self.squash_angle), math.sin(self.squash_angle)
        return (dx * cos + dy * sin) / self.squash, -dx * sin + dy * cos

    @property
    def pupil_center(self) -> tuple[float, float]:
        squashed = self.pupil_offset[0] * self.squash
        cos, sin = math.cos(self.squash_angle), math.sin(self.squash_angle)
        return (
            self.iris_center[0] + squashed * cos - self.pupil_offset[1] * sin,
            self.iris_center[1] + squashed * sin + self.pupil_offset[1] * cos,
        )

    def pupil_radius_at(self, theta: np.ndarray) -> np.ndarray:
        """Pupil boundary radius per angle: real pupils are not perfect circles."""
        wobble = sum(amp * np.cos(k * theta + phase) for k, amp, phase in self.pupil_wobble)
        return self.pupil_radius * (1.0 + wobble)

    def limbus_distance(self, theta: np.ndarray) -> np.ndarray:
        """Distance from the pupil centre to the limbus along direction theta (iris frame)."""
        ox, oy = self.pupil_offset
        along = np.cos(theta) * ox + np.sin(theta) * oy
        return -along + np.sqrt(along**2 - (ox**2 + oy**2) + self.iris_radius**2)


def lid_profile(u: np.ndarray, power: float, skew: float) -> np.ndarray:
    """Almond-shaped lid curve: ~0 at and beyond the corners (|u| >= 1), its peak pushed towards one corner."""
    # pow() of exact zeros takes a slow path, hence the tiny floor instead of 0.
    return np.maximum(1.0 - u * u, 1e-30) ** power * (1.0 + skew * u)


def sample_geometry(rng: np.random.Generator, size: int) -> EyeGeometry:
    iris_radius = size * rng.uniform(0.12, 0.35)
    iris_center = (size * (0.5 + rng.uniform(-0.18, 0.18)), size * (0.5 + rng.uniform(-0.15, 0.15)))
    medial_side = int(rng.choice([-1, 1]))
    tilt = float(np.clip(rng.normal(0.0, 0.1), -0.3, 0.3))
    half_width = iris_radius * rng.uniform(2.0, 2.8)
    upper_power, lower_power = rng.uniform(0.5, 0.9), rng.uniform(0.7, 1.3)
    # The upper lid peaks towards the nose, the lower lid dips towards the temple.
    upper_skew, lower_skew = medial_side * rng.uniform(0.0, 0.3), -medial_side * rng.uniform(0.0, 0.3)

    # Gaze moves the iris along the eye axis; its centre sits near the line joining the corners.
    iris_u = rng.uniform(-0.35, 0.35)
    iris_across = iris_radius * rng.uniform(-0.25, 0.15)
    upper_cover, lower_cover = _sample_lid_cover(rng, iris_radius)
    upper_height = max(iris_radius - upper_cover - iris_across, 0.05 * iris_radius)
    lower_height = max(iris_radius - lower_cover + iris_across, 0.05 * iris_radius)
    upper_height /= float(lid_profile(np.float64(iris_u), upper_power, upper_skew))
    lower_height /= float(lid_profile(np.float64(iris_u), lower_power, lower_skew))

    cos, sin = math.cos(tilt), math.sin(tilt)
    along = iris_u * half_width
    eye_center = (
        iris_center[0] - (along * cos - iris_across * sin),
        iris_center[1] - (along * sin + iris_across * cos),
    )

    pupil_radius = rng.uniform(0.2, 0.65) * iris_radius
    max_offset = max(0.0, 0.85 * iris_radius - pupil_radius)
    offset_length = min(rng.uniform(0.0, 0.12) * iris_radius, max_offset)
    offset_angle = rng.uniform(0, 2 * np.pi)
    wobble = tuple((k, float(rng.uniform(0.0, 0.025)), float(rng.uniform(0, 2 * np.pi))) for k in range(2, 6))

    return EyeGeometry(
        iris_center=iris_center,
        iris_radius=iris_radius,
        squash=float(np.clip(1.0 - abs(rng.normal(0.0, 0.08)), 0.75, 1.0)),
        squash_angle=float(rng.normal(0.0, 0.25)),
        pupil_offset=(offset_length * math.cos(offset_angle), offset_length * math.sin(offset_angle)),
        pupil_radius=pupil_radius,
        pupil_wobble=wobble,
        eye_center=eye_center,
        half_width=half_width,
        tilt=tilt,
        medial_side=medial_side,
        upper_height=upper_height,
        lower_height=lower_height,
        upper_power=upper_power,
        lower_power=lower_power,
        upper_skew=upper_skew,
        lower_skew=lower_skew,
    )


def _sample_lid_cover(rng: np.random.Generator, iris_radius: float) -> tuple[float, float]:
    """How far each lid reaches over the iris (negative: a strip of sclera shows)."""
    kind = rng.choice(["typical", "wide", "squint"], p=[0.72, 0.14, 0.14])
    if kind == "wide":
        upper = rng.uniform(-0.25, 0.1)
    elif kind == "squint":
        upper = rng.uniform(0.7, 1.55)
    else:
        upper = rng.uniform(0.1, 0.7)
    return upper * iris_radius, rng.uniform(-0.2, 0.35) * iris_radius


# --------------------------------------------------------------------------- appearance

# Per iris type: (dark, light) of the outer (ciliary) zone, then of the zone inside the collarette.
IRIS_PALETTES = {
    "dark_brown": ((0.05, 0.03, 0.02), (0.26, 0.14, 0.07), (0.04, 0.025, 0.015), (0.22, 0.12, 0.06)),
    "brown": ((0.11, 0.055, 0.028), (0.54, 0.32, 0.15), (0.09, 0.045, 0.022), (0.45, 0.24, 0.10)),
    "hazel": ((0.14, 0.13, 0.06), (0.50, 0.47, 0.25), (0.14, 0.07, 0.03), (0.58, 0.34, 0.13)),
    "green": ((0.10, 0.16, 0.10), (0.40, 0.54, 0.33), (0.18, 0.15, 0.06), (0.58, 0.52, 0.24)),
    "blue": ((0.11, 0.18, 0.28), (0.52, 0.66, 0.80), (0.16, 0.19, 0.22), (0.55, 0.60, 0.64)),
    "grey": ((0.20, 0.22, 0.24), (0.58, 0.62, 0.64), (0.18, 0.18, 0.17), (0.52, 0.52, 0.48)),
}
IRIS_WEIGHTS = {"dark_brown": 0.25, "brown": 0.28, "hazel": 0.15, "green": 0.1, "blue": 0.14, "grey": 0.08}
# Light to dark skin; a tone is drawn between two neighbouring stops.
SKIN_STOPS = np.array(
    [
        (0.95, 0.79, 0.69),
        (0.89, 0.69, 0.57),
        (0.78, 0.56, 0.42),
        (0.62, 0.41, 0.28),
        (0.44, 0.28, 0.18),
        (0.28, 0.17, 0.11),
    ]
)


def _rgb(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """A colour as float32 (3, 1, 1), ready to broadcast over channel-first planes."""
    return np.asarray(values, np.float32).reshape(3, 1, 1)


@dataclass(frozen=True)
class Look:
    """Colours of one capture, each float32 (3, 1, 1) in [0, 1]; NIR captures use grey colours."""

    nir: bool
    skin: np.ndarray
    sclera: np.ndarray
    iris_outer: tuple[np.ndarray, np.ndarray]
    iris_inner: tuple[np.ndarray, np.ndarray]
    iris_contrast: float
    pupil: np.ndarray
    lash: np.ndarray
    vessel_alpha: float


def sample_look(rng: np.random.Generator) -> Look:
    return _sample_nir_look(rng) if rng.random() < NIR_FRACTION else _sample_visible_look(rng)


def _sample_visible_look(rng: np.random.Generator) -> Look:
    names = list(IRIS_WEIGHTS)
    palette = IRIS_PALETTES[names[rng.choice(len(names), p=list(IRIS_WEIGHTS.values()))]]
    tint = rng.uniform(0.7, 1.25) * rng.normal(1.0, 0.05, 3)
    outer_dark, outer_light, inner_dark, inner_light = (_rgb(np.array(c) * tint) for c in palette)
    stop = rng.uniform(0, len(SKIN_STOPS) - 1)
    low = int(stop)
    skin = SKIN_STOPS[low] + (stop - low) * (SKIN_STOPS[min(low + 1, len(SKIN_STOPS) - 1)] - SKIN_STOPS[low])
    sclera = np.array([0.86, 0.82, 0.78]) * rng.uniform(0.75, 1.05) * rng.normal(1.0, 0.03, 3)
    sclera *= 1.0 + np.array([0.04, -0.01, -0.05]) * rng.uniform(0, 1.2)  # neutral to yellowish
    return Look(
        nir=False,
        skin=_rgb(np.clip(skin * rng.normal(1.0, 0.04, 3), 0.05, 1.0)),
        sclera=_rgb(np.clip(sclera, 0.4, 1.0)),
        iris_outer=(outer_dark, outer_light),
        iris_inner=(inner_dark, inner_light),
        iris_contrast=rng.uniform(0.7, 1.3),
        pupil=_rgb(np.array([0.03, 0.025, 0.025]) * rng.uniform(0.5, 1.8)),
        lash=_rgb(np.array([0.06, 0.045, 0.035]) * rng.uniform(0.4, 1.6)),
        vessel_alpha=rng.uniform(0.15, 0.55),
    )


def _sample_nir_look(rng: np.random.Generator) -> Look:
    """Near-infrared: melanin barely absorbs, so every iris looks mid-grey and richly textured."""
    skin = rng.uniform(0.45, 0.82)
    iris_light = rng.uniform(0.3, 0.62)
    iris_dark = iris_light * rng.uniform(0.2, 0.5)
    inner = rng.uniform(0.8, 1.1)
    return Look(
        nir=True,
        skin=_rgb([skin] * 3),
        sclera=_rgb([np.clip(skin * rng.uniform(0.85, 1.15), 0.35, 0.95)] * 3),
        iris_outer=(_rgb([iris_dark] * 3), _rgb([iris_light] * 3)),
        iris_inner=(_rgb([iris_dark * inner] * 3), _rgb([iris_light * inner] * 3)),
        iris_contrast=rng.uniform(1.2, 2.0),
        pupil=_rgb([rng.uniform(0.01, 0.05)] * 3),
        lash=_rgb([rng.uniform(0.03, 0.12)] * 3),
        vessel_alpha=0.0,
    )


# --------------------------------------------------------------------------- canvas and helpers


@dataclass(frozen=True)
class Canvas:
    """Coordinates of every subpixel: output-pixel x/y and the eye frame (u = along / half_width)."""

    x: np.ndarray
    y: np.ndarray
    u: np.ndarray
    across: np.ndarray
    upper: np.ndarray  # upper lid `across` at each subpixel's u
    lower: np.ndarray
    half_width: float

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape

    @property
    def opening(self) -> np.ndarray:
        """Signed distance (output pixels, roughly) into the eye opening; > 0 inside.

        The lids meet at the corners; the last term keeps the line through the
        corners from counting as open beyond them.
        """
        beyond_corners = (1 - np.abs(self.u)) * self.half_width
        return np.minimum(np.minimum(self.across - self.upper, self.lower - self.across), beyond_corners)


@lru_cache(maxsize=8)
def _sample_centres(size: int, supersampling: int) -> np.ndarray:
    """Output-pixel coordinates of the sample centres along one axis."""
    centres = (np.arange(size * supersampling, dtype=np.float32) + 0.5) / supersampling
    centres.setflags(write=False)
    return centres


def make_canvas(geo: EyeGeometry, size: int, supersampling: int, box: Box | None = None) -> Canvas:
    """Coordinates of the samples of a size x size image taken `supersampling` times per pixel and axis,
    restricted to `box` (in sample indices) when given."""
    centres = _sample_centres(size, supersampling)
    rows, cols = box or (slice(None), slice(None))
    x, y = np.meshgrid(centres[cols], centres[rows])
    along, across = geo.to_eye_frame(x, y)
    u = along / geo.half_width
    return Canvas(x, y, u, across, geo.upper_lid(u), geo.lower_lid(u), geo.half_width)


def _eye_box(geo: EyeGeometry, size: int) -> Box | None:
    """Subpixel rows/cols of the rectangle holding the eye opening, clipped to the image (None when outside)."""
    top = geo.upper_height * (1 + abs(geo.upper_skew)) + 1
    bottom = geo.lower_height * (1 + abs(geo.lower_skew)) + 1
    reach = geo.half_width + 1
    x, y = geo.from_eye_frame(np.array([-reach, reach, reach, -reach]), np.array([-top, -top, bottom, bottom]))
    image = (slice(0, size * SUPERSAMPLING), slice(0, size * SUPERSAMPLING))
    return _subpixel_box(y.min(), y.max(), x.min(), x.max(), within=image)


def _subpixel_box(top: float, bottom: float, left: float, right: float, within: Box) -> Box | None:
    """Subpixel index box covering the whole output pixels under a rectangle, clipped to `within` (None when empty)."""

    def clipped(low: float, high: float, limits: slice) -> slice:
        start, stop = math.floor(low) * SUPERSAMPLING, math.ceil(high) * SUPERSAMPLING
        return slice(max(limits.start, start), min(limits.stop, stop))

    rows, cols = clipped(top, bottom, within[0]), clipped(left, right, within[1])
    return (rows, cols) if rows.start < rows.stop and cols.start < cols.stop else None


def _output_pixels(box: Box) -> Box:
    """The output-pixel box whose subpixels are `box` (which covers whole pixels)."""
    return slice(box[0].start // SUPERSAMPLING, box[0].stop // SUPERSAMPLING), slice(
        box[1].start // SUPERSAMPLING, box[1].stop // SUPERSAMPLING
    )


def _to_subpixels(planes: np.ndarray) -> np.ndarray:
    """Repeat each output pixel SUPERSAMPLING x SUPERSAMPLING times (last two axes)."""
    return np.repeat(np.repeat(planes, SUPERSAMPLING, axis=-2), SUPERSAMPLING, axis=-1)


def _bounding_box(mask: np.ndarray) -> Box | None:
    """Index box around the set elements of `mask` (None when none are)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _origin(box: Box) -> np.ndarray:
    """(row, col) of a box's first element, to shift stroke points into box coordinates."""
    return np.array([box[0].start, box[1].start], np.float64)


def _relative(inner: Box, outer: Box) -> Box:
    """`inner` expressed in the coordinates of an array cropped to `outer`."""
    return (
        slice(inner[0].start - outer[0].start, inner[0].stop - outer[0].start),
        slice(inner[1].start - outer[1].start, inner[1].stop - outer[1].start),
    )


@lru_cache(maxsize=32)
def _bump_basis(length: int, cells: int) -> np.ndarray:
    positions = (np.arange(length) + 0.5) / length
    centres = (np.arange(cells + 2) - 0.5) / cells
    return np.exp(-(((positions[:, None] - centres[None, :]) * cells / 0.8) ** 2)).astype(np.float32)


# OpenBLAS wakes its helper threads for products above ~2.6e5 multiply-adds, which on
# a busy machine costs milliseconds per call; smooth fields are built on a grid small
# enough to stay below that, then repeated up (the steps are far below one grey level).
SMOOTH_FIELD_GRID = 96


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Zero-mean, unit-std random field with about `cells` blobs across the longer side."""
    step = max(1, math.ceil(max(shape) / SMOOTH_FIELD_GRID))
    rows = _bump_basis(math.ceil(shape[0] / step), cells)
    cols = _bump_basis(math.ceil(shape[1] / step), cells)
    field = rows @ rng.standard_normal((cells + 2, cells + 2), dtype=np.float32) @ cols.T
    field = (field - field.mean()) / (field.std() + 1e-6)
    return np.repeat(np.repeat(field, step, 0), step, 1)[: shape[0], : shape[1]]


# exp() of large negative numbers underflows into denormals, which are ~100x slower
# to compute with; arguments are capped where the result is zero in practice anyway.
EXP_FLOOR = 60.0


def _ridge(distance: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-np.minimum((distance / width) ** 2, EXP_FLOOR))


def _fade_at_corners(u: np.ndarray) -> np.ndarray:
    """1 across the middle of the eye, falling to 0 at the corners (|u| = 1)."""
    u_sq = u * u
    return np.clip(1 - u_sq * u_sq, 0, 1)


def _falloff(distance: np.ndarray, scale: float) -> np.ndarray:
    """exp(-distance / scale), and 1 where distance is negative."""
    return np.exp(-np.minimum(np.maximum(distance, 0) / scale, EXP_FLOOR))


def _blend_at(planes: np.ndarray, coverage: np.ndarray, colour: np.ndarray, alpha: float) -> None:
    """Blend `colour` over the subpixels where `coverage` is set, touching only those."""
    index = np.flatnonzero(coverage)
    flat = planes.reshape(3, -1)
    flat[:, index] += alpha * (colour.reshape(3, 1) - flat[:, index])


# --------------------------------------------------------------------------- strokes (lashes, vessels)


def _bezier_points(
    geo: EyeGeometry, start: np.ndarray, bend: np.ndarray, end: np.ndarray, radius_ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Quadratic Bézier strokes given in the eye frame -> supersampled (row, col) points and brush radii.

    Each stroke gets points about one subpixel apart (the brush always paints the
    subpixel under its centre, so strokes stay connected); `radius_ends` (count, 2)
    holds the brush radius (output pixels) at both ends.
    """
    length = np.linalg.norm(bend - start, axis=-1) + np.linalg.norm(end - bend, axis=-1)
    steps = np.ceil(length * SUPERSAMPLING).astype(np.int64) + 2
    stroke = np.repeat(np.arange(len(steps)), steps)
    first_point = np.repeat(np.cumsum(steps) - steps, steps)
    t = ((np.arange(stroke.size) - first_point) / (steps[stroke] - 1))[:, None]
    points = (1 - t) ** 2 * start[stroke] + 2 * (1 - t) * t * bend[stroke] + t**2 * end[stroke]
    x, y = geo.from_eye_frame(points[:, 0], points[:, 1])
    radii = radius_ends[stroke, 0] + (radius_ends[stroke, 1] - radius_ends[stroke, 0]) * t[:, 0]
    return np.stack([y * SUPERSAMPLING - 0.5, x * SUPERSAMPLING - 0.5], -1), radii * SUPERSAMPLING


def _rasterize_strokes(shape: tuple[int, int], points: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Boolean coverage of round-brush stamps at `points` (row, col in subpixels) with `radii`."""
    rows, cols, radii = points[..., 0].ravel(), points[..., 1].ravel(), radii.ravel()
    height, width = shape
    reach = math.ceil(radii.max(initial=0.0))
    near = (rows > -reach - 1) & (rows < height + reach) & (cols > -reach - 1) & (cols < width + reach)
    # Thick stamps are few: sorted by radius, each offset visits only the stamps that can reach it.
    order = np.argsort(radii[near])
    rows, cols, radii = rows[near][order], cols[near][order], radii[near][order]
    base_rows, base_cols = np.rint(rows).astype(np.int64), np.rint(cols).astype(np.int64)
    frac_rows, frac_cols = rows - base_rows, cols - base_cols
    coverage = np.zeros(shape, bool)
    for dr in range(-reach, reach + 1):
        for dc in range(-reach, reach + 1):
            if dr == dc == 0:  # the subpixel under the brush centre is always painted
                first, hit = 0, slice(None)
            else:
                first = np.searchsorted(radii, math.hypot(dr, dc) - 0.71)
                hit = (dr - frac_rows[first:]) ** 2 + (dc - frac_cols[first:]) ** 2 <= radii[first:] ** 2
            r, c = base_rows[first:][hit] + dr, base_cols[first:][hit] + dc
            inside = (r >= 0) & (r < height) & (c >= 0) & (c < width)
            coverage[r[inside], c[inside]] = True
    return coverage


def _curved_strokes(
    geo: EyeGeometry,
    root: np.ndarray,
    angle: np.ndarray,
    curl: np.ndarray,
    length: np.ndarray,
    radius_ends: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Strokes leaving `root` (eye frame) at `angle` (0 = straight down, pi/2 = along +u), turning by `curl`."""
    first = np.stack([np.sin(angle), np.cos(angle)], -1)
    second = np.stack([np.sin(angle + curl), np.cos(angle + curl)], -1)
    bend = root + 0.55 * length[:, None] * first
    end = bend + 0.55 * length[:, None] * second
    return _bezier_points(geo, root, bend, end, radius_ends)


def _upper_lash_strokes(rng: np.random.Generator, geo: EyeGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Lashes grow in clumps along the upper margin, fanning outwards; some curl up, some hang over the eye."""
    radius = geo.iris_radius
    count = int(rng.integers(70, 220))
    clumps = max(1, count // int(rng.integers(2, 7)))
    clump = rng.integers(0, clumps, count)
    u = np.clip(rng.uniform(-0.96, 0.94, clumps)[clump] + rng.normal(0, 0.02, count), -0.97, 0.97)
    hanging = (rng.random(clumps) < rng.uniform(0.05, 0.7))[clump]
    fan = u * rng.uniform(0.6, 1.3) + rng.normal(0, 0.22, clumps)[clump] + rng.normal(0, 0.1, count)
    # Measured from straight down: hanging lashes lean outwards from down, curled ones from up.
    angle = np.where(hanging, np.sign(u) * np.abs(fan), np.pi - fan)
    curl = np.where(hanging, 1.0, -1.0) * np.sign(u) * rng.uniform(0.1, 0.9, count)
    length = radius * np.exp(rng.normal(math.log(0.42), 0.3, count)) * (1 - 0.55 * u**2)
    root_across = geo.upper_lid(u) - radius * rng.uniform(0, 0.05, count)
    root = np.stack([u * geo.half_width, root_across], -1)
    thickness = radius * rng.uniform(0.009, 0.02) * rng.uniform(0.7, 1.2, (count, 1)) * np.array([[1.0, 0.25]])
    return _curved_strokes(geo, root, angle, curl, length, thickness)


def _lower_lash_strokes(rng: np.random.Generator, geo: EyeGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Fewer, shorter, thinner lashes pointing down and outwards from the lower lid."""
    radius = geo.iris_radius
    count = int(rng.integers(8, 50))
    u = rng.uniform(-0.85, 0.88, count)
    angle = u * rng.uniform(0.6, 1.2) + rng.normal(0, 0.2, count)
    curl = np.sign(u) * rng.uniform(0.0, 0.5, count)
    length = radius * rng.uniform(0.08, 0.3, count)
    root = np.stack([u * geo.half_width, geo.lower_lid(u) + radius * rng.uniform(0.03, 0.08, count)], -1)
    thickness = radius * rng.uniform(0.006, 0.012) * np.ones((count, 1)) * np.array([[1.0, 0.3]])
    return _curved_strokes(geo, root, angle, curl, length, thickness)


def _brow_strokes(
    rng: np.random.Generator, geo: EyeGeometry, size: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Eyebrow hairs in an arched band well above the eye, rising at the nose end and lying
    flat towards the temple; None when the band is outside the image (zoomed-in captures)."""
    radius = geo.iris_radius
    count = int(rng.integers(250, 550))
    towards_temple = rng.uniform(0, 1, count)  # 0 at the nose end, 1 at the tail
    u = geo.medial_side * (0.95 - 2.15 * towards_temple)
    arch = np.clip(1 - ((towards_temple - 0.65) / 0.65) ** 2, 0, 1)
    middle = -(geo.upper_height + radius * rng.uniform(1.0, 2.0) + radius * rng.uniform(0.2, 0.6) * arch)
    half_thickness = radius * rng.uniform(0.2, 0.4) * (1.2 - 0.7 * towards_temple)
    root = np.stack([u * geo.half_width, middle + half_thickness * rng.uniform(-1, 1, count)], -1)
    x, y = geo.from_eye_frame(root[:, 0], root[:, 1])
    if not ((y > -radius) & (y < size + radius) & (x > -radius) & (x < size + radius)).any():
        return None
    lying = np.clip(towards_temple / 0.3, 0, 1)
    direction_along, direction_across = -geo.medial_side * lying, -(1 - 0.75 * lying)
    angle = np.arctan2(direction_along, direction_across) + rng.normal(0, 0.15, count)
    curl = rng.uniform(-0.3, 0.3, count)
    length = radius * rng.uniform(0.15, 0.35, count)
    thickness = radius * rng.uniform(0.007, 0.013) * np.ones((count, 1)) * np.array([[1.0, 0.4]])
    return _curved_strokes(geo, root, angle, curl, length, thickness)


def _vessel_strokes(rng: np.random.Generator, geo: EyeGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Thin wiggly red lines running from the corners towards the limbus."""
    count = int(rng.integers(3, 16))
    side = rng.choice([-1, 1], count)
    start_u = side * rng.uniform(0.5, 0.98, count)
    end_u = start_u - side * rng.uniform(0.15, 0.45, count)
    height = 0.6 * geo.iris_radius
    start = np.stack([start_u * geo.half_width, rng.uniform(-height, height, count)], -1)
    end = np.stack([end_u * geo.half_width, rng.uniform(-height, height, count)], -1)
    bend = 0.5 * (start + end) + rng.normal(0, 0.15 * geo.iris_radius, (count, 2))
    thickness = geo.iris_radius * rng.uniform(0.004, 0.012, (count, 1)) * np.array([[1.0, 0.4]])
    return _bezier_points(geo, start, bend, end, thickness)


# --------------------------------------------------------------------------- skin and lids


def paint_skin(rng: np.random.Generator, geo: EyeGeometry, look: Look, canvas: Canvas) -> np.ndarray:
    """(3, H, W) skin around the eye, including the lid margins; the eye opening is painted over it."""
    shape = canvas.shape
    shade = 1.0 + 0.08 * smooth_field(rng, shape, 3) + 0.025 * smooth_field(rng, shape, 9)
    shade += rng.uniform(0.03, 0.09) * (rng.random(shape, dtype=np.float32) - 0.5)  # pores, fine texture
    shade *= _lid_relief(rng, geo, canvas)
    skin = look.skin * shade
    if not look.nir:
        redness = rng.uniform(0.0, 0.06) * (0.5 + 0.5 * smooth_field(rng, shape, 5))
        skin += _rgb([1.0, -0.4, -0.5]) * redness

    # The lower lid's wet margin shows as a pinkish band between eyeball and lashes.
    radius = geo.iris_radius
    below_lower = canvas.across - canvas.lower
    band = np.clip(1 - below_lower / (radius * rng.uniform(0.05, 0.12)), 0, 1) * (below_lower >= 0)
    band *= _fade_at_corners(canvas.u) * rng.uniform(0.4, 0.85)
    margin = look.skin * _rgb([1.0, 1.0, 1.0] if look.nir else [1.05, 0.72, 0.72]) + 0.1
    skin += band * (margin - skin)
    return skin


def _lid_relief(rng: np.random.Generator, geo: EyeGeometry, canvas: Canvas) -> np.ndarray:
    """Multiplicative shading from the lid crease, the lash line, and the hollows around the eye."""
    radius = geo.iris_radius
    relief = np.ones(canvas.shape, np.float32)
    if rng.random() < 0.8:  # monolids have no visible crease
        gap = radius * rng.uniform(0.3, 0.9)
        crease = -(geo.upper_height + gap) * lid_profile(canvas.u / 1.2, geo.upper_power, geo.upper_skew)
        from_crease = canvas.across - crease
        fade = _fade_at_corners(canvas.u / 1.2)
        relief -= rng.uniform(0.08, 0.25) * _ridge(from_crease, radius * rng.uniform(0.05, 0.12)) * fade
        # The fold above the crease shades the lid skin just below it.
        relief -= rng.uniform(0.0, 0.12) * _falloff(from_crease, 0.2 * radius) * (from_crease > 0) * fade

    above_upper = canvas.upper - canvas.across
    lash_line = np.clip(1 - above_upper / (radius * rng.uniform(0.04, 0.1)), 0, 1) * (above_upper >= 0)
    relief *= 1 - rng.uniform(0.3, 0.75) * lash_line * _fade_at_corners(canvas.u)

    below_lower = canvas.across - canvas.lower
    under_eye = _ridge(below_lower - 0.5 * radius, 0.6 * radius) * _ridge(canvas.u * canvas.u, 1.0)
    relief -= rng.uniform(0.0, 0.2) * under_eye
    lower_crease = _ridge(below_lower - radius * rng.uniform(0.35, 0.7), 0.05 * radius)
    relief -= rng.uniform(0.0, 0.08) * lower_crease * _fade_at_corners(canvas.u)
    nose_side = _ridge(canvas.u - 1.25 * geo.medial_side, 0.45) * _ridge(canvas.across, 1.5 * radius)
    relief -= rng.uniform(0.0, 0.15) * nose_side
    return relief


def shade_under_lids(rng: np.random.Generator, geo: EyeGeometry, coarse: Canvas) -> np.ndarray:
    """Shading of the eyeball: the upper lid and its lashes darken its top, the lower lid a little of the bottom."""
    radius = geo.iris_radius
    shade = 1 - rng.uniform(0.25, 0.6) * _falloff(coarse.across - coarse.upper, radius * rng.uniform(0.12, 0.35))
    shade *= 1 - rng.uniform(0.05, 0.25) * _falloff(coarse.lower - coarse.across, radius * rng.uniform(0.08, 0.2))
    return shade


def paint_hair(rng: np.random.Generator, geo: EyeGeometry, look: Look, picture: np.ndarray) -> np.ndarray:
    """Paint eyebrow and eyelashes in place; return the lashes' boolean coverage (subpixels)."""
    shape = picture.shape[1:]
    brow = _brow_strokes(rng, geo, shape[0] // SUPERSAMPLING)
    if brow is not None:
        brow_colour = np.minimum(look.lash * rng.uniform(1.0, 2.5), 1)
        _blend_at(picture, _rasterize_strokes(shape, *brow), brow_colour, rng.uniform(0.6, 0.9))
    upper = _rasterize_strokes(shape, *_upper_lash_strokes(rng, geo))
    lower = _rasterize_strokes(shape, *_lower_lash_strokes(rng, geo))
    _blend_at(picture, upper, look.lash, rng.uniform(0.8, 0.97))
    _blend_at(picture, lower & ~upper, look.lash, rng.uniform(0.5, 0.85))
    return upper | lower


# --------------------------------------------------------------------------- eyeball


def paint_sclera(rng: np.random.Generator, geo: EyeGeometry, look: Look, coarse: Canvas, box: Box) -> np.ndarray:
    """(3, h, w) white of the eye over the subpixels `box`: darker and pinker towards the corners, with vessels.

    Its shading is smooth, so it is computed per output pixel (`coarse` holds their
    coordinates) and repeated; only the thin vessels are drawn per subpixel.
    """
    corner = np.minimum(coarse.u * coarse.u, 1)
    shade = 1.0 - rng.uniform(0.15, 0.45) * corner + 0.05 * smooth_field(rng, coarse.shape, 5)
    sclera = look.sclera * shade
    if look.nir:
        return _to_subpixels(sclera)
    middle = 0.5 * (coarse.upper + coarse.lower)
    to_caruncle = np.sqrt(((coarse.u - 0.97 * geo.medial_side) * geo.half_width) ** 2 + (coarse.across - middle) ** 2)
    caruncle = rng.uniform(0.6, 0.9) * _ridge(to_caruncle, 0.22 * geo.iris_radius)
    pinkness = np.maximum(corner * corner * rng.uniform(0.05, 0.2), caruncle)
    sclera = _to_subpixels(sclera + pinkness * (_rgb([0.85, 0.55, 0.52]) * float(look.sclera.mean()) - sclera))
    points, radii = _vessel_strokes(rng, geo)
    vessels = _rasterize_strokes(sclera.shape[1:], points - _origin(box), radii)
    _blend_at(sclera, vessels, _rgb([0.62, 0.16, 0.14]), look.vessel_alpha)
    return sclera


# Iris texture lives on a polar grid: rows = normalised radius from the pupil
# edge (0) to the limbus (1), columns = angle around the pupil centre.
POLAR_ROWS, POLAR_COLUMNS = 48, 512


@dataclass(frozen=True)
class IrisTexture:
    value: np.ndarray  # (POLAR_ROWS * POLAR_COLUMNS,) stroma brightness in [0, 1], row-major
    collarette: np.ndarray  # (POLAR_COLUMNS,) normalised radius of the collarette per angle


def _polar_grid() -> tuple[np.ndarray, np.ndarray]:
    rho = np.linspace(0.0, 1.0, POLAR_ROWS, dtype=np.float32)[:, None]
    theta = (np.arange(POLAR_COLUMNS, dtype=np.float32) * (2 * np.pi / POLAR_COLUMNS))[None, :]
    return rho, theta


def iris_texture(rng: np.random.Generator, look: Look) -> IrisTexture:
    """Stroma: wavy radial fibres, collarette ridge, crypts, contraction furrows, dark limbus and pupil ruff."""
    rho, theta = _polar_grid()
    stroma = 0.6 * _radial_streaks(rng, 2.0, 0.6) + 0.4 * _radial_streaks(rng, 6.0, 3.0)
    value = 0.5 + 0.15 * look.iris_contrast * _make_wavy(rng, stroma, rho, theta)

    collarette = rng.uniform(0.2, 0.45) + sum(
        rng.uniform(0.0, amplitude) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        for k, amplitude in ((3, 0.035), (5, 0.03), (7, 0.015), (11, 0.01))
    )
    value += rng.uniform(0.05, 0.2) * _ridge(rho - collarette, 0.035)
    value -= rng.uniform(0.0, 0.1) * _ridge(rho - collarette - 0.07, 0.04)
    value -= _crypts(rng, rho, theta, collarette)
    value -= _contraction_furrows(rng, rho, theta)
    limbus_width = rng.uniform(0.08, 0.3)
    towards_limbus = np.clip((rho - 1 + limbus_width) / limbus_width, 0, 1)
    value *= 1.0 - rng.uniform(0.3, 0.75) * towards_limbus * np.sqrt(towards_limbus)
    value *= 1.0 - rng.uniform(0.3, 0.7) * _ridge(rho, 0.035)  # pigment ruff at the pupil margin
    return IrisTexture(np.clip(value, 0, 1).astype(np.float32).ravel(), collarette.astype(np.float32).ravel())


def _radial_streaks(rng: np.random.Generator, sigma_rho: float, sigma_theta: float) -> np.ndarray:
    noise = rng.standard_normal((POLAR_ROWS, POLAR_COLUMNS), dtype=np.float32)
    streaks = ndimage.gaussian_filter(noise, (sigma_rho, sigma_theta), mode=("nearest", "wrap"), truncate=3.0)
    return streaks / streaks.std()


def _make_wavy(rng: np.random.Generator, stroma: np.ndarray, rho: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Real fibres meander: shift each angle by an amount that oscillates with radius."""
    amplitude = rng.uniform(0.0, 0.05) * POLAR_COLUMNS / (2 * np.pi)
    shift = amplitude * np.sin(rho * rng.uniform(6, 14) + 3 * theta + rng.uniform(0, 2 * np.pi))
    columns = (np.arange(POLAR_COLUMNS)[None, :] + shift.astype(np.int64)) % POLAR_COLUMNS
    return np.take_along_axis(stroma, columns, axis=1)


def _angle_difference(theta: np.ndarray, centre: np.ndarray) -> np.ndarray:
    return (theta - centre + np.pi) % (2 * np.pi) - np.pi


def _crypts(rng: np.random.Generator, rho: np.ndarray, theta: np.ndarray, collarette: np.ndarray) -> np.ndarray:
    """Darkening by Fuchs' crypts: radially elongated holes, mostly just outside the collarette."""
    count = int(rng.integers(2, 26))
    angles = rng.uniform(0, 2 * np.pi, count).astype(np.float32)
    at_collarette = collarette[0, (angles / (2 * np.pi) * POLAR_COLUMNS).astype(int) % POLAR_COLUMNS]
    radii = np.clip(at_collarette + rng.uniform(-0.1, 0.4, count), 0.05, 0.9)
    radial = _ridge(rho[:, 0][None, :] - radii[:, None], rng.uniform(0.03, 0.12, (count, 1)))
    angular = _ridge(_angle_difference(theta[0][None, :], angles[:, None]), rng.uniform(0.015, 0.08, (count, 1)))
    depth = rng.uniform(0.1, 0.45, (count, 1))
    return np.einsum("kr,kt->rt", (depth * radial).astype(np.float32), angular.astype(np.float32))


def _contraction_furrows(rng: np.random.Generator, rho: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Concentric dark arcs in the outer iris."""
    count = int(rng.integers(0, 5))
    depth = rng.uniform(0.05, 0.2, (count, 1))
    radial = depth * _ridge(rho[:, 0][None, :] - rng.uniform(0.55, 0.9, (count, 1)), 0.015)
    centres, spans = rng.uniform(0, 2 * np.pi, (count, 1)), rng.uniform(0.4, 2.5, (count, 1))
    angular = np.abs(_angle_difference(theta[0][None, :], centres)) < spans
    return np.einsum("kr,kt->rt", radial.astype(np.float32), angular.astype(np.float32))


def paint_iris(
    rng: np.random.Generator, geo: EyeGeometry, look: Look, crop: Canvas, box: Box, eyeball: np.ndarray
) -> np.ndarray:
    """Paint iris and pupil onto `eyeball` (covering subpixels `box`) in place;
    return where the iris-minus-pupil lies there."""
    visible = np.zeros(crop.shape, bool)
    texture = iris_texture(rng, look)
    reach = geo.iris_radius + 2
    cx, cy = geo.iris_center
    window = _subpixel_box(cy - reach, cy + reach, cx - reach, cx + reach, within=box)
    if window is None:
        return visible
    window = _relative(window, box)
    _, angles = _polar_grid()
    pupil_edges = geo.pupil_radius_at(angles[0])
    limbus_distances = geo.limbus_distance(angles[0])

    gx, gy = geo.to_iris_frame(crop.x[window], crop.y[window])
    from_iris = np.sqrt(gx * gx + gy * gy)
    px, py = gx - geo.pupil_offset[0], gy - geo.pupil_offset[1]
    from_pupil = np.sqrt(px * px + py * py)
    column = ((np.arctan2(py, px) + 2 * np.pi) * (POLAR_COLUMNS / (2 * np.pi))).astype(np.int32) % POLAR_COLUMNS
    pupil_edge = pupil_edges[column]
    # Rubber-sheet radius: 0 at the pupil edge, 1 at the limbus, along rays from the pupil centre.
    rho = (from_pupil - pupil_edge) / np.maximum(limbus_distances[column] - pupil_edge, 1e-3)
    row = (np.clip(rho, 0, 1) * (POLAR_ROWS - 1) + 0.5).astype(np.int32)
    value = texture.value[row * POLAR_COLUMNS + column]
    value += 0.06 * (rng.random(value.shape, dtype=np.float32) - 0.5)
    inner = np.clip((texture.collarette[column] - rho) / 0.08 + 0.5, 0, 1)
    (outer_dark, outer_light), (inner_dark, inner_light) = look.iris_outer, look.iris_inner
    iris = outer_dark + (outer_light - outer_dark) * value
    iris += inner * (inner_dark + (inner_light - inner_dark) * value - iris)

    region = eyeball[(slice(None), *window)]
    region *= 1 - 0.2 * _falloff(from_iris - geo.iris_radius, 0.08 * geo.iris_radius)
    limbus_blur = max(0.5, geo.iris_radius * rng.uniform(0.01, 0.04))
    region += np.clip((geo.iris_radius - from_iris) / limbus_blur + 0.5, 0, 1) * (iris - region)
    pupil = look.pupil * (1 + 0.3 * smooth_field(rng, from_pupil.shape, 3))
    region += np.clip((pupil_edge - from_pupil) / rng.uniform(0.35, 1.0) + 0.5, 0, 1) * (pupil - region)

    visible[window] = (from_iris < geo.iris_radius) & (from_pupil >= pupil_edge)
    return visible


# --------------------------------------------------------------------------- reflections


# Light sources seen on the cornea: NIR cameras carry LED illuminators, visible-light
# captures mirror lamps and windows.
NIR_REFLECTIONS = {"spot": 0.45, "ring": 0.2, "leds": 0.35}
VISIBLE_REFLECTIONS = {"spot": 0.4, "ellipse": 0.25, "ring": 0.07, "window": 0.28}


def _reflection_shape(
    rng: np.random.Generator, geo: EyeGeometry, look: Look, centre: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Subpixel (rows, cols) of one light source's reflection on the cornea."""
    scale = geo.iris_radius * SUPERSAMPLING
    row, col = centre[1] * SUPERSAMPLING - 0.5, centre[0] * SUPERSAMPLING - 0.5
    kinds = NIR_REFLECTIONS if look.nir else VISIBLE_REFLECTIONS
    kind = rng.choice(list(kinds), p=list(kinds.values()))
    if kind == "spot":
        return skimage.draw.disk((row, col), max(1.0, scale * rng.uniform(0.02, 0.08)), shape=shape)
    if kind == "ellipse":
        semi_axes = scale * rng.uniform(0.03, 0.14), scale * rng.uniform(0.015, 0.05)
        return skimage.draw.ellipse(row, col, *semi_axes, shape=shape, rotation=rng.uniform(0, np.pi))
    if kind == "ring":
        outer, inner = scale * rng.uniform(0.06, 0.2), rng.uniform(0.4, 0.7)
        rows, cols = skimage.draw.disk((row, col), outer, shape=shape)
        keep = np.hypot(rows - row, cols - col) >= inner * outer
        return rows[keep], cols[keep]
    if kind == "window":
        return _window_reflection(rng, row, col, scale, shape)
    count = int(rng.integers(2, 9))
    spacing = scale * rng.uniform(0.05, 0.12)
    angle = rng.uniform(0, np.pi)
    offsets = (np.arange(count) - (count - 1) / 2) * spacing
    radius = max(1.0, 0.3 * spacing)
    dots = [skimage.draw.disk((row + o * math.sin(angle), col + o * math.cos(angle)), radius, shape=shape) for o in offsets]
    return np.concatenate([d[0] for d in dots]), np.concatenate([d[1] for d in dots])


def _window_reflection(
    rng: np.random.Generator, row: float, col: float, scale: float, shape: tuple[int, int]
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
            pane_rows, pane_cols = row + corner_y * cos + corner_x * sin, col - corner_y * sin + corner_x * cos
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
    origin = _origin(box)[::-1] / SUPERSAMPLING  # box corner as (x, y) in output pixels
    for index in range(int(rng.integers(1, 5))):
        centre = anchor if index == 0 else anchor + rng.normal(0, 0.35 * geo.iris_radius, 2)
        cores[_reflection_shape(rng, geo, look, centre - origin, shape)] = True
    cores &= eye_alpha > 0.5
    around = _bounding_box(cores)
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
    light = rng.uniform(0.9, 1.0) * _rgb(rng.normal(1.0, 0.02, 3))
    lit = picture[(slice(None), *around)]
    lit += alpha * (light - lit)
    return cores


# --------------------------------------------------------------------------- camera


def _downsample(planes: np.ndarray) -> np.ndarray:
    """Average each SUPERSAMPLING x SUPERSAMPLING block of the last two axes (a box anti-aliasing filter)."""
    step = SUPERSAMPLING
    blocks = [planes[..., i::step, j::step] for i in range(step) for j in range(step)]
    return sum(blocks[1:], blocks[0].copy()) / (step * step)


def apply_camera(rng: np.random.Generator, look: Look, planes: np.ndarray) -> np.ndarray:
    """Uneven light, white balance, blur, tone curve and sensor noise: (3, s, s) -> (s, s, 3) in [0, 1]."""
    size = planes.shape[-1]
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    xx, yy = np.meshgrid(coords, coords)
    direction = rng.uniform(0, 2 * np.pi)
    gradient = 1 + rng.uniform(0, 0.4) * (xx * math.cos(direction) + yy * math.sin(direction))
    vx, vy = rng.uniform(-0.4, 0.4, 2)
    vignette = 1 - rng.uniform(0, 0.45) * ((xx - vx) ** 2 + (yy - vy) ** 2) / 2
    image = np.moveaxis(planes * (rng.uniform(0.6, 1.25) * gradient * vignette), 0, -1)
    if look.nir:
        image = image[..., :1]
    else:
        # White balance errs mostly along the amber-blue (colour temperature) axis, a little along green-magenta.
        temperature, tint = rng.normal(0.0, 0.06), rng.normal(0.0, 0.015)
        image = image * np.array([1 + temperature, 1 + tint, 1 - temperature], np.float32)
        grey = image.mean(-1, keepdims=True)
        image = grey + rng.uniform(0.75, 1.2) * (image - grey)

    scale = size / 224
    blur = rng.choice(["sharp", "defocus", "motion"], p=[0.45, 0.4, 0.15])
    if blur == "defocus":
        image = skimage.filters.gaussian(image, sigma=rng.uniform(0.4, 1.8) * scale, channel_axis=-1)
    elif blur == "motion":
        image = ndimage.convolve(image, _motion_kernel(rng, rng.uniform(2, 8) * scale)[..., None], mode="nearest")

    image = np.clip(image, 0, 1) ** rng.uniform(0.75, 1.3)
    noise_sigma = rng.uniform(0.004, 0.03) * (1.5 if look.nir else 1.0)
    image = skimage.util.random_noise(image, mode="gaussian", var=noise_sigma**2, rng=rng)
    return np.repeat(image, 3, axis=-1) if look.nir else image


def _motion_kernel(rng: np.random.Generator, length: float) -> np.ndarray:
    half = max(1, math.ceil(length / 2))
    angle = rng.uniform(0, np.pi)
    dr, dc = round(half * math.sin(angle)), round(half * math.cos(angle))
    kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    rows, cols, weights = skimage.draw.line_aa(half - dr, half - dc, half + dr, half + dc)
    kernel[rows, cols] = weights
    return kernel / kernel.sum()


# --------------------------------------------------------------------------- one sample


def render_with_geometry(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, EyeGeometry]:
    """`render_sample` plus the geometry it drew (tests check the mask against it)."""
    geo = sample_geometry(rng, size)
    look = sample_look(rng)
    # Skin is smooth, so it is painted per output pixel and only repeated into subpixels;
    # only the eye opening, whose edges need it, is rendered at the supersampled resolution.
    skin = paint_skin(rng, geo, look, make_canvas(geo, size, 1))
    picture = _to_subpixels(skin)
    visible_iris = np.zeros(picture.shape[1:], bool)
    box = _eye_box(geo, size)
    if box is not None:
        eye = make_canvas(geo, size, SUPERSAMPLING, box)
        coarse = make_canvas(geo, size, 1, _output_pixels(box))
        opening = eye.opening
        eye_alpha = np.clip(opening * SUPERSAMPLING + 0.5, 0, 1)  # one subpixel of soft lid edge
        eyeball = paint_sclera(rng, geo, look, coarse, box)
        iris_area = paint_iris(rng, geo, look, eye, box, eyeball)
        eyeball *= _to_subpixels(shade_under_lids(rng, geo, coarse))
        region = picture[(slice(None), *box)]
        region += eye_alpha * (eyeball - region)
        reflections = paint_reflections(rng, geo, look, region, eye_alpha, box)
        visible_iris[box] = iris_area & (opening > 0) & ~reflections
    visible_iris &= ~paint_hair(rng, geo, look, picture)

    image = apply_camera(rng, look, _downsample(np.clip(picture, 0, 1)))
    # A pixel is iris when most of its subpixels are, so the mask follows the averaged image.
    mask = _downsample(visible_iris.astype(np.float32)) > 0.5
    return np.round(image * 255).astype(np.uint8), mask.astype(np.uint8), geo


def render_sample(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic eye: (image uint8 (size, size, 3), mask uint8 (size, size) with values {0, 1})."""
    image, mask, _ = render_with_geometry(rng, size)
    return image, mask


# --------------------------------------------------------------------------- dataset on disk


def sample_rng(seed: int, split_index: int, sample_index: int) -> np.random.Generator:
    """Each sample's own generator, so output does not depend on worker count or order."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(split_index, sample_index)))


def _write_samples(directory: str, image_size: int, seed: int, split: str, start: int, stop: int) -> None:
    split_dir = Path(directory) / split
    for index in range(start, stop):
        image, mask = render_sample(sample_rng(seed, SPLITS.index(split), index), image_size)
        # imageio directly (skimage.io's own backend) because only it takes a compression level:
        # level 1 writes these noisy images twice as fast as the default for ~8% more bytes.
        imageio.imwrite(split_dir / "img" / f"{index:05d}.png", image, compress_level=1)
        imageio.imwrite(split_dir / "mask" / f"{index:05d}.png", mask * np.uint8(255), compress_level=1)


def _chunks(counts: dict[str, int], workers: int) -> list[tuple[str, int, int]]:
    """(split, start, stop) pieces: several per worker for balance, big enough to amortise the hand-off."""
    chunk = max(1, min(50, math.ceil(sum(counts.values()) / (4 * workers))))
    return [
        (split, start, min(start + chunk, count)) for split, count in counts.items() for start in range(0, count, chunk)
    ]


def _generate_into(
    directory: Path, image_size: int, counts: dict[str, int], seed: int, workers: int | None
) -> None:
    total = sum(counts.values())
    workers = max(1, workers or os.cpu_count() or 1)
    chunks = _chunks(counts, workers)
    for split, count in counts.items():
        if count:
            for kind in ("img", "mask"):
                (directory / split / kind).mkdir(parents=True)
    log.info("Generating %d synthetic iris images (%dpx, seed %d) with %d workers", total, image_size, seed, workers)
    started = time.perf_counter()
    if workers == 1 or len(chunks) <= 1:
        for chunk in chunks:
            _write_samples(str(directory), image_size, seed, *chunk)
    else:
        with concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(chunks))) as pool:
            futures = [pool.submit(_write_samples, str(directory), image_size, seed, *chunk) for chunk in chunks]
            done, pending = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
            for future in pending:  # after a failure, do not render what will be thrown away
                future.cancel()
            for future in done:
                future.result()
    seconds = time.perf_counter() - started
    log.info("Generated %d images in %.1f s (%.1f images/s)", total, seconds, total / max(seconds, 1e-9))
    (directory / COMPLETE_MARKER).write_text(json.dumps(_identity(image_size, counts, seed), indent=2) + "\n")


def is_complete(root: Path) -> bool:
    return (root / COMPLETE_MARKER).is_file()


@contextlib.contextmanager
def _exclusive(target: Path) -> Iterator[None]:
    """Serialise generation of one target across processes (e.g. parallel sweep jobs)."""
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("Waiting for another process to finish generating %s", target)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_dataset(target: Path, image_size: int, counts: dict[str, int], seed: int, workers: int | None) -> None:
    """Generate into a temporary sibling and rename it onto `target` when complete.

    Callers that may race on `target` hold `_exclusive(target)`: then no one else is
    writing, so staging folders and an unmarked target left by earlier runs are removed.
    """
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(leftover)
    if target.exists() and not is_complete(target):
        shutil.rmtree(target)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        _generate_into(staging, image_size, counts, seed, workers)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # only still there when generation failed


def _identity(image_size: int, counts: dict[str, int], seed: int) -> dict:
    """Everything that decides a dataset's content."""
    return {"generator_version": GENERATOR_VERSION, "image_size": image_size, "counts": counts, "seed": seed}


def dataset_key(image_size: int, counts: dict[str, int], seed: int) -> str:
    return hashlib.sha256(json.dumps(_identity(image_size, counts, seed), sort_keys=True).encode()).hexdigest()[:12]


def ensure_dataset(
    cache_dir: str | os.PathLike,
    image_size: int,
    num_train: int,
    num_val: int,
    num_test: int,
    seed: int,
    workers: int | None = None,
) -> Path:
    """Root of a synthetic dataset root/{train,val,test}/{img,mask}/NNNNN.png, generated on first use.

    The root is cache_dir/iris-<hash of generator version, size, counts, seed>; a
    split with count 0 is not written. A root is only ever created complete (by
    rename), so an interrupted generation is never mistaken for a dataset.
    """
    counts = {"train": num_train, "val": num_val, "test": num_test}
    cache = Path(cache_dir).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / f"iris-{dataset_key(image_size, counts, seed)}"
    with _exclusive(root):
        if is_complete(root):
            log.info("Using cached synthetic iris dataset %s", root)
        else:
            write_dataset(root, image_size, counts, seed, workers)
    return root


def load(
    cache_dir: str | os.PathLike,
    num_train: int,
    num_val: int,
    num_test: int,
    seed: int,
    image_size: int,
    channels: int,
    mask_spec: MaskSpec,
    require_val: bool = True,
) -> dict[str, Split]:
    """The data config's loader: generate (once) at image_size, then read through the folder source."""
    root = ensure_dataset(cache_dir, image_size, num_train, num_val, num_test, seed)
    return load_folder(root, image_size, channels, mask_spec, require_val)


# --------------------------------------------------------------------------- command line


def preview_grid(root: Path, count: int) -> np.ndarray:
    """Up to `count` samples from the first non-empty split, each as image | iris-tinted overlay."""
    split = next(root / s for s in SPLITS if (root / s / "img").is_dir())
    names = sorted(p.name for p in (split / "img").glob("*.png"))[:count]
    pairs = []
    for name in names:
        image = skimage.io.imread(split / "img" / name)
        mask = skimage.io.imread(split / "mask" / name) // 255
        pairs.append(np.concatenate([image, overlay(image, mask)], axis=1))
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
    write_dataset(out, args.image_size, counts, args.seed, args.workers)
    log.info("Wrote %s", out)
    if args.preview:
        skimage.io.imsave(args.preview, preview_grid(out, args.preview_count), check_contrast=False)
        log.info("Wrote preview %s", args.preview)


if __name__ == "__main__":
    main()
