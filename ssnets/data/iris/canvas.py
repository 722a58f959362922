"""Sub-pixel sampling grids, index boxes, smooth random fields and the blending primitives the painters share.

The eye is painted with `SUPERSAMPLING` subpixels per output pixel and axis;
`to_subpixels` and `downsample` move planes between the two resolutions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ssnets.data.iris.geometry import EyeGeometry

SUPERSAMPLING = 2

Box = tuple[slice, slice]


@dataclass(frozen=True)
class Canvas:
    """Coordinates of every subpixel: scene x/y and the eye frame (u = along / half_width)."""

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
    x, y = np.meshgrid(centres[cols] * np.float32(geo.pixel_aspect), centres[rows])
    along, across = geo.to_eye_frame(x, y)
    u = along / geo.half_width
    return Canvas(x, y, u, across, geo.upper_lid(u), geo.lower_lid(u), geo.half_width)


def eye_box(geo: EyeGeometry, size: int) -> Box | None:
    """Subpixel rows/cols of the rectangle holding the eye opening, clipped to the image (None when outside)."""
    top = geo.upper_height * (1 + abs(geo.upper_skew)) + 1
    bottom = geo.lower_height * (1 + abs(geo.lower_skew)) + 1
    reach = geo.half_width + 1
    x, y = geo.to_pixels(
        *geo.from_eye_frame(np.array([-reach, reach, reach, -reach]), np.array([-top, -top, bottom, bottom]))
    )
    image = (slice(0, size * SUPERSAMPLING), slice(0, size * SUPERSAMPLING))
    return subpixel_box(y.min(), y.max(), x.min(), x.max(), within=image)


def subpixel_box(top: float, bottom: float, left: float, right: float, within: Box) -> Box | None:
    """Subpixel index box covering the whole output pixels under a rectangle, clipped to `within` (None when empty)."""

    def clipped(low: float, high: float, limits: slice) -> slice:
        start, stop = math.floor(low) * SUPERSAMPLING, math.ceil(high) * SUPERSAMPLING
        return slice(max(limits.start, start), min(limits.stop, stop))

    rows, cols = clipped(top, bottom, within[0]), clipped(left, right, within[1])
    return (rows, cols) if rows.start < rows.stop and cols.start < cols.stop else None


def output_pixels(box: Box) -> Box:
    """The output-pixel box whose subpixels are `box` (which covers whole pixels)."""
    return slice(box[0].start // SUPERSAMPLING, box[0].stop // SUPERSAMPLING), slice(
        box[1].start // SUPERSAMPLING, box[1].stop // SUPERSAMPLING
    )


def to_subpixels(planes: np.ndarray) -> np.ndarray:
    """Repeat each output pixel SUPERSAMPLING x SUPERSAMPLING times (last two axes)."""
    return np.repeat(np.repeat(planes, SUPERSAMPLING, axis=-2), SUPERSAMPLING, axis=-1)


def downsample(planes: np.ndarray) -> np.ndarray:
    """Average each SUPERSAMPLING x SUPERSAMPLING block of the last two axes (a box anti-aliasing filter)."""
    step = SUPERSAMPLING
    blocks = [planes[..., i::step, j::step] for i in range(step) for j in range(step)]
    return sum(blocks[1:], blocks[0].copy()) / (step * step)


def bounding_box(mask: np.ndarray) -> Box | None:
    """Index box around the set elements of `mask` (None when none are)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def origin(box: Box) -> np.ndarray:
    """(row, col) of a box's first element, to shift stroke points into box coordinates."""
    return np.array([box[0].start, box[1].start], np.float64)


def relative(inner: Box, outer: Box) -> Box:
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


def ridge(distance: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-np.minimum((distance / width) ** 2, EXP_FLOOR))


def fade_at_corners(u: np.ndarray) -> np.ndarray:
    """1 across the middle of the eye, falling to 0 at the corners (|u| = 1)."""
    u_sq = u * u
    return np.clip(1 - u_sq * u_sq, 0, 1)


def falloff(distance: np.ndarray, scale: float) -> np.ndarray:
    """exp(-distance / scale), and 1 where distance is negative."""
    return np.exp(-np.minimum(np.maximum(distance, 0) / scale, EXP_FLOOR))


def blend_at(planes: np.ndarray, coverage: np.ndarray, colour: np.ndarray, alpha: float) -> None:
    """Blend `colour` over the subpixels where `coverage` is set, touching only those."""
    index = np.flatnonzero(coverage)
    flat = planes.reshape(3, -1)
    flat[:, index] += alpha * (colour.reshape(3, 1) - flat[:, index])
