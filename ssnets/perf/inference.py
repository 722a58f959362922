"""A compiled, batched forward pass: the model's probabilities without Keras' per-batch predict() machinery.

`predict()` converts every batch to NumPy, runs callbacks and (under JAX)
re-gathers the variables per call; on an H100 it reached 2-4x fewer images/s
than PyTorch (PERFORMANCE.md). Here one compiled function (jax.jit, or a
tf.function with XLA) maps a batch already on the device to probabilities
left on the device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

Forward = Callable[[Any], Any]


def compiled_forward(model: keras.Model, jit_compile: bool = True) -> Forward:
    """batch (B,H,W,C) backend tensor -> probabilities (B,H,W,classes), compiled once per input shape."""
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax_forward(model)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda images: model(images, training=False), jit_compile=jit_compile)
    raise NotImplementedError(f"compiled_forward supports the jax and tensorflow backends, not {backend}.")


def _jax_forward(model: keras.Model) -> Forward:
    import jax

    @jax.jit
    def forward(trainable, non_trainable, images):
        outputs, _ = model.stateless_call(trainable, non_trainable, images, training=False)
        return outputs

    # The weights are read once: the function is for measuring and batch inference, not during training.
    trainable = [variable.value for variable in model.trainable_variables]
    non_trainable = [variable.value for variable in model.non_trainable_variables]
    return lambda images: forward(trainable, non_trainable, images)


def wait_for(outputs: Any) -> None:
    """Block until `outputs` are computed (device work is asynchronous), without copying them to the host."""
    if keras.backend.backend() == "jax":
        import jax

        jax.block_until_ready(outputs)
    else:
        # A one-element read forces the whole tensor to be computed, and copies 4 bytes.
        keras.ops.convert_to_numpy(keras.ops.ravel(outputs)[0])
