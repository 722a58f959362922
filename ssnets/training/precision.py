"""trainer.precision: mixed_bfloat16 on a CPU is tried in a child process before a run trusts it, and `auto`
chooses it only where it measured faster.

TensorFlow's bf16 CPU kernels (oneDNN) have aborted the whole process on some
machines (`malloc(): unaligned tcache chunk detected`, exit 134, FastFCN8 on an
Intel Xeon with AMX-BF16) and run slower than float32 on others (MobileNetV2-UNet
on that Xeon), while on this project's AMD EPYC with AVX512-BF16 FastFCN8 trains
faster (128 px, batch 8: 0.49 s a step against 0.67 s in float32). An abort cannot
be caught, so a child process builds the run's model and trains it:
- trainer.precision=mixed_bfloat16: two bf16 steps at 64 px; a crash stops the run
  with one sentence;
- trainer.precision=auto: a few steps in each precision at the run's image size and
  batch; bf16 when it survives and is at least MIN_SPEEDUP faster, else float32. On a
  GPU, auto is mixed_bfloat16 where every GPU has compute capability 8.0 or more.
Verdicts are remembered per CPU model, library versions, model and (auto) input
(`trainer.bf16_check_cache`), so only the first run pays the check's ~30-60 s.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ssnets.common.errors import UserError
from ssnets.common.files import file_lock, write_atomically
from ssnets.training.runtime import device_description

log = logging.getLogger(__name__)

CHECK_IMAGE_SIZE = 64
CHECK_TIMEOUT_SECONDS = 600
MIN_SPEEDUP = 1.1
TIMED_STEPS = 5
WARMUP_STEPS = 2


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def check_key(model_cfg: DictConfig, timed_input: str | None = None) -> str:
    versions = [f"{name} {importlib.metadata.version(name)}" for name in ("keras", "tensorflow-cpu")]
    parts = [cpu_model(), *versions, f"{model_cfg.name} {model_cfg.conv_type}"]
    return " | ".join([*parts, timed_input] if timed_input else parts)


def resolve_precision(cfg: DictConfig) -> str:
    """The precision policy a run uses: trainer.precision, with mixed_bfloat16 on a CPU checked and auto decided."""
    precision = cfg.trainer.precision
    on_cpu = device_description() == "CPU"
    if precision == "mixed_bfloat16" and on_cpu:
        check_bfloat16_on_cpu(cfg.model, cfg.data.channels, cfg.data.num_classes, cfg.trainer.bf16_check_cache)
    if precision != "auto":
        return precision
    if not on_cpu:
        return "mixed_bfloat16" if all(capability >= (8, 0) for capability in gpu_capabilities()) else "float32"
    verdict = cached_verdict(
        cfg.trainer.bf16_check_cache,
        check_key(cfg.model, f"{cfg.data.image_size}px batch {cfg.data.batch_size}"),
        lambda: run_check(cfg.model, cfg.data, image_size=cfg.data.image_size, batch_size=cfg.data.batch_size),
    )
    speedup = verdict.get("float32", 0.0) / verdict["mixed_bfloat16"] if verdict["works"] else 0.0
    chosen = "mixed_bfloat16" if speedup >= MIN_SPEEDUP else "float32"
    log.info(
        "trainer.precision=auto: %s (bf16 %s)", chosen, f"{speedup:.2f}x float32" if verdict["works"] else "crashed"
    )
    return chosen


def gpu_capabilities() -> list[tuple[int, int]]:
    import tensorflow as tf

    return [
        tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)))
        for gpu in tf.config.list_physical_devices("GPU")
    ]


def check_bfloat16_on_cpu(model_cfg: DictConfig, channels: int, num_classes: int, cache_file: str) -> None:
    """Stop with one sentence when mixed_bfloat16 crashes this CPU's kernels for this model."""
    data = OmegaConf.create({"channels": channels, "num_classes": num_classes})
    verdict = cached_verdict(
        cache_file,
        check_key(model_cfg),
        lambda: run_check(model_cfg, data, CHECK_IMAGE_SIZE, batch_size=2, precisions=("mixed_bfloat16",)),
    )
    if not verdict["works"]:
        raise UserError(
            f"trainer.precision=mixed_bfloat16 crashed TensorFlow's CPU kernels for {model_cfg.name} on this CPU "
            f"({cpu_model()}; a test run exited with code {verdict['exit_code']}); use trainer.precision=float32."
        )


def cached_verdict(cache_file: str, key: str, check) -> dict:
    cache = Path(cache_file).expanduser()
    with file_lock(cache.with_name(cache.name + ".lock"), "Waiting for another run's bf16 check"):
        verdicts = json.loads(cache.read_text()) if cache.is_file() else {}
        if key not in verdicts:
            log.info("Trying mixed_bfloat16 on this CPU in a child process (once per CPU, versions and model)")
            verdicts[key] = check()
            write_atomically(cache, lambda path: path.write_text(json.dumps(verdicts, indent=2)))
    return verdicts[key]


def run_check(
    model_cfg: DictConfig,
    data_cfg: DictConfig,
    image_size: int,
    batch_size: int,
    precisions: tuple[str, ...] = ("float32", "mixed_bfloat16"),
) -> dict:
    """Train the model in a child process under each precision in turn: {"works": bool, "exit_code": int,
    PRECISION: seconds per step, ...} (no step times when it crashed). float32 goes first: the second model
    of a process measured up to 25% slower than in a run of its own, and bf16 is to be chosen only when
    faster."""
    spec = {
        "model": OmegaConf.to_container(model_cfg, resolve=True),
        "shape": [image_size, image_size, data_cfg.channels],
        "num_classes": data_cfg.num_classes,
        "batch_size": batch_size,
        "precisions": list(precisions),
    }
    command = [sys.executable, "-m", "ssnets.training.precision", json.dumps(spec)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=CHECK_TIMEOUT_SECONDS, check=False)
    if result.returncode != 0:
        log.warning("The bf16 check exited with %d: %s", result.returncode, result.stderr.strip()[-500:])
        return {"works": False, "exit_code": result.returncode}
    return {"works": True, "exit_code": 0, **json.loads(result.stdout.strip().splitlines()[-1])}


def time_training_steps(spec_json: str) -> dict[str, float]:
    """The child's side of the check: seconds per training step under each precision (the median of
    TIMED_STEPS after WARMUP_STEPS)."""
    import keras
    import numpy as np

    from ssnets.models import build_model

    spec = json.loads(spec_json)
    shape, batch_size = tuple(spec["shape"]), spec["batch_size"]
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, *shape)).astype("float32")
    masks = rng.integers(0, spec["num_classes"], (batch_size, *shape[:2])).astype("int32")
    seconds = {}
    for precision in spec["precisions"]:
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy(precision)
        model = build_model(OmegaConf.create(spec["model"]), shape, spec["num_classes"], l2=0.0)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        timed = TIMED_STEPS if len(spec["precisions"]) > 1 else 1  # the crash check only needs a second step
        steps = []
        for _ in range(WARMUP_STEPS + timed):
            started = time.perf_counter()
            model.train_on_batch(images, masks)
            steps.append(time.perf_counter() - started)
        # The median of single steps: the first ones after compiling, and a neighbour's burst, vary by 25%.
        seconds[precision] = statistics.median(steps[WARMUP_STEPS:])
    return seconds


if __name__ == "__main__":
    print(json.dumps(time_training_steps(sys.argv[1])))
