"""Augmentation moves images and masks together and keeps masks as class ids."""

import numpy as np
import tensorflow as tf

from ssnets.data.augment import build_augmenter

from conftest import compose_config


def test_image_and_mask_move_together():
    cfg = compose_config(["augmentation=iris"]).augmentation
    augment = build_augmenter(cfg, seed=3)
    # The image is bright exactly where the mask is 1, so after any shared
    # transform the two must still agree (up to interpolation at the edges).
    masks = np.zeros((8, 64, 64), np.int32)
    masks[:, 16:48, 20:40] = 1
    images = np.repeat((masks * 200.0)[..., None], 3, axis=-1).astype(np.float32)
    out_images, out_masks = augment(tf.constant(images), tf.constant(masks))
    out_images, out_masks = out_images.numpy(), out_masks.numpy()
    assert out_masks.dtype == np.int32 and set(np.unique(out_masks)) <= {0, 1}
    assert not np.array_equal(out_masks, masks), "the transform did nothing"
    disagree = np.mean((out_images[..., 0] > 100) != (out_masks == 1))
    assert disagree < 0.02


def test_none_means_no_augmenter():
    assert build_augmenter(compose_config(["augmentation=none"]).augmentation, seed=0) is None


def test_real_data_augmentation_keeps_images_and_masks_together():
    """Flips, transposes and zoom move both; brightness and contrast leave the masks alone."""
    augment = build_augmenter(compose_config(["augmentation=real"]).augmentation, seed=1)
    masks = np.zeros((16, 64, 64), np.int32)
    masks[:, 4:30, 8:20] = 1  # off-centre and not symmetric, so every flip and transpose shows
    images = np.repeat((40.0 + masks * 160.0)[..., None], 3, axis=-1).astype(np.float32)
    out_images, out_masks = (tensor.numpy() for tensor in augment(tf.constant(images), tf.constant(masks)))
    assert set(np.unique(out_masks)) <= {0, 1}
    assert len({out_masks[i].tobytes() for i in range(16)}) > 4, "the images were not transformed differently"
    grey = out_images[..., 0]
    threshold = np.array(
        [(grey[i][out_masks[i] == 1].mean() + grey[i][out_masks[i] == 0].mean()) / 2 for i in range(16)]
    )
    disagree = np.mean((grey > threshold[:, None, None]) != (out_masks == 1))
    assert disagree < 0.02
    assert out_images.min() >= 0.0 and out_images.max() <= 255.0
