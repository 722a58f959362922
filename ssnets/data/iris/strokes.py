"""Hair-thin strokes (eyelashes, eyebrow and head hairs, scleral vessels, lid glints): Bézier curves rasterised
with a round brush."""

from __future__ import annotations

import math

import numpy as np

from ssnets.data.iris.canvas import SUPERSAMPLING
from ssnets.data.iris.geometry import EyeGeometry


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
    x, y = geo.to_pixels(*geo.from_eye_frame(points[:, 0], points[:, 1]))
    radii = radius_ends[stroke, 0] + (radius_ends[stroke, 1] - radius_ends[stroke, 0]) * t[:, 0]
    return np.stack([y * SUPERSAMPLING - 0.5, x * SUPERSAMPLING - 0.5], -1), radii * SUPERSAMPLING


def rasterize_strokes(shape: tuple[int, int], points: np.ndarray, radii: np.ndarray) -> np.ndarray:
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


def upper_lash_strokes(rng: np.random.Generator, geo: EyeGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Lashes grow in clumps along the upper margin, fanning outwards; some curl up, some hang over the eye."""
    radius = geo.iris_radius
    count = int(rng.integers(50, 300))
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


def lower_lash_strokes(rng: np.random.Generator, geo: EyeGeometry) -> tuple[np.ndarray, np.ndarray]:
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


def brow_strokes(rng: np.random.Generator, geo: EyeGeometry, size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Eyebrow hairs in an arched band well above the eye, rising at the nose end and lying
    flat towards the temple; None when the band is outside the image (zoomed-in captures)."""
    radius = geo.iris_radius
    count = int(rng.integers(200, 900))
    towards_temple = rng.uniform(0, 1, count)  # 0 at the nose end, 1 at the tail
    u = geo.medial_side * (0.95 - 2.15 * towards_temple)
    arch = np.clip(1 - ((towards_temple - 0.65) / 0.65) ** 2, 0, 1)
    middle = -(geo.upper_height + radius * rng.uniform(1.0, 2.0) + radius * rng.uniform(0.2, 0.6) * arch)
    half_thickness = radius * rng.uniform(0.2, 0.4) * (1.2 - 0.7 * towards_temple)
    root = np.stack([u * geo.half_width, middle + half_thickness * rng.uniform(-1, 1, count)], -1)
    x, y = geo.to_pixels(*geo.from_eye_frame(root[:, 0], root[:, 1]))
    if not ((y > -radius) & (y < size + radius) & (x > -radius) & (x < size + radius)).any():
        return None
    lying = np.clip(towards_temple / 0.3, 0, 1)
    direction_along, direction_across = -geo.medial_side * lying, -(1 - 0.75 * lying)
    angle = np.arctan2(direction_along, direction_across) + rng.normal(0, 0.15, count)
    curl = rng.uniform(-0.3, 0.3, count)
    length = radius * rng.uniform(0.15, 0.35, count)
    thickness = radius * rng.uniform(0.007, 0.016) * np.ones((count, 1)) * np.array([[1.0, 0.4]])
    return _curved_strokes(geo, root, angle, curl, length, thickness)


def head_hair_strokes(rng: np.random.Generator, geo: EyeGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Strands of head hair (a fringe) falling across the frame from above the eye, some over the eye itself."""
    radius = geo.iris_radius
    count = int(rng.integers(3, 40))
    along = geo.half_width * (rng.uniform(-1.6, 1.6) + rng.normal(0, 0.4, count))
    root = np.stack([along, -(geo.upper_height + radius * rng.uniform(0.3, 4.0, count))], -1)
    angle = rng.normal(0, 0.3) + rng.normal(0, 0.25, count)
    curl = rng.uniform(-0.8, 0.8, count)
    length = radius * rng.uniform(1.5, 6.0, count)
    thickness = radius * rng.uniform(0.01, 0.03) * rng.uniform(0.7, 1.3, (count, 1)) * np.array([[1.0, 0.6]])
    return _curved_strokes(geo, root, angle, curl, length, thickness)


def lid_glint_strokes(rng: np.random.Generator, geo: EyeGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Tiny bright dots where the illuminator catches the tear film along the lower lid margin."""
    radius = geo.iris_radius
    count = int(rng.integers(1, 14))
    u = rng.uniform(-0.75, 0.75, count)
    root = np.stack([u * geo.half_width, geo.lower_lid(u) + radius * rng.uniform(-0.02, 0.05, count)], -1)
    stretch = np.stack([radius * rng.uniform(0.0, 0.06, count), np.zeros(count)], -1)
    size = radius * rng.uniform(0.008, 0.025, (count, 1)) * np.ones((1, 2))
    return _bezier_points(geo, root - stretch, root, root + stretch, size)


def vessel_strokes(rng: np.random.Generator, geo: EyeGeometry) -> tuple[np.ndarray, np.ndarray]:
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
