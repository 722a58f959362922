"""Skin around the eye: tone and texture, lid creases and hollows, shade cast on the eyeball, brow, lashes and hair."""

from __future__ import annotations

import numpy as np

from ssnets.data.iris.appearance import Look, grey, rgb
from ssnets.data.iris.canvas import (
    SUPERSAMPLING,
    Canvas,
    blend_at,
    fade_at_corners,
    falloff,
    ridge,
    smooth_field,
)
from ssnets.data.iris.geometry import EyeGeometry, lid_profile
from ssnets.data.iris.strokes import (
    brow_strokes,
    head_hair_strokes,
    lid_glint_strokes,
    lower_lash_strokes,
    rasterize_strokes,
    upper_lash_strokes,
)

HEAD_HAIR_FRACTION = 0.2


def paint_skin(rng: np.random.Generator, geo: EyeGeometry, look: Look, canvas: Canvas) -> np.ndarray:
    """(3, H, W) skin around the eye, including the lid margins; the eye opening is painted over it."""
    shape = canvas.shape
    shade = 1.0 + 0.08 * smooth_field(rng, shape, 3) + 0.025 * smooth_field(rng, shape, 9)
    shade += rng.uniform(0.0, 0.05) * smooth_field(rng, shape, 16)  # folds and unevenness of the skin surface
    shade += rng.uniform(0.03, 0.12) * (rng.random(shape, dtype=np.float32) - 0.5)  # pores, fine texture
    shade *= _lid_relief(rng, geo, canvas)
    skin = look.skin * shade
    if look.nir:
        # Skin is glossy under an NIR illuminator: patches of sheen, brightest on the lids and brow bone.
        sheen = np.maximum(smooth_field(rng, shape, 7) - rng.uniform(1.0, 2.5), 0)
        skin += rng.uniform(0.0, 0.3) * sheen
    else:
        redness = rng.uniform(0.0, 0.06) * (0.5 + 0.5 * smooth_field(rng, shape, 5))
        skin += rgb([1.0, -0.4, -0.5]) * redness

    # The lower lid's wet margin shows as a pinkish band between eyeball and lashes.
    radius = geo.iris_radius
    below_lower = canvas.across - canvas.lower
    band = np.clip(1 - below_lower / (radius * rng.uniform(0.05, 0.12)), 0, 1) * (below_lower >= 0)
    band *= fade_at_corners(canvas.u) * rng.uniform(0.4, 0.85)
    margin = look.skin * rgb([1.0, 1.0, 1.0] if look.nir else [1.05, 0.72, 0.72]) + 0.1
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
        fade = fade_at_corners(canvas.u / 1.2)
        relief -= rng.uniform(0.08, 0.25) * ridge(from_crease, radius * rng.uniform(0.05, 0.12)) * fade
        # The fold above the crease shades the lid skin just below it.
        relief -= rng.uniform(0.0, 0.12) * falloff(from_crease, 0.2 * radius) * (from_crease > 0) * fade

    above_upper = canvas.upper - canvas.across
    lash_line = np.clip(1 - above_upper / (radius * rng.uniform(0.04, 0.1)), 0, 1) * (above_upper >= 0)
    relief *= 1 - rng.uniform(0.3, 0.75) * lash_line * fade_at_corners(canvas.u)

    below_lower = canvas.across - canvas.lower
    under_eye = ridge(below_lower - 0.5 * radius, 0.6 * radius) * ridge(canvas.u * canvas.u, 1.0)
    relief -= rng.uniform(0.0, 0.2) * under_eye
    lower_crease = ridge(below_lower - radius * rng.uniform(0.35, 0.7), 0.05 * radius)
    relief -= rng.uniform(0.0, 0.08) * lower_crease * fade_at_corners(canvas.u)
    nose_side = ridge(canvas.u - 1.25 * geo.medial_side, 0.45) * ridge(canvas.across, 1.5 * radius)
    relief -= rng.uniform(0.0, 0.15) * nose_side
    return relief


def shade_under_lids(rng: np.random.Generator, geo: EyeGeometry, coarse: Canvas) -> np.ndarray:
    """Shading of the eyeball: the upper lid and its lashes darken its top, the lower lid a little of the bottom."""
    radius = geo.iris_radius
    shade = 1 - rng.uniform(0.25, 0.6) * falloff(coarse.across - coarse.upper, radius * rng.uniform(0.12, 0.35))
    shade *= 1 - rng.uniform(0.05, 0.25) * falloff(coarse.lower - coarse.across, radius * rng.uniform(0.08, 0.2))
    return shade


def paint_hair(rng: np.random.Generator, geo: EyeGeometry, look: Look, picture: np.ndarray) -> np.ndarray:
    """Paint eyebrow, eyelashes, lid glints and stray head hair in place; return the boolean coverage
    (subpixels) of what hides the iris."""
    shape = picture.shape[1:]
    brow = brow_strokes(rng, geo, shape[0] // SUPERSAMPLING)
    if brow is not None:
        brow_colour = np.minimum(look.lash * rng.uniform(1.0, 2.5), 1)
        blend_at(picture, rasterize_strokes(shape, *brow), brow_colour, rng.uniform(0.6, 0.95))
    glints = rasterize_strokes(shape, *lid_glint_strokes(rng, geo))
    blend_at(picture, glints, grey(rng.uniform(0.85, 1.0)), rng.uniform(0.6, 1.0))
    upper = rasterize_strokes(shape, *upper_lash_strokes(rng, geo))
    lower = rasterize_strokes(shape, *lower_lash_strokes(rng, geo))
    blend_at(picture, upper, look.lash, rng.uniform(0.8, 0.97))
    blend_at(picture, lower & ~upper, look.lash, rng.uniform(0.5, 0.85))
    hidden = upper | lower | glints
    if rng.random() < HEAD_HAIR_FRACTION:
        hair = rasterize_strokes(shape, *head_hair_strokes(rng, geo))
        blend_at(picture, hair, np.minimum(look.lash * rng.uniform(0.8, 3.0), 1), rng.uniform(0.75, 0.97))
        hidden |= hair
    return hidden
