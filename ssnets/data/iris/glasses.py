"""Eyeglasses in front of the eye: the frame's rim across the picture and the illuminator's glare on the lens.

Eyeglasses are the main source of variation in CASIA-Iris-Thousand: a thick dark
(or, under NIR, sometimes bright) rim crossing the frame, a lens that dims what
is behind it a little, and large soft reflections of the illuminator that can
wash out part of the iris.
"""

from __future__ import annotations

import numpy as np

from ssnets.data.iris.appearance import Look, grey, rgb
from ssnets.data.iris.canvas import make_canvas, to_subpixels
from ssnets.data.iris.geometry import EyeGeometry

GLASSES_FRACTION = 0.12
GLARE_HIDES_IRIS = 0.6  # glare blended in above this weight leaves no iris texture to see


def paint_glasses(rng: np.random.Generator, geo: EyeGeometry, look: Look, picture: np.ndarray, size: int) -> np.ndarray:
    """Paint glasses over `picture` (3, subpixel rows, cols) in place, in some captures;
    return the subpixels where they hide the iris (rim, washed-out glare)."""
    if rng.random() >= GLASSES_FRACTION:
        return np.zeros(picture.shape[1:], bool)
    # Rim and glare are broad and soft, so they are laid out per output pixel and repeated into subpixels.
    canvas = make_canvas(geo, size, 1)
    radius, half_width = geo.iris_radius, geo.half_width
    along, across = geo.to_eye_frame(canvas.x, canvas.y)

    # The lens: a superellipse around the eye, its rim a band along the outline.
    centre_along, centre_across = half_width * rng.uniform(-0.3, 0.3), radius * rng.uniform(-0.8, 0.3)
    semi_along, semi_across = half_width * rng.uniform(1.2, 1.8), radius * rng.uniform(1.8, 3.0)
    power = rng.uniform(2.5, 5.0)
    level = (
        np.abs((along - centre_along) / semi_along) ** power + np.abs((across - centre_across) / semi_across) ** power
    ) ** (1 / power) - 1
    from_rim = level * semi_across  # roughly a distance in pixels near the outline
    rim = np.abs(from_rim) < radius * rng.uniform(0.03, 0.12)
    inside = level < 0

    picture *= to_subpixels(np.where(inside, np.float32(rng.uniform(0.85, 1.0)), np.float32(1.0)))
    glare = np.zeros(canvas.shape, np.float32)
    for _ in range(int(rng.integers(1, 4))):
        spot_along = centre_along + semi_along * rng.uniform(-0.6, 0.6)
        spot_across = centre_across + semi_across * rng.uniform(-0.6, 0.6)
        sigma = radius * rng.uniform(0.08, 0.45)
        distance_sq = ((along - spot_along) ** 2 + (across - spot_across) ** 2) / (2 * sigma * sigma)
        glare = np.maximum(glare, rng.uniform(0.4, 1.0) * np.exp(-np.minimum(distance_sq, 60.0)))
    glare = to_subpixels(glare * inside)
    picture += glare * (np.float32(rng.uniform(0.9, 1.0)) - picture)

    rim = to_subpixels(rim)
    rim_colour = grey(rng.uniform(0.04, 0.6)) if look.nir else rgb(rng.uniform(0.02, 0.5, 3))
    picture[:, rim] = rim_colour.reshape(3, 1)
    return rim | (glare > GLARE_HIDES_IRIS)
