"""U-Net with a MobileNetV2 encoder (the TensorFlow pix2pix segmentation tutorial's model).

Encoder: ``keras.applications.MobileNetV2(include_top=False)``, cut at
``block_16_project`` and nested as the sub-model ``encoder`` whose outputs
are the skips ``block_{1,3,6,13}_expand_relu`` (1/2 ... 1/16 of the input)
and the bottom ``block_16_project`` (1/32).

Decoder: pix2pix upsample blocks with 512, 256, 128, 64 filters (3x3
stride-2 transposed conv without bias, batch norm, optional dropout, ReLU),
each concatenated with the skip of its size; a final 3x3 stride-2
transposed conv to ``num_classes`` and a float32 softmax.
``conv_type="ds"`` makes the decoder's upsampling convs depthwise-separable
(see ``layers.upsample_conv``); the encoder is MobileNetV2 as Keras builds it.
"""

from __future__ import annotations

import keras
from keras import layers

from ssnets.models.layers import (
    add_l2_to_pretrained,
    check_conv_type,
    check_input_shape,
    raw_input_and_preprocessing,
    softmax_output,
    upsample_conv,
)
from ssnets.models.weights import check_weights_argument, load_weights

SKIP_LAYERS = ("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu", "block_13_expand_relu")
BOTTOM_LAYER = "block_16_project"
DECODER_FILTERS = (512, 256, 128, 64)


def build_mobilenet_unet(
    input_shape: tuple[int, int, int],
    num_classes: int,
    l2: float = 0.0,
    name: str = "mobilenet_unet",
    conv_type: str = "conv",
    weights: str | None = None,
    preprocessing: str = "mobilenet",
    encoder_trainable: bool = True,
    dropout: float = 0.0,
    alpha: float = 1.0,
) -> keras.Model:
    """Build MobileNetV2-UNet returning softmax probabilities (B, H, W, num_classes).

    ``weights``: see ``ssnets.models.weights``; ``imagenet`` or a
    MobileNetV2 (include_top=False) weights file fills the encoder, a file
    saved from a same-configured model fills the whole model.
    ``encoder_trainable=False`` freezes the encoder (its batch norms then run
    in inference mode).
    """
    check_input_shape(input_shape, name)
    check_conv_type(conv_type)
    check_weights_argument(weights)

    def mobilenet_v2(encoder_weights: str | None) -> keras.Model:
        return keras.applications.MobileNetV2(
            input_shape=(input_shape[0], input_shape[1], 3), alpha=alpha, include_top=False, weights=encoder_weights
        )

    backbone = mobilenet_v2(None)
    encoder = keras.Model(
        backbone.input,
        [backbone.get_layer(layer_name).output for layer_name in (*SKIP_LAYERS, BOTTOM_LAYER)],
        name="encoder",
    )
    add_l2_to_pretrained(encoder, l2)

    inputs, x = raw_input_and_preprocessing(input_shape, preprocessing)
    *skips, x = encoder(x)
    for index, (filters, skip) in enumerate(zip(DECODER_FILTERS, reversed(skips), strict=True), start=1):
        block = f"decoder{index}"
        x = upsample_conv(x, filters, 3, 2, conv_type, l2, f"{block}_upconv", use_bias=False)
        x = layers.BatchNormalization(name=f"{block}_bn")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"{block}_dropout")(x)
        x = layers.ReLU(name=f"{block}_relu")(x)
        x = layers.Concatenate(name=f"{block}_concat")([x, skip])
    logits = upsample_conv(x, num_classes, 3, 2, conv_type, l2, "score_upconv")
    model = keras.Model(inputs, softmax_output(logits), name=name)

    load_weights(model, weights, mobilenet_v2, name)
    encoder.trainable = encoder_trainable
    return model
