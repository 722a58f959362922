"""tf.data input pipeline over in-memory splits (works under every Keras backend)."""

from __future__ import annotations

import tensorflow as tf

from ssnets.data.augment import Augmenter
from ssnets.data.folder import Split

AUTOTUNE = tf.data.AUTOTUNE


def make_dataset(
    split: Split, batch_size: int, *, training: bool, augmenter: Augmenter | None = None, seed: int = 0
) -> tf.data.Dataset:
    """Batches of (images float32 0..255 (B,H,W,C), masks int32 (B,H,W)).

    Training batches are shuffled every epoch, augmented per batch in parallel
    (the layers draw a transform per image) and keep a fixed batch size.
    """
    dataset = tf.data.Dataset.from_tensor_slices((split.images, split.masks))
    if training:
        dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=training).map(to_model_dtypes, num_parallel_calls=AUTOTUNE)
    if training and augmenter is not None:
        dataset = dataset.map(augmenter, num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def to_model_dtypes(images: tf.Tensor, masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(images, tf.float32), tf.cast(masks, tf.int32)
