"""Process-wide settings of a run: seeds, precision policy, what it runs on and which code it runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import keras

from ssnets.common.errors import UserError

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def configure(seed: int, precision: str, compilation_cache_dir: str | None = None) -> None:
    """Seed Python, NumPy and the backend; set the Keras dtype policy for every layer built after;
    under JAX, keep compiled programs in `compilation_cache_dir` (None: no persistent cache)."""
    if precision not in PRECISIONS:
        raise UserError(f"trainer.precision={precision!r} is not one of auto, {', '.join(PRECISIONS)}.")
    keras.utils.set_random_seed(seed)
    keras.mixed_precision.set_global_policy(precision)
    if compilation_cache_dir and keras.backend.backend() == "jax":
        enable_jax_compilation_cache(compilation_cache_dir)


def enable_jax_compilation_cache(cache_dir: str) -> None:
    """Reuse XLA programs across processes: a sweep's jobs and repeated runs of the same shapes skip
    the 30-110 s first-epoch compile measured on an H100 (PERFORMANCE.md)."""
    import jax

    path = Path(cache_dir).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    # JAX caches only programs that took >= 1 s to compile by default; a training step's
    # many small eval/metric programs add up, so every program is kept.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


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


def git_commit() -> str:
    """The commit of the ssnets checkout this process runs ("unknown" for an installed package)."""
    package_dir = Path(__file__).resolve().parent
    result = subprocess.run(
        ["git", "-C", str(package_dir), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"
