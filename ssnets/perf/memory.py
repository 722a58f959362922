"""Peak memory of this process: host RSS, and accelerator memory when the backend runs on a GPU."""

from __future__ import annotations

import resource

import keras

MIB = 1024 * 1024


def peak_host_rss_mib() -> float:
    """Highest resident set size this process has reached (it never goes down, so it spans every model run so far)."""
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_device_memory() -> None:
    """Start a new peak (TensorFlow only: JAX keeps one peak per process)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            tf.config.experimental.reset_memory_stats("GPU:0")


def peak_device_memory_mib() -> float | None:
    """Peak memory allocated on the first GPU, or None on a CPU."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            return None
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / MIB
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform != "gpu":
            return None
        stats = device.memory_stats() or {}
        return stats["peak_bytes_in_use"] / MIB if "peak_bytes_in_use" in stats else None
    return None
