"""A small U-Net, written as every ssnets model is: raw pixels in, softmax probabilities out."""

from __future__ import annotations

import keras

from ssnets.models.layers import conv2d


def build_tiny_unet(
    input_shape: tuple[int, int, int],
    num_classes: int,
    l2: float = 0.0,
    name: str = "tiny_unet",
    conv_type: str = "conv",
    width: int = 8,
) -> keras.Model:
    """Two 3x3 convolutions per level, one pooling level and a skip connection.

    ssnets passes `input_shape`, `num_classes` and `l2` (trainer.l2); the other
    arguments are this model's keys in conf/model/tiny_unet.yaml. `conv_type=ds`
    makes the 3x3 convolutions depthwise-separable (ssnets' own conv2d helper).
    """

    def block(x, filters: int, stage: str):
        for index in range(2):
            x = conv2d(filters, 3, conv_type, l2, f"{stage}_conv{index}", activation="relu")(x)
        return x

    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / 255, name="scale")(inputs)
    skip = block(x, width, "down")
    x = block(keras.layers.MaxPooling2D(name="pool")(skip), 2 * width, "bottom")
    x = keras.layers.UpSampling2D(name="up")(x)
    x = block(keras.layers.Concatenate(name="skip")([x, skip]), width, "decode")
    # float32 probabilities also under a mixed-precision policy, as the losses expect.
    outputs = keras.layers.Conv2D(num_classes, 1, activation="softmax", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=name)
