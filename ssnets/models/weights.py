"""The ``weights`` option every builder shares: null, imagenet, or a local file.

Rules (the same for every family):

- ``None``: random initialisation.
- ``"imagenet"``: the family's keras.applications encoder is downloaded with
  ``weights="imagenet"`` and its weights are copied into the model by layer
  name. When the download host cannot be reached this stops with a UserError
  saying how to pass a local file instead.
- a ``.weights.h5`` / ``.h5`` file: when its layers hold exactly as many
  arrays as the whole model has weights it is the whole model's (``model.save_weights``)
  and is loaded with ``model.load_weights``; otherwise it is taken as the
  encoder's (e.g. ``keras.applications.MobileNetV2(include_top=False)``
  weights, or the legacy ``*_notop.h5`` files keras.applications downloads),
  loaded into that keras.applications encoder and copied by layer name.
- a ``.keras`` file: the saved model is loaded and every layer whose name and
  weight shapes match is copied (a saved ssnets model of the same
  architecture fills the whole model, a saved keras.applications model the
  encoder). This is how a run starts from another (pretraining): a model
  trained for another number of classes fills everything but its head, whose
  class-sized layers keep their fresh initialisation (named in a warning).
  The image size may differ (convolutions do not depend on it).

``python -m ssnets.run`` also takes an MLflow run id, a ``runs:/`` URI or a run
directory here: ``ssnets.tracking.artifacts.local_weights`` turns them into a
local ``.keras`` file before the builder sees them (this package does not
reach MLflow).
"""

from __future__ import annotations

import logging
import socket
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import keras

from ssnets.common.errors import UserError
from ssnets.models.layers import walk_layers

EncoderFactory = Callable[[str | None], keras.Model]
"""Builds the family's keras.applications encoder with the given ``weights`` argument."""

log = logging.getLogger(__name__)

# Where keras.applications downloads ImageNet weights from.
IMAGENET_WEIGHTS_HOST = ("storage.googleapis.com", 443)
CONNECT_TIMEOUT_SECONDS = 5


def check_weights_argument(weights: str | None) -> None:
    """Fail before building anything when a weights path does not exist."""
    if weights is None or weights == "imagenet":
        return
    path = Path(weights)
    if not path.is_file():
        raise UserError(f"Weights file {weights} does not exist.")
    if not (path.name.endswith(".h5") or path.suffix == ".keras"):
        raise UserError(f"weights must be null, imagenet, a .weights.h5/.h5 file or a .keras file, got {weights}.")


def load_weights(model: keras.Model, weights: str | None, encoder_factory: EncoderFactory, model_name: str) -> None:
    """Apply the ``weights`` option to a freshly built ``model`` (see the module docstring)."""
    check_weights_argument(weights)
    if weights is None:
        return
    if weights == "imagenet":
        copy_weights_by_name(_download_imagenet_encoder(encoder_factory, model_name), model)
    elif weights.endswith(".keras"):
        copy_weights_by_name(keras.models.load_model(weights, compile=False), model)
    elif _count_layer_arrays(weights) == len(model.weights):
        model.load_weights(weights)
    else:
        copy_weights_by_name(encoder_factory(weights), model)


def _download_imagenet_encoder(encoder_factory: EncoderFactory, model_name: str) -> keras.Model:
    # keras.utils.get_file reports a failed download as a bare Exception, so the host is tried first.
    try:
        socket.create_connection(IMAGENET_WEIGHTS_HOST, timeout=CONNECT_TIMEOUT_SECONDS).close()
    except OSError as error:
        raise UserError(
            f"Could not download ImageNet weights for {model_name} (no internet access?); "
            "download them elsewhere and pass weights=/path/to/file.weights.h5."
        ) from error
    return encoder_factory("imagenet")


def _count_layer_arrays(path: str) -> int:
    """Arrays under the ``layers`` group of a Keras 3 weights file (0 for a legacy .h5).

    Files saved from a compiled model also hold optimizer variables, which
    are not the model's weights.
    """
    arrays = []
    with h5py.File(path, "r") as file:
        if "layers" in file:
            file["layers"].visititems(lambda _, item: arrays.append(item) if isinstance(item, h5py.Dataset) else None)
    return len(arrays)


def copy_weights_by_name(source: keras.Model, target: keras.Model) -> None:
    """Copy weights of same-named layers (nested models included) when all shapes agree.

    Same-named layers with different shapes (e.g. a score layer trained for
    another number of classes) keep their initialisation, with a warning that
    names them and both shapes; copying nothing at all is an error.
    """
    source_layers = {layer.name: layer for layer in walk_layers(source) if layer.weights}
    copied, mismatched = 0, []
    target_layers = [layer for layer in walk_layers(target) if layer.weights]
    for layer in target_layers:
        match = source_layers.get(layer.name)
        if match is None:
            continue
        source_weights = match.get_weights()
        source_shapes = [w.shape for w in source_weights]
        target_shapes = [tuple(v.shape) for v in layer.weights]
        if source_shapes != target_shapes:
            pairs = zip(source_shapes, target_shapes, strict=False)
            differing = next(((a, b) for a, b in pairs if a != b), (source_shapes, target_shapes))
            mismatched.append(f"{layer.name} {differing[0]} -> {differing[1]}")
            continue
        layer.set_weights(source_weights)
        copied += 1
    if copied == 0:
        raise ValueError(f"No layer of {source.name} matches a layer of {target.name} by name and shape.")
    log.info("Copied the weights of %d of %d layers from %s", copied, len(target_layers), source.name)
    if mismatched:
        warnings.warn(
            f"Weights not copied (shapes differ), left at their initialisation: {', '.join(mismatched)}.",
            stacklevel=3,
        )
