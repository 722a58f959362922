"""System metrics of a run (CPU, memory, disk, network, GPU when present), sampled into the run's spool.

The readings are MLflow's own (the monitors of `mlflow.system_metrics`: psutil, and
nvidia-ml-py or pyrsmi for GPUs) under MLflow's names (`system/cpu_utilization_percentage`,
...), so the UI shows them in its System metrics section. The sampling loop is ours:
MLflow's logs each sample with a synchronous request and stops for good at the first
request that fails, so one tracking-server outage would end a run's system metrics;
here a sample is a spool record like any other metric.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

log = logging.getLogger(__name__)

SYSTEM_METRIC_PREFIX = "system/"


class SystemMetricsSampler:
    """Every `interval` seconds, record(metrics, step) with the mean of the readings since the last sample."""

    def __init__(
        self,
        record: Callable[[Mapping[str, float], int], None],
        interval: float,
        tracking_uri: str,
        first_step: int = 0,
    ):
        # Only its monitors (those MLflow picks for this machine) and their readings are used.
        self._readings = SystemMetricsMonitor(run_id=None, sampling_interval=interval, tracking_uri=tracking_uri)
        self.interval = self._readings.sampling_interval  # MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL wins, as in MLflow
        self._record = record
        self._step = first_step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ssnets-system-metrics", daemon=True)

    def start(self) -> None:
        names = ", ".join(type(monitor).__name__ for monitor in self._readings.monitors)
        log.info("System metrics every %s s (%s)", self.interval, names)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        # A first reading starts psutil's CPU counter (its first cpu_percent() is always 0) and is dropped.
        self._take_readings()
        while not self._stop.wait(self.interval):
            metrics = self._take_readings()
            self._record({SYSTEM_METRIC_PREFIX + name: value for name, value in metrics.items()}, self._step)
            self._step += 1

    def _take_readings(self) -> dict[str, float]:
        self._readings.collect_metrics()
        metrics = self._readings.aggregate_metrics()
        for monitor in self._readings.monitors:
            monitor.clear_metrics()
        return metrics
