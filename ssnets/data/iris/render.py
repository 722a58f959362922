"""One sample: geometry and look drawn, skin, eyeball, reflections and hair painted, then the camera applied.

Real iris sets (UBIRIS.v2 / NICE-I, NICE-II, MobBIO) cannot be downloaded on
the machines this project runs on, so the default dataset is drawn here. Models
trained only on it are judged on real photographs, so every sample varies what
real captures vary: skin tone and shading, eye shape and openness, gaze and
zoom and framing, iris colour and stroma texture, off-centre pupils, eyelid and
eyelash occlusion, brows, stray hair and eyeglasses, corneal reflections and lid
glints, and the camera's light, blur, resolution, tone curve, noise and JPEG
compression; `mode` makes the captures near-infrared (grey), visible-light or
half of each. The scene is a camera frame `frame_aspect` times as wide as high
(4:3 by default, like the 640x480 and 320x240 frames of iris sensors), stored
squeezed into a square image just as a real 4:3 photo is resized for the model.

Each sample is rendered at `SUPERSAMPLING` times the output size and averaged
down, so edges are anti-aliased; the mask is downsampled over the same blocks
(a pixel is iris when most of its area is visible iris), so it matches the
image pixel for pixel. Mask convention (NICE-I): 1 = visible iris, i.e. inside
the iris, outside the pupil, between the eyelids and not hidden by eyelashes
or specular reflections; 0 = everything else.

Rendering works on channel-first float32 planes (3, H, W) and paints the eye
only inside the eye opening's bounding box: both keep a 224x224 sample at a
few tens of milliseconds.
"""

from __future__ import annotations

import numpy as np

from ssnets.data.iris.appearance import sample_look
from ssnets.data.iris.camera import apply_camera
from ssnets.data.iris.canvas import SUPERSAMPLING, downsample, eye_box, make_canvas, output_pixels, to_subpixels
from ssnets.data.iris.eyeball import paint_iris, paint_sclera
from ssnets.data.iris.geometry import EyeGeometry, sample_geometry
from ssnets.data.iris.glasses import paint_glasses
from ssnets.data.iris.reflections import paint_reflections
from ssnets.data.iris.skin import paint_hair, paint_skin, shade_under_lids

DEFAULT_MODE = "mixed"
DEFAULT_FRAME_ASPECT = 4 / 3


def render_with_geometry(
    rng: np.random.Generator, size: int, mode: str = DEFAULT_MODE, frame_aspect: float = DEFAULT_FRAME_ASPECT
) -> tuple[np.ndarray, np.ndarray, EyeGeometry]:
    """`render_sample` plus the geometry it drew (tests check the mask against it)."""
    geo = sample_geometry(rng, size, frame_aspect)
    look = sample_look(rng, mode)
    # Skin is smooth, so it is painted per output pixel and only repeated into subpixels;
    # only the eye opening, whose edges need it, is rendered at the supersampled resolution.
    skin = paint_skin(rng, geo, look, make_canvas(geo, size, 1))
    picture = to_subpixels(skin)
    visible_iris = np.zeros(picture.shape[1:], bool)
    box = eye_box(geo, size)
    if box is not None:
        eye = make_canvas(geo, size, SUPERSAMPLING, box)
        coarse = make_canvas(geo, size, 1, output_pixels(box))
        opening = eye.opening
        eye_alpha = np.clip(opening * SUPERSAMPLING + 0.5, 0, 1)  # one subpixel of soft lid edge
        eyeball = paint_sclera(rng, geo, look, coarse, box)
        iris_area = paint_iris(rng, geo, look, eye, box, eyeball)
        eyeball *= to_subpixels(shade_under_lids(rng, geo, coarse))
        region = picture[(slice(None), *box)]
        region += eye_alpha * (eyeball - region)
        reflections = paint_reflections(rng, geo, look, region, eye_alpha, box)
        visible_iris[box] = iris_area & (opening > 0) & ~reflections
    visible_iris &= ~paint_hair(rng, geo, look, picture)
    visible_iris &= ~paint_glasses(rng, geo, look, picture, size)

    image = apply_camera(rng, look, np.clip(downsample(picture), 0, 1))
    # A pixel is iris when most of its subpixels are, so the mask follows the averaged image.
    mask = downsample(visible_iris.astype(np.float32)) > 0.5
    return np.round(image * 255).astype(np.uint8), mask.astype(np.uint8), geo


def render_sample(
    rng: np.random.Generator, size: int, mode: str = DEFAULT_MODE, frame_aspect: float = DEFAULT_FRAME_ASPECT
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic eye: (image uint8 (size, size, 3), mask uint8 (size, size) with values {0, 1})."""
    image, mask, _ = render_with_geometry(rng, size, mode, frame_aspect)
    return image, mask


def sample_rng(seed: int, split_index: int, sample_index: int) -> np.random.Generator:
    """Each sample's own generator, so output does not depend on worker count or order."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(split_index, sample_index)))
