"""Process-wide settings of a run: seeds, precision policy, what it runs on."""

from __future__ import annotations

import keras

from ssnets.errors import UserError

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def configure(seed: int, precision: str) -> None:
    """Seed Python, NumPy and the backend; set the Keras dtype policy for every layer built after."""
    if precision not in PRECISIONS:
        raise UserError(f"trainer.precision={precision!r} is not one of {', '.join(PRECISIONS)}.")
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy(precision)


def device_description() -> str:
    """'GPU: <name> x N' or 'CPU' for the backend in use."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        devices = jax.devices()
        kind = devices[0].platform.upper()
        return "CPU" if kind == "CPU" else f"{kind}: {devices[0].device_kind} x {len(devices)}"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"GPU x {len(gpus)}" if gpus else "CPU"
    return backend
