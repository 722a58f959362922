"""FCN8 (Long et al.) on a VGG16 encoder, and FastFCN8 (``conv_type="ds"``).

Encoder: VGG16's conv blocks (64x2, 128x2, 256x3, 512x3, 512x3), each conv
followed by batch norm (``batch_norm``) and ReLU, max-pool after each block;
fc6 as a 7x7 conv with 4096 filters (``fc_filters``) and fc7 as a 1x1 conv with
as many, each followed by ReLU and dropout. Layer names are keras.applications.VGG16's
(``block1_conv1`` ...), so VGG16 weights copy over by name.

Decoder: 1x1 score layers (he_normal) on fc7, pool4 and pool3; learned 4x4
stride-2 transposed-conv upsampling initialised bilinear, crop to the skip
and add; a final 16x16 stride-8 transposed conv (bilinear) back to the input
size, cropped, and a float32 softmax.

``conv_type="ds"`` makes every k x k convolution (k > 1, fc6 included)
depthwise-separable; 1x1 convolutions and the class-wise upsampling
transposed convs stay as they are.
"""

from __future__ import annotations

import keras
from keras import layers

from ssnets.models.layers import (
    BilinearUpsampling,
    center_crop_like,
    check_conv_type,
    check_input_shape,
    conv2d,
    l2_regularizer,
    raw_input_and_preprocessing,
    softmax_output,
)
from ssnets.models.weights import check_weights_argument, load_weights

VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def build_fcn8(
    input_shape: tuple[int, int, int],
    num_classes: int,
    l2: float = 0.0,
    name: str = "fcn8",
    conv_type: str = "conv",
    weights: str | None = None,
    preprocessing: str = "imagenet",
    batch_norm: bool = True,
    dropout: float = 0.5,
    fc_filters: int = 4096,
) -> keras.Model:
    """Build FCN8 / FastFCN8 returning softmax probabilities (B, H, W, num_classes).

    ``weights``: see ``ssnets.models.weights``; ``imagenet`` (or a VGG16
    ``*_notop.h5`` / ``.weights.h5`` file) fills the VGG16 conv blocks (with
    ``conv_type="conv"`` only, a separable conv has no VGG16 counterpart);
    a file saved from a same-configured FCN8 fills the whole model.
    """
    check_input_shape(input_shape, name)
    check_conv_type(conv_type)
    check_weights_argument(weights)

    inputs, x = raw_input_and_preprocessing(input_shape, preprocessing)
    pools = []
    for block, (filters, convs) in enumerate(VGG16_BLOCKS, start=1):
        for index in range(1, convs + 1):
            layer_name = f"block{block}_conv{index}"
            x = conv2d(filters, 3, conv_type, l2, layer_name)(x)
            if batch_norm:
                x = layers.BatchNormalization(name=f"{layer_name}_bn")(x)
            x = layers.ReLU(name=f"{layer_name}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
        pools.append(x)
    pool3, pool4 = pools[2], pools[3]

    for layer_name, filters, kernel_size in (("fc6", fc_filters, 7), ("fc7", fc_filters, 1)):
        x = conv2d(filters, kernel_size, conv_type, l2, layer_name)(x)
        x = layers.ReLU(name=f"{layer_name}_relu")(x)
        x = layers.Dropout(dropout, name=f"{layer_name}_dropout")(x)

    score_fr = _score(x, num_classes, l2, "score_fr")
    upscore2 = _upsample(score_fr, num_classes, 4, 2, l2, "upscore2")
    score_pool4 = _score(pool4, num_classes, l2, "score_pool4")
    fuse_pool4 = layers.Add(name="fuse_pool4")([center_crop_like(upscore2, score_pool4, "upscore2_crop"), score_pool4])

    upscore_pool4 = _upsample(fuse_pool4, num_classes, 4, 2, l2, "upscore_pool4")
    score_pool3 = _score(pool3, num_classes, l2, "score_pool3")
    fuse_pool3 = layers.Add(name="fuse_pool3")(
        [center_crop_like(upscore_pool4, score_pool3, "upscore_pool4_crop"), score_pool3]
    )

    upscore8 = _upsample(fuse_pool3, num_classes, 16, 8, l2, "upscore8")
    logits = center_crop_like(upscore8, inputs, "upscore8_crop")
    model = keras.Model(inputs, softmax_output(logits), name=name)

    load_weights(model, weights, _vgg16_encoder, name)
    return model


def _score(x, num_classes: int, l2: float, name: str):
    return layers.Conv2D(
        num_classes, 1, kernel_initializer="he_normal", kernel_regularizer=l2_regularizer(l2), name=name
    )(x)


def _upsample(x, num_classes: int, kernel_size: int, strides: int, l2: float, name: str):
    """FCN's learned upsampling: 'valid' transposed conv (output (n-1)*s + k), cropped afterwards."""
    return layers.Conv2DTranspose(
        num_classes,
        kernel_size,
        strides=strides,
        padding="valid",
        use_bias=False,
        kernel_initializer=BilinearUpsampling(),
        kernel_regularizer=l2_regularizer(l2),
        name=name,
    )(x)


def _vgg16_encoder(weights: str | None) -> keras.Model:
    return keras.applications.VGG16(include_top=False, weights=weights, input_shape=(None, None, 3))
