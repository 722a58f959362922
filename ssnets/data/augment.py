"""Augmentation of images and masks together, with Keras preprocessing layers.

Each geometric layer receives {"images", "segmentation_masks"}, so one random
transform moves both: Keras resamples masks with nearest interpolation, and
pixels moved in from outside the frame are 0 (background) in both. Photometric
layers (brightness, contrast) change the images and pass the masks through.

The `augmentation` config group chooses what is applied; every amount is
scaled by `strength` (0 turns the geometry and photometry off, for searches):
- horizontal_flip / vertical_flip, and rotate90 (a random transpose per image,
  which with both flips gives all eight 90-degree rotations and mirrorings);
- rotation_degrees, shift (fraction of the size), zoom (fraction: scale in 1 +- zoom);
- elastic (RandomElasticTransform's displacement factor; 0: none);
- brightness, contrast (fractions of the value range; 0: none).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf
from omegaconf import DictConfig

Augmenter = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]
PIXEL_RANGE = (0.0, 255.0)


def build_augmenter(cfg: DictConfig, seed: int) -> Augmenter | None:
    """A batch function (images float32 B,H,W,C; masks int32 B,H,W) or None for no augmentation."""
    layers = augmentation_layers(cfg, seed)
    transpose = cfg.get("rotate90", False)
    if not layers and not transpose:
        return None

    def augment(images: tf.Tensor, masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        masks = tf.cast(masks[..., None], tf.float32)
        if transpose:
            images, masks = random_transpose(images, masks, seed + 5)
        data = {"images": images, "segmentation_masks": masks}
        for layer in layers:
            data = layer(data, training=True)
        return data["images"], tf.cast(tf.round(data["segmentation_masks"][..., 0]), tf.int32)

    return augment


def augmentation_layers(cfg: DictConfig, seed: int) -> list[keras.layers.Layer]:
    strength = cfg.strength
    fill = {"fill_mode": "constant", "fill_value": 0.0}
    flips = {(True, True): "horizontal_and_vertical", (True, False): "horizontal", (False, True): "vertical"}
    layers = []
    flip_mode = flips.get((bool(cfg.horizontal_flip), bool(cfg.get("vertical_flip", False))))
    if flip_mode:
        layers.append(keras.layers.RandomFlip(flip_mode, seed=seed))
    if cfg.rotation_degrees:
        layers.append(keras.layers.RandomRotation(cfg.rotation_degrees * strength / 360.0, seed=seed + 1, **fill))
    if cfg.shift:
        shift = cfg.shift * strength
        layers.append(keras.layers.RandomTranslation(shift, shift, seed=seed + 2, **fill))
    if cfg.zoom:
        zoom = cfg.zoom * strength
        layers.append(keras.layers.RandomZoom((-zoom, zoom), seed=seed + 3, **fill))
    if cfg.get("elastic", 0.0):
        layers.append(
            keras.layers.RandomElasticTransform(factor=cfg.elastic * strength, value_range=PIXEL_RANGE, seed=seed + 4)
        )
    if cfg.get("brightness", 0.0):
        layers.append(keras.layers.RandomBrightness(cfg.brightness * strength, value_range=PIXEL_RANGE, seed=seed + 6))
    if cfg.get("contrast", 0.0):
        layers.append(keras.layers.RandomContrast(cfg.contrast * strength, value_range=PIXEL_RANGE, seed=seed + 7))
    return layers


def random_transpose(images: tf.Tensor, masks: tf.Tensor, seed: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Swap height and width of a random half of the images and their masks (data.image_size makes them square)."""
    chosen = tf.random.uniform([tf.shape(images)[0], 1, 1, 1], seed=seed) < 0.5
    return (
        tf.where(chosen, tf.transpose(images, [0, 2, 1, 3]), images),
        tf.where(chosen, tf.transpose(masks, [0, 2, 1, 3]), masks),
    )
