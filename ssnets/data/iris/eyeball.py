"""The eyeball inside the opening: sclera with vessels, and the iris with its stroma texture and the pupil."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ssnets.data.iris.appearance import Look, rgb
from ssnets.data.iris.canvas import (
    Box,
    Canvas,
    blend_at,
    falloff,
    origin,
    relative,
    ridge,
    smooth_field,
    subpixel_box,
    to_subpixels,
)
from ssnets.data.iris.geometry import EyeGeometry
from ssnets.data.iris.strokes import rasterize_strokes, vessel_strokes


def paint_sclera(rng: np.random.Generator, geo: EyeGeometry, look: Look, coarse: Canvas, box: Box) -> np.ndarray:
    """(3, h, w) white of the eye over the subpixels `box`: darker and pinker towards the corners, with vessels.

    Its shading is smooth, so it is computed per output pixel (`coarse` holds their
    coordinates) and repeated; only the thin vessels are drawn per subpixel.
    """
    corner = np.minimum(coarse.u * coarse.u, 1)
    shade = 1.0 - rng.uniform(0.15, 0.45) * corner + 0.05 * smooth_field(rng, coarse.shape, 5)
    sclera = look.sclera * shade
    if look.nir:
        return to_subpixels(sclera)
    middle = 0.5 * (coarse.upper + coarse.lower)
    to_caruncle = np.sqrt(((coarse.u - 0.97 * geo.medial_side) * geo.half_width) ** 2 + (coarse.across - middle) ** 2)
    caruncle = rng.uniform(0.6, 0.9) * ridge(to_caruncle, 0.22 * geo.iris_radius)
    pinkness = np.maximum(corner * corner * rng.uniform(0.05, 0.2), caruncle)
    sclera = to_subpixels(sclera + pinkness * (rgb([0.85, 0.55, 0.52]) * float(look.sclera.mean()) - sclera))
    points, radii = vessel_strokes(rng, geo)
    vessels = rasterize_strokes(sclera.shape[1:], points - origin(box), radii)
    blend_at(sclera, vessels, rgb([0.62, 0.16, 0.14]), look.vessel_alpha)
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
    value += rng.uniform(0.05, 0.2) * ridge(rho - collarette, 0.035)
    value -= rng.uniform(0.0, 0.1) * ridge(rho - collarette - 0.07, 0.04)
    value -= _crypts(rng, rho, theta, collarette, many=look.nir)
    value -= _contraction_furrows(rng, rho, theta)
    limbus_width = rng.uniform(0.08, 0.3)
    towards_limbus = np.clip((rho - 1 + limbus_width) / limbus_width, 0, 1)
    value *= 1.0 - look.limbus_ring * towards_limbus * np.sqrt(towards_limbus)
    value *= 1.0 - rng.uniform(0.3, 0.7) * ridge(rho, 0.035)  # pigment ruff at the pupil margin
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


def _crypts(
    rng: np.random.Generator, rho: np.ndarray, theta: np.ndarray, collarette: np.ndarray, many: bool
) -> np.ndarray:
    """Darkening by Fuchs' crypts: radially elongated holes, mostly just outside the collarette;
    NIR images show `many` of them, being free of the pigment that hides them in visible light."""
    count = int(rng.integers(6, 40) if many else rng.integers(2, 26))
    angles = rng.uniform(0, 2 * np.pi, count).astype(np.float32)
    at_collarette = collarette[0, (angles / (2 * np.pi) * POLAR_COLUMNS).astype(int) % POLAR_COLUMNS]
    radii = np.clip(at_collarette + rng.uniform(-0.1, 0.4, count), 0.05, 0.9)
    radial = ridge(rho[:, 0][None, :] - radii[:, None], rng.uniform(0.03, 0.12, (count, 1)))
    angular = ridge(_angle_difference(theta[0][None, :], angles[:, None]), rng.uniform(0.015, 0.08, (count, 1)))
    depth = rng.uniform(0.1, 0.45, (count, 1))
    return np.einsum("kr,kt->rt", (depth * radial).astype(np.float32), angular.astype(np.float32))


def _contraction_furrows(rng: np.random.Generator, rho: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Concentric dark arcs in the outer iris."""
    count = int(rng.integers(0, 5))
    depth = rng.uniform(0.05, 0.2, (count, 1))
    radial = depth * ridge(rho[:, 0][None, :] - rng.uniform(0.55, 0.9, (count, 1)), 0.015)
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
    left, right = geo.to_pixels(np.array([cx - reach, cx + reach]), cy)[0]
    window = subpixel_box(cy - reach, cy + reach, left, right, within=box)
    if window is None:
        return visible
    window = relative(window, box)
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
    region *= 1 - 0.3 * look.limbus_ring * falloff(from_iris - geo.iris_radius, 0.08 * geo.iris_radius)
    limbus_blur = max(0.5, geo.iris_radius * look.limbus_softness)
    region += np.clip((geo.iris_radius - from_iris) / limbus_blur + 0.5, 0, 1) * (iris - region)
    pupil = look.pupil * (1 + 0.3 * smooth_field(rng, from_pupil.shape, 3))
    region += np.clip((pupil_edge - from_pupil) / rng.uniform(0.35, 1.0) + 0.5, 0, 1) * (pupil - region)

    visible[window] = (from_iris < geo.iris_radius) & (from_pupil >= pupil_edge)
    return visible
