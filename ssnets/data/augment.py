"""Geometric augmentation of images and masks together, with Keras preprocessing layers.

Each layer receives {"images", "segmentation_masks"} so one random transform
moves both; Keras resamples masks with nearest interpolation, and pixels
moved in from outside the frame are 0 (background) in both.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf
from omegaconf import DictConfig

Augmenter = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


def build_augmenter(cfg: DictConfig, seed: int) -> Augmenter | None:
    """A batch function (images float32 B,H,W,C; masks int32 B,H,W) or None for no augmentation."""
    layers = augmentation_layers(cfg, seed)
    if not layers:
        return None

    def augment(images: tf.Tensor, masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        data = {"images": images, "segmentation_masks": tf.cast(masks[..., None], tf.float32)}
        for layer in layers:
            data = layer(data, training=True)
        return data["images"], tf.cast(tf.round(data["segmentation_masks"][..., 0]), tf.int32)

    return augment


def augmentation_layers(cfg: DictConfig, seed: int) -> list[keras.layers.Layer]:
    strength = cfg.strength
    fill = {"fill_mode": "constant", "fill_value": 0.0}
    layers = []
    if cfg.horizontal_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if cfg.rotation_degrees:
        layers.append(keras.layers.RandomRotation(cfg.rotation_degrees * strength / 360.0, seed=seed + 1, **fill))
    if cfg.shift:
        shift = cfg.shift * strength
        layers.append(keras.layers.RandomTranslation(shift, shift, seed=seed + 2, **fill))
    if cfg.zoom:
        zoom = cfg.zoom * strength
        layers.append(keras.layers.RandomZoom((-zoom, zoom), seed=seed + 3, **fill))
    return layers
