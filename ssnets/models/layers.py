"""Building blocks shared by every model family.

Everything custom here is registered with Keras (package ``ssnets``), so a
saved ``.keras`` model loads with plain ``keras.models.load_model(path)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import keras
import numpy as np
from keras import layers, ops

from ssnets.common.errors import UserError

MIN_INPUT_MULTIPLE = 32
"""Every model downsamples by 32, so input height and width must be multiples of it."""

CONV_TYPES = ("conv", "ds")
PREPROCESSING_MODES = ("imagenet", "mobilenet", "none")

# keras.applications' "caffe" mode: per-channel ImageNet means, in BGR order.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


def check_input_shape(input_shape: tuple[int, int, int], model_name: str) -> None:
    """Raise a UserError when the input is not (H, W, 1|3) with H, W multiples of 32."""
    if len(input_shape) != 3:
        raise UserError(f"input_shape must be (height, width, channels), got {tuple(input_shape)}.")
    height, width, channels = input_shape
    for size in (height, width):
        if size is None or size % MIN_INPUT_MULTIPLE != 0 or size < MIN_INPUT_MULTIPLE:
            lower = max(MIN_INPUT_MULTIPLE, (size or 0) // MIN_INPUT_MULTIPLE * MIN_INPUT_MULTIPLE)
            upper = lower + MIN_INPUT_MULTIPLE
            raise UserError(
                f"image_size {size} is not divisible by {MIN_INPUT_MULTIPLE}, which {model_name} needs; "
                f"use e.g. {lower} or {upper}."
            )
    if channels not in (1, 3):
        raise UserError(f"{model_name} takes 1- or 3-channel images, got {channels} channels.")


def check_conv_type(conv_type: str) -> None:
    if conv_type not in CONV_TYPES:
        raise UserError(f"conv_type must be one of {CONV_TYPES}, got {conv_type!r}.")


@keras.saving.register_keras_serializable(package="ssnets")
class Preprocessing(layers.Layer):
    """Maps raw pixels (float, 0..255) to what the encoder was trained on.

    ``imagenet``: keras.applications' caffe mode (RGB -> BGR, subtract the
    ImageNet channel means; a 1-channel image subtracts the mean of the means).
    ``mobilenet``: scale to [-1, 1]. ``none``: identity.
    Living inside the model, it travels with every saved ``.keras`` file.
    """

    def __init__(self, mode: str = "none", **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise UserError(f"preprocessing must be one of {PREPROCESSING_MODES}, got {mode!r}.")
        self.mode = mode

    def call(self, inputs):
        if self.mode == "mobilenet":
            return inputs / 127.5 - 1.0
        if self.mode == "imagenet":
            if inputs.shape[-1] == 1:
                return inputs - float(np.mean(IMAGENET_BGR_MEAN))
            bgr = ops.flip(inputs, axis=-1)
            return bgr - ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=bgr.dtype)
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="ssnets")
class BilinearUpsampling(keras.initializers.Initializer):
    """Transposed-conv kernel that performs bilinear upsampling (FCN paper).

    Kernel layout is Keras' Conv2DTranspose one, (k, k, out_channels,
    in_channels); channel i maps to channel i only.
    """

    def __call__(self, shape, dtype=None):
        kernel_h, kernel_w, out_channels, in_channels = shape
        kernel = np.zeros(shape, dtype="float32")
        weights_1d = [_bilinear_1d(kernel_h), _bilinear_1d(kernel_w)]
        filt = np.outer(*weights_1d)
        for channel in range(min(out_channels, in_channels)):
            kernel[:, :, channel, channel] = filt
        return ops.convert_to_tensor(kernel, dtype=dtype or "float32")

    def get_config(self):
        return {}


def _bilinear_1d(size: int) -> np.ndarray:
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    return 1 - np.abs(np.arange(size) - center) / factor


def l2_regularizer(l2: float):
    return keras.regularizers.L2(l2) if l2 else None


def conv2d(
    filters: int,
    kernel_size: int,
    conv_type: str,
    l2: float,
    name: str,
    strides: int = 1,
    padding: str = "same",
    use_bias: bool = True,
    kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
    activation: str | None = None,
) -> layers.Layer:
    """Conv2D, or SeparableConv2D for ``conv_type="ds"`` when the kernel is larger than 1x1.

    A 1x1 convolution has no spatial part to separate, so it stays a Conv2D.
    The L2 penalty covers every kernel (depthwise and pointwise for ``ds``).
    """
    check_conv_type(conv_type)
    common = dict(strides=strides, padding=padding, use_bias=use_bias, activation=activation, name=name)
    if conv_type == "ds" and kernel_size > 1:
        return layers.SeparableConv2D(
            filters,
            kernel_size,
            depthwise_initializer=kernel_initializer,
            pointwise_initializer=kernel_initializer,
            depthwise_regularizer=l2_regularizer(l2),
            pointwise_regularizer=l2_regularizer(l2),
            **common,
        )
    return layers.Conv2D(
        filters,
        kernel_size,
        kernel_initializer=kernel_initializer,
        kernel_regularizer=l2_regularizer(l2),
        **common,
    )


def upsample_conv(
    x, filters: int, kernel_size: int, strides: int, conv_type: str, l2: float, name: str, use_bias: bool = True
):
    """Learned upsampling by ``strides`` with 'same' padding.

    ``conv``: Conv2DTranspose. ``ds``: Keras has no depthwise-separable
    transposed convolution, so it is bilinear resizing followed by a
    depthwise-separable convolution (``{name}_resize`` then ``name``).
    """
    check_conv_type(conv_type)
    if conv_type == "ds":
        x = layers.UpSampling2D(strides, interpolation="bilinear", name=f"{name}_resize")(x)
        return conv2d(filters, kernel_size, "ds", l2, name, use_bias=use_bias)(x)
    return layers.Conv2DTranspose(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=use_bias,
        kernel_regularizer=l2_regularizer(l2),
        name=name,
    )(x)


def center_crop_like(x, reference, name: str):
    """Crop ``x`` spatially around its centre to the size of ``reference`` (FCN's crop layer)."""
    crop_h = x.shape[1] - reference.shape[1]
    crop_w = x.shape[2] - reference.shape[2]
    if crop_h < 0 or crop_w < 0:
        raise ValueError(f"cannot crop {x.shape} to {reference.shape} in {name}.")
    return layers.Cropping2D(((crop_h // 2, crop_h - crop_h // 2), (crop_w // 2, crop_w - crop_w // 2)), name=name)(x)


def raw_input_and_preprocessing(input_shape, preprocessing: str, name: str = "image"):
    """The model input (raw pixels 0..255) and its preprocessed, always-3-channel version.

    A 1-channel image is preprocessed and then repeated to 3 channels, so every
    encoder sees RGB-shaped input and RGB weights (ImageNet or local) apply.
    """
    inputs = keras.Input(shape=tuple(input_shape), name=name, dtype="float32")
    x = Preprocessing(preprocessing, name="preprocessing")(inputs)
    if input_shape[-1] == 1:
        x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
    return inputs, x


def softmax_output(x, name: str = "softmax"):
    """Class probabilities, float32 even under a mixed-precision policy."""
    return layers.Activation("softmax", dtype="float32", name=name)(x)


def add_l2_to_pretrained(model: keras.Model, l2: float) -> None:
    """Put L2 on the kernels of a model built elsewhere (keras.applications).

    Keras 3 reads the penalty from each variable's ``regularizer``; the layer
    attribute is set too so the penalty survives ``.keras`` save/load.
    """
    if not l2:
        return
    for layer in walk_layers(model):
        for kernel_name, regularizer_name in _KERNEL_REGULARIZERS.items():
            variable = getattr(layer, kernel_name, None)
            if variable is None:
                continue
            regularizer = keras.regularizers.L2(l2)
            setattr(layer, regularizer_name, regularizer)
            variable.regularizer = regularizer


_KERNEL_REGULARIZERS = {
    "kernel": "kernel_regularizer",
    "depthwise_kernel": "depthwise_regularizer",
    "pointwise_kernel": "pointwise_regularizer",
}


def walk_layers(model: keras.Model) -> Iterator[layers.Layer]:
    """Every layer of `model` that is not itself a model, nested models (keras.applications encoders) included."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from walk_layers(layer)
        else:
            yield layer
