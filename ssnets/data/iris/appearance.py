"""Colours of one capture: iris palettes, skin tones, and the near-infrared (grey) or visible-light look.

`mode` chooses the light: `nir` draws every capture as a grey near-infrared
image (CASIA-Iris, ND-IRIS-0405, IITD: an 850 nm illuminator and a monochrome
sensor), `visible` as a colour photograph (UBIRIS, MICHE), `mixed` half of each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ssnets.common.errors import UserError

MODES = ("nir", "visible", "mixed")
MIXED_NIR_FRACTION = 0.5

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


def rgb(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """A colour as float32 (3, 1, 1), ready to broadcast over channel-first planes."""
    return np.asarray(values, np.float32).reshape(3, 1, 1)


def grey(value: float) -> np.ndarray:
    return rgb([value] * 3)


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
    limbus_ring: float  # how much the outer iris darkens towards the limbus (0: not at all)
    limbus_softness: float  # width of the iris/sclera transition, as a fraction of the iris radius


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise UserError(f"data.mode must be one of {', '.join(MODES)}, got {mode!r}.")


def sample_look(rng: np.random.Generator, mode: str = "mixed") -> Look:
    nir = mode == "nir" or (mode == "mixed" and rng.random() < MIXED_NIR_FRACTION)
    return _sample_nir_look(rng) if nir else _sample_visible_look(rng)


def _sample_visible_look(rng: np.random.Generator) -> Look:
    names = list(IRIS_WEIGHTS)
    palette = IRIS_PALETTES[names[rng.choice(len(names), p=list(IRIS_WEIGHTS.values()))]]
    tint = rng.uniform(0.7, 1.25) * rng.normal(1.0, 0.05, 3)
    outer_dark, outer_light, inner_dark, inner_light = (rgb(np.array(c) * tint) for c in palette)
    stop = rng.uniform(0, len(SKIN_STOPS) - 1)
    low = int(stop)
    skin = SKIN_STOPS[low] + (stop - low) * (SKIN_STOPS[min(low + 1, len(SKIN_STOPS) - 1)] - SKIN_STOPS[low])
    sclera = np.array([0.86, 0.82, 0.78]) * rng.uniform(0.75, 1.05) * rng.normal(1.0, 0.03, 3)
    sclera *= 1.0 + np.array([0.04, -0.01, -0.05]) * rng.uniform(0, 1.2)  # neutral to yellowish
    return Look(
        nir=False,
        skin=rgb(np.clip(skin * rng.normal(1.0, 0.04, 3), 0.05, 1.0)),
        sclera=rgb(np.clip(sclera, 0.4, 1.0)),
        iris_outer=(outer_dark, outer_light),
        iris_inner=(inner_dark, inner_light),
        iris_contrast=rng.uniform(0.7, 1.3),
        pupil=rgb(np.array([0.03, 0.025, 0.025]) * rng.uniform(0.5, 1.8)),
        lash=rgb(np.array([0.06, 0.045, 0.035]) * rng.uniform(0.4, 1.6)),
        vessel_alpha=rng.uniform(0.15, 0.55),
        limbus_ring=rng.uniform(0.2, 0.75),
        limbus_softness=rng.uniform(0.01, 0.05),
    )


def _sample_nir_look(rng: np.random.Generator) -> Look:
    """Near-infrared: melanin barely absorbs, so every iris looks mid-grey and richly textured.

    Published NIR databases show bright skin (often the brightest thing in the
    frame, sometimes saturated), a light-grey sclera, an iris whose mean is often
    close to the sclera's, so that the limbus is a faint, soft step rather than a
    dark ring, and a dark but not black pupil; lashes and brows stay dark.
    """
    skin = rng.uniform(0.5, 1.0)
    sclera = float(np.clip(skin * rng.uniform(0.6, 1.05), 0.3, 0.95))
    iris_mean = sclera * rng.uniform(0.5, 0.9)
    spread = rng.uniform(0.3, 0.7)  # texture: dark and light ends around the mean
    inner = rng.uniform(0.8, 1.15)  # the pupillary zone is a little darker or lighter
    return Look(
        nir=True,
        skin=grey(skin),
        sclera=grey(sclera),
        iris_outer=(grey(iris_mean * (1 - spread)), grey(iris_mean * (1 + spread))),
        iris_inner=(grey(iris_mean * inner * (1 - spread)), grey(iris_mean * inner * (1 + spread))),
        iris_contrast=rng.uniform(1.0, 2.2),
        pupil=grey(min(rng.uniform(0.02, 0.14), 0.45 * iris_mean)),
        lash=grey(rng.uniform(0.03, 0.15)),
        vessel_alpha=0.0,
        limbus_ring=rng.uniform(0.0, 0.45),
        limbus_softness=rng.uniform(0.015, 0.07),
    )
