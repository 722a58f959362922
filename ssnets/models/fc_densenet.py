"""FC-DenseNet (Jegou et al., "The One Hundred Layers Tiramisu") on a keras.applications DenseNet.

Encoder: ``keras.applications.DenseNet{121,169,201}(include_top=False)``
nested as the sub-model ``encoder``, whose outputs are the last concat of
each dense block, ``conv{2,3,4,5}_block{N}_concat`` (1/4 ... 1/32 of the
input). The deepest one is the bottom of the decoder, optionally followed by
a bottleneck dense block (``use_bottleneck``, ``bottleneck_blocks`` layers).

Decoder, for the conv4, conv3 and conv2 skips in turn: transition up (3x3
stride-2 transposed conv with half the skip's channels), concat with the
skip, dense block with as many layers as the encoder block that produced
the skip (so the encoder's block sizes in reverse order). Then a 3x3
stride-4 transposed conv with 64 filters back to the input size, batch
norm and ReLU, a 1x1 score conv and a float32 softmax.

Dense layers are DenseNet-BC's, as in the encoder: BN, ReLU, 1x1 conv
(4 x growth_rate), BN, ReLU, 3x3 conv (growth_rate), concatenated to the
input. ``conv_type="ds"`` makes the decoder's 3x3 convs and transposed
convs depthwise-separable; the encoder is DenseNet as Keras builds it.
"""

from __future__ import annotations

import keras
from keras import layers

from ssnets.common.errors import UserError
from ssnets.models.layers import (
    add_l2_to_pretrained,
    check_conv_type,
    check_input_shape,
    conv2d,
    raw_input_and_preprocessing,
    softmax_output,
    upsample_conv,
)
from ssnets.models.weights import check_weights_argument, load_weights

DENSENET_BLOCKS = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32)}
DENSENET_APPLICATIONS = {
    121: keras.applications.DenseNet121,
    169: keras.applications.DenseNet169,
    201: keras.applications.DenseNet201,
}
FINAL_UPSAMPLING_FILTERS = 64
BN_EPSILON = 1.001e-5  # keras.applications.DenseNet's


def build_fc_densenet(
    input_shape: tuple[int, int, int],
    num_classes: int,
    l2: float = 0.0,
    name: str = "fc_densenet121",
    conv_type: str = "conv",
    weights: str | None = None,
    preprocessing: str = "imagenet",
    depth: int = 121,
    use_bottleneck: bool = False,
    bottleneck_blocks: int = 32,
    growth_rate: int = 32,
) -> keras.Model:
    """Build FC-DenseNet{depth} returning softmax probabilities (B, H, W, num_classes).

    ``weights``: see ``ssnets.models.weights``; ``imagenet`` or a
    DenseNet{depth} (include_top=False) weights file fills the encoder, a
    file saved from a same-configured model fills the whole model.
    """
    check_input_shape(input_shape, name)
    check_conv_type(conv_type)
    check_weights_argument(weights)
    if depth not in DENSENET_BLOCKS:
        raise UserError(f"depth must be one of {sorted(DENSENET_BLOCKS)}, got {depth}.")
    blocks = DENSENET_BLOCKS[depth]

    def densenet(encoder_weights: str | None) -> keras.Model:
        return DENSENET_APPLICATIONS[depth](
            input_shape=(input_shape[0], input_shape[1], 3), include_top=False, weights=encoder_weights
        )

    backbone = densenet(None)
    skip_names = [f"conv{stage}_block{size}_concat" for stage, size in zip((2, 3, 4, 5), blocks, strict=True)]
    encoder = keras.Model(
        backbone.input, [backbone.get_layer(layer_name).output for layer_name in skip_names], name="encoder"
    )
    add_l2_to_pretrained(encoder, l2)

    inputs, x = raw_input_and_preprocessing(input_shape, preprocessing)
    *skips, x = encoder(x)
    if use_bottleneck:
        x = _dense_block(x, bottleneck_blocks, growth_rate, conv_type, l2, "bottleneck")
    decoder_stages = zip(reversed(skips), reversed(blocks[:-1]), strict=True)
    for index, (skip, size) in enumerate(decoder_stages, start=1):
        stage = f"decoder{index}"
        x = upsample_conv(x, skip.shape[-1] // 2, 3, 2, conv_type, l2, f"{stage}_transition_up")
        x = layers.Concatenate(name=f"{stage}_concat")([x, skip])
        x = _dense_block(x, size, growth_rate, conv_type, l2, stage)

    x = upsample_conv(x, FINAL_UPSAMPLING_FILTERS, 3, 4, conv_type, l2, "final_upconv")
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="final_bn")(x)
    x = layers.ReLU(name="final_relu")(x)
    logits = conv2d(num_classes, 1, conv_type, l2, "score")(x)
    model = keras.Model(inputs, softmax_output(logits), name=name)

    load_weights(model, weights, densenet, name)
    return model


def _dense_block(x, size: int, growth_rate: int, conv_type: str, l2: float, name: str):
    for index in range(1, size + 1):
        x = _dense_layer(x, growth_rate, conv_type, l2, f"{name}_block{index}")
    return x


def _dense_layer(x, growth_rate: int, conv_type: str, l2: float, name: str):
    y = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_0_bn")(x)
    y = layers.ReLU(name=f"{name}_0_relu")(y)
    y = conv2d(4 * growth_rate, 1, conv_type, l2, f"{name}_1_conv", use_bias=False)(y)
    y = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_1_bn")(y)
    y = layers.ReLU(name=f"{name}_1_relu")(y)
    y = conv2d(growth_rate, 3, conv_type, l2, f"{name}_2_conv", use_bias=False)(y)
    return layers.Concatenate(name=f"{name}_concat")([x, y])
