"""tf.data input pipeline over a split held in memory or streamed from disk (works under every Keras backend).

A streamed split's samples are read by index, in parallel, with the reader's own
functions (decode, check, resize, or the on-disk cache), and the training order is
drawn by shuffling the indices with the same seed and buffer as the in-memory
path shuffles its samples: both paths yield the same batches.
"""

from __future__ import annotations

import tensorflow as tf

from ssnets.data.augment import Augmenter
from ssnets.data.types import Split, StreamedSplit

AUTOTUNE = tf.data.AUTOTUNE


def make_dataset(
    split: Split | StreamedSplit,
    batch_size: int,
    *,
    training: bool,
    augmenter: Augmenter | None = None,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of (images float32 0..255 (B,H,W,C), masks int32 (B,H,W)).

    Training batches are shuffled every epoch, augmented per batch in parallel
    (the layers draw a transform per image) and keep a fixed batch size.
    """
    dataset = samples(split, training=training, seed=seed)
    dataset = dataset.batch(batch_size, drop_remainder=training).map(to_model_dtypes, num_parallel_calls=AUTOTUNE)
    if training and augmenter is not None:
        dataset = dataset.map(augmenter, num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def samples(split: Split | StreamedSplit, *, training: bool, seed: int) -> tf.data.Dataset:
    """(image uint8 (H,W,C), mask uint8 (H,W)) per sample; for training in a new order every epoch."""
    if isinstance(split, StreamedSplit):
        dataset = tf.data.Dataset.range(len(split))
    else:
        dataset = tf.data.Dataset.from_tensor_slices((split.images, split.masks))
    if training:
        dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    if isinstance(split, StreamedSplit):
        dataset = dataset.map(lambda position: read_streamed(split, position), num_parallel_calls=AUTOTUNE)
    return dataset


def read_streamed(split: StreamedSplit, position: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    image, mask = tf.numpy_function(split.read, [position], [tf.uint8, tf.uint8], stateful=False)
    image.set_shape(split.reader.image_shape)
    mask.set_shape(split.reader.image_shape[:2])
    return image, mask


def to_model_dtypes(images: tf.Tensor, masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(images, tf.float32), tf.cast(masks, tf.int32)
