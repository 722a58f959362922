"""Where the parts of one eye lie: iris, pupil and eyelid curves, and how they are drawn at random."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EyeGeometry:
    """Where the parts of one eye lie, in scene units (x right, y down).

    The scene is the camera's frame: `pixel_aspect` times as wide as high (4:3 for
    the usual iris cameras, 640x480 or 320x240). It is stored squeezed into a
    square image, as `data=folder` and `ssnets.predict` resize a real 4:3 photo,
    so output pixel (row, col) covers scene x in [col, col + 1) * pixel_aspect and
    y in [row, row + 1): a scene unit is one output pixel vertically.

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
    pixel_aspect: float = 1.0  # scene units per output pixel horizontally

    def to_pixels(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scene (x, y) -> output-pixel (x, y)."""
        return x / self.pixel_aspect, y

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


def sample_geometry(rng: np.random.Generator, size: int, frame_aspect: float = 1.0) -> EyeGeometry:
    """An eye in a scene `size` high and `frame_aspect` x `size` wide.

    Camera distance and framing vary as in iris databases: the iris radius spans
    a tenth (a wide periocular shot) to nearly two fifths (CASIA-Iris-Interval's
    close-ups) of the frame height, and the eye is often well off centre.
    """
    iris_radius = size * rng.uniform(0.1, 0.38)
    width = size * frame_aspect
    iris_center = (width * (0.5 + rng.uniform(-0.24, 0.24)), size * (0.5 + rng.uniform(-0.2, 0.2)))
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
        pixel_aspect=frame_aspect,
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
