"""A picture of the model's predictions on the same val images after every epoch, logged at step = epoch.

The images are the first `trainer.num_preview` of the val split, read once from the
(unshuffled) evaluation pipeline, so every split type serves them; each picture is
`task.pictures.prediction_grid` (input | truth | prediction per row). MLflow shows the
pictures of a key as one image chart with a step slider: the predictions improving.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from ssnets.task.pictures import prediction_grid
from ssnets.tracking.base import Tracker

PICTURE_KEY = "val_predictions"


class EpochPictures(keras.callbacks.Callback):
    """From epoch `first_epoch` on (a resumed run's earlier pictures are logged already), at most one picture
    per `interval_seconds` besides the first and the last epoch's: a picture costs a forward pass (0.2-0.5 s
    for MobileNetV2-UNet at 256 px), 10% of an epoch of 24 images but nothing beside a minute-long epoch."""

    def __init__(
        self, tracker: Tracker, val: tf.data.Dataset, count: int, first_epoch: int = 0, interval_seconds: float = 0.0
    ):
        super().__init__()
        self.tracker = tracker
        self.first_epoch = first_epoch
        self.interval_seconds = interval_seconds
        self.last_picture: float | None = None
        images, masks = next(val.unbatch().batch(count).as_numpy_iterator())
        self.inputs = images.astype(np.float32)
        self.images, self.masks = np.clip(images, 0, 255).astype(np.uint8), masks.astype(np.uint8)

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.first_epoch:
            return
        now, last_epoch = time.monotonic(), epoch == self.params["epochs"] - 1
        if not last_epoch and self.last_picture is not None and now - self.last_picture < self.interval_seconds:
            return
        self.last_picture = now
        # Calling the model, not predict_on_batch: a data-parallel model's predict would copy the batch to every
        # replica and concatenate their outputs.
        probabilities = keras.ops.convert_to_numpy(self.model(self.inputs, training=False))
        predictions = np.argmax(probabilities, axis=-1).astype(np.uint8)
        self.tracker.log_image(PICTURE_KEY, prediction_grid(self.images, self.masks, predictions), step=epoch)
