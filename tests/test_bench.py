"""The benchmark command on tiny settings: it runs, and every figure reaches the JSON, the table and MLflow.

No timing thresholds: the test machine is shared, its figures are not the point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import pytest

from ssnets.bench import TABLE_COLUMNS
from ssnets.perf.reference import REFERENCE, reference_for
from ssnets.training.compile_time import first_batch_excess

TINY_BENCH = [
    "model=fast_fcn8",
    "bench.batch_size=2",
    "bench.image_size=64",
    "bench.steps=2",
    "bench.windows=2",
    "bench.samples=2",
    "bench.generator_images=2",
]
FIELDS = {key for key, _, _ in TABLE_COLUMNS} | {
    "conv_type",
    "jit_compile",
    "batch_size",
    "image_size",
    "loop_images_per_second",
    "inference_first_seconds",
    "reference",
    "reference_train_images_per_second",
    "reference_inference_images_per_second",
}
# Always measured, whatever the machine (device memory and reference ratios exist only where they apply).
MEASURED = [
    "total_params",
    "first_step_seconds",
    "compile_seconds",
    "train_images_per_second",
    "loop_images_per_second",
    "fit_vs_loop",
    "inference_first_seconds",
    "inference_images_per_second",
    "pipeline_images_per_second",
    "pipeline_vs_train",
    "generator_images_per_second",
    "peak_host_rss_mib",
]


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bench")
    tracking_uri = f"sqlite:///{directory / 'mlflow.db'}"
    args = [
        *TINY_BENCH,
        "bench.log_to_mlflow=true",
        f"logger.tracking_uri={tracking_uri}",
        f"hydra.run.dir={directory}",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "ssnets.bench", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return directory, tracking_uri, result.stdout


def test_bench_writes_every_field(bench_run):
    directory, _, _ = bench_run
    [row] = json.loads((directory / "bench.json").read_text())
    assert FIELDS <= row.keys()
    assert row["model"] == "fast_fcn8" and row["batch_size"] == 2 and row["image_size"] == 64
    for key in MEASURED:
        assert row[key] > 0, key
    assert row["total_params"] == pytest.approx(20.61, abs=0.01)


def test_bench_prints_the_table(bench_run):
    directory, _, stdout = bench_run
    table = (directory / "bench.md").read_text()
    header, separator, line = table.strip().splitlines()
    assert header.count("|") == separator.count("|") == line.count("|") == len(TABLE_COLUMNS) + 1
    assert "train img/s" in header and line.startswith("| fast_fcn8 |")
    assert table in stdout


def test_bench_logs_to_mlflow(bench_run):
    _, tracking_uri, _ = bench_run
    client = mlflow.MlflowClient(tracking_uri)
    [run] = client.search_runs([client.get_experiment_by_name("ssnets-bench").experiment_id])
    assert run.data.tags["kind"] == "bench"
    assert run.data.params["model.name"] == "fast_fcn8"
    assert {"train_images_per_second", "inference_images_per_second", "compile_seconds"} <= run.data.metrics.keys()


def test_rows_meet_the_reference_of_their_configuration():
    row = {
        "model": "fast_fcn8",
        "device": "GPU: NVIDIA H100 x 1",
        "batch_size": 32,
        "image_size": 224,
        "precision": "mixed_bfloat16",
        "backend": "jax",
    }
    assert reference_for(row)["train"] == 1640
    assert reference_for({**row, "precision": "float32"}) is None
    cpu_row = {**row, "device": "CPU", "batch_size": 2, "precision": "float32"}
    assert reference_for({**cpu_row, "backend": "tensorflow"})["train"] == pytest.approx(2 / 0.49)
    assert reference_for(cpu_row) is None  # the CPU figures were measured under TensorFlow
    assert len({(e["model"], e["device"], e["batch_size"], e["image_size"]) for e in REFERENCE}) == len(REFERENCE)


def test_compile_time_is_the_first_batch_over_the_typical_one():
    assert first_batch_excess([10.0, 1.0, 2.0, 1.5]) == pytest.approx(8.5)
    assert first_batch_excess([3.0]) == 3.0
    assert first_batch_excess([]) == 0.0
