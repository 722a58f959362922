"""The model zoo: one module per family, one YAML per variant under ``conf/model/``.

``build_model(cfg.model, input_shape, num_classes, l2)`` instantiates the
family builder named by the config's ``_target_``; every model takes raw
pixels (float32, 0..255) and returns float32 softmax probabilities.
"""

from __future__ import annotations

import hydra
import keras
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from ssnets.models.layers import MIN_INPUT_MULTIPLE, walk_layers

__all__ = ["MIN_INPUT_MULTIPLE", "build_model"]


def build_model(
    model_cfg: DictConfig,
    input_shape: tuple[int, int, int],
    num_classes: int,
    l2: float,
    bn_momentum: float | None = None,
) -> keras.Model:
    """Build the model a ``conf/model/*.yaml`` config describes.

    Raises the builder's own errors (not Hydra's wrapper): a UserError when
    height or width is not a multiple of ``MIN_INPUT_MULTIPLE`` (32), the
    image has neither 1 nor 3 channels, a weights file is missing or ImageNet
    weights cannot be downloaded.
    ``bn_momentum`` (when given) replaces the momentum of every batch norm
    layer, the encoders' included.
    """
    try:
        model = hydra.utils.instantiate(
            model_cfg, input_shape=tuple(input_shape), num_classes=int(num_classes), l2=float(l2), _convert_="all"
        )
    except InstantiationException as error:
        # Hydra wraps whatever the builder raised; the builder's one-line message is the useful one.
        if error.__cause__ is None:
            raise
        raise error.__cause__ from None
    if bn_momentum is not None:
        set_batch_norm_momentum(model, bn_momentum)
    return model


def set_batch_norm_momentum(model: keras.Model, momentum: float) -> None:
    """Set the moving-statistics momentum of every BatchNormalization layer, nested models included.

    keras.applications encoders use 0.99-0.999, tuned for long ImageNet
    schedules; trained from scratch for a few hundred steps, their moving
    statistics lag the weights so far that inference predicts one class.
    """
    for layer in walk_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
