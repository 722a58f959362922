"""trainer.strategy: where a run trains, one device (`single`) or data-parallel over every device (`data_parallel`).

data_parallel replicates the model on every visible accelerator (CPU when
there is none) and splits each batch of `data.batch_size` images between
them, so `data.batch_size` stays the *global* batch and a run keeps its
optimisation recipe whatever the device count:

- TensorFlow: `tf.distribute.MirroredStrategy`; the model and its compiled
  optimizer and metrics are created inside its scope, Keras scales the loss
  by 1/replicas and sums the gradients, and the per-epoch Keras metrics
  (MeanIoU's confusion matrix) are summed over replicas. Batch norm is
  switched to `synchronized`, so its statistics are those of the global batch
  as on one device and under JAX.
- JAX: `keras.distribution.DataParallel`; variables are replicated and each
  batch sharded along its first axis by Keras, and batch statistics and
  metrics are computed over the global batch by XLA.

Several hosts (SLURM tasks > 1, e.g. `hydra/launcher=slurm
hydra.launcher.nodes=2`): `MultiWorkerMirroredStrategy` with the cluster read
from TF_CONFIG or from SLURM, or `jax.distributed.initialize()` (which reads
SLURM itself); only the chief process (rank 0) tracks and writes the run
directory.

The final evaluation, previews and the logged model run on the host model
that `Placement.host_model` returns: a Mirrored model's `predict_on_batch`
would run the whole batch on every replica and concatenate the copies.

`SSNETS_VIRTUAL_CPU_DEVICES=N` splits the CPU into N devices before the
backend starts, so data_parallel can be tried and tested without accelerators.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from ssnets.common.errors import UserError
from ssnets.models.layers import walk_layers

log = logging.getLogger(__name__)

STRATEGIES = ("single", "data_parallel")
VIRTUAL_CPU_DEVICES_ENV = "SSNETS_VIRTUAL_CPU_DEVICES"


def slurm_tasks() -> int:
    """Tasks of the SLURM job step this process belongs to (1 outside SLURM)."""
    return int(os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("SLURM_NTASKS") or 1)


def is_multi_host() -> bool:
    return "TF_CONFIG" in os.environ or slurm_tasks() > 1


def split_cpu_into_virtual_devices() -> None:
    """Honour SSNETS_VIRTUAL_CPU_DEVICES; must run before the backend initialises its devices."""
    count = int(os.environ.get(VIRTUAL_CPU_DEVICES_ENV) or 0)
    if count < 2:
        return
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        jax.config.update("jax_num_cpu_devices", count)
        return
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    # Set once per process: TensorFlow refuses any change once it has initialised.
    if tf.config.get_logical_device_configuration(cpu) is None:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def accelerators_or_cpus_tf() -> list[str]:
    import tensorflow as tf

    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return [device.name for device in devices]


@dataclass
class Placement:
    """How a run is spread over devices; `single` is the plain Keras path with no-op hooks."""

    strategy: str
    devices: list[str]
    process_index: int = 0
    tf_strategy: Any = None

    @property
    def replicas(self) -> int:
        return len(self.devices)

    @property
    def is_chief(self) -> bool:
        """Whether this process tracks and writes the run (always, except on hosts 2..N of a multi-host run)."""
        return self.process_index == 0

    def process_run_dir(self, run_dir: Path) -> Path:
        """The chief's run directory is Hydra's; other hosts checkpoint beside it, never over its files."""
        return run_dir if self.is_chief else run_dir / f"worker-{self.process_index}"

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Enclose model building and compiling: under TensorFlow their variables must be mirrored."""
        if self.tf_strategy is None:
            yield
            return
        with self.tf_strategy.scope():
            yield

    def prepare_model(self, model: keras.Model) -> None:
        """Batch norm over the global batch, as on one device (TensorFlow's replicas normalise locally otherwise)."""
        if self.tf_strategy is None:
            return
        for layer in walk_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True

    def host_model(self, model: keras.Model) -> keras.Model:
        """The trained model for host-side evaluation, previews and logging (undistributed predictions)."""
        if self.strategy == "single":
            return model
        if self.tf_strategy is None:
            # JAX: variables stay replicated; without a distribution, batches are no longer sharded.
            keras.distribution.set_distribution(None)
            return model
        # Called outside `scope()`: the copy gets TensorFlow's default strategy, one device.
        host = keras.models.clone_model(model)
        host.set_weights(model.get_weights())
        return host

    def describe(self) -> str:
        if self.strategy == "single":
            return "single device"
        listed = ", ".join(self.devices[:4]) + (", ..." if self.replicas > 4 else "")
        return f"data_parallel over {self.replicas} devices ({listed})"


def placement(strategy: str, global_batch_size: int) -> Placement:
    """The configured placement; call before anything touches a device (it may start multi-host runtimes)."""
    if strategy not in STRATEGIES:
        raise UserError(f"trainer.strategy={strategy!r} is not one of {', '.join(STRATEGIES)}.")
    split_cpu_into_virtual_devices()
    if strategy == "single":
        return Placement(strategy, ["default"])
    backend = keras.backend.backend()
    if backend == "tensorflow":
        result = tensorflow_placement()
    elif backend == "jax":
        result = jax_placement()
    else:
        raise UserError(f"trainer.strategy=data_parallel supports the tensorflow and jax backends, not {backend}.")
    if global_batch_size % result.replicas:
        raise UserError(
            f"data.batch_size={global_batch_size} (the global batch) does not split evenly over "
            f"{result.replicas} devices; use a multiple of {result.replicas}."
        )
    log.info(
        "%s: global batch %d, %d per device", result.describe(), global_batch_size, global_batch_size // result.replicas
    )
    return result


def tensorflow_placement() -> Placement:
    import tensorflow as tf

    if is_multi_host():
        # TF_CONFIG when the cluster set it, else the SLURM step's nodes and tasks.
        resolver = None if "TF_CONFIG" in os.environ else tf.distribute.cluster_resolver.SlurmClusterResolver()
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
        task_id = strategy.cluster_resolver.task_id or 0
        devices = [f"replica {index}" for index in range(strategy.num_replicas_in_sync)]
        return Placement("data_parallel", devices, process_index=int(task_id), tf_strategy=strategy)
    devices = accelerators_or_cpus_tf()
    return Placement("data_parallel", devices, tf_strategy=tf.distribute.MirroredStrategy(devices=devices))


def jax_placement() -> Placement:
    import jax

    if is_multi_host():
        jax.distributed.initialize()  # coordinator, process count and index from SLURM
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    return Placement("data_parallel", devices, process_index=jax.process_index())
