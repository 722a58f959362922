"""`python -m ssnets.compare` on a store holding known runs."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from ssnets.compare import COMPARISON_TAG
from ssnets.tracking.base import PARENT_RUN_TAG
from ssnets.tracking.sweep import SWEEP_ID_TAG

SWEEP = "multirun/2026-01-01/10-00-00"
# model, conv_type, total params, val mIoU per epoch (the last is the final value), seconds, status
KNOWN_RUNS = [
    ("mobilenet_unet", "ds", 2_383_858, [0.50, 0.61], 30.0, "FINISHED"),
    ("fast_fcn8", "ds", 20_607_585, [0.55, 0.72], 90.0, "FINISHED"),
    ("mobilenet_unet", "conv", 6_502_786, [0.40, 0.66], 45.0, "FINISHED"),
    ("fc_densenet121", "conv", 28_185_090, None, None, "FAILED"),
]
TRAIN_IMAGES = 16


def log_known_run(client, experiment_id, sweep_id, model, conv_type, params, mious, seconds, status):
    run = client.create_run(experiment_id, tags={SWEEP_ID_TAG: sweep_id})
    run_id = run.info.run_id
    for key, value in {
        "model.name": model,
        "model.conv_type": conv_type,
        "total_params": params,
        "trainer.epochs": 2,
    }.items():
        client.log_param(run_id, key, value)
    if mious:
        for epoch, miou in enumerate(mious):
            client.log_metric(run_id, "val_miou", miou, step=epoch)
        client.log_metric(run_id, "val_miou", mious[-1], step=len(mious))  # the final evaluation
        client.log_metric(run_id, "val_e1", 0.1 * (1 - mious[-1]), step=len(mious))
        client.log_metric(run_id, "val_iou_background", 0.9, step=len(mious))
        client.log_metric(run_id, "val_iou_iris", 2 * mious[-1] - 0.9, step=len(mious))
        client.log_metric(run_id, "train_seconds", seconds, step=len(mious))
        client.log_metric(run_id, "train_images_per_second", TRAIN_IMAGES * 2 / seconds, step=len(mious))
    client.set_terminated(run_id, status)
    return run_id


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MLflow roots the experiment's artifacts in the working directory
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("cmp")
    ids = {
        (model, conv): log_known_run(client, experiment_id, SWEEP, model, conv, *rest)
        for model, conv, *rest in KNOWN_RUNS
    }
    other_sweep = log_known_run(
        client, experiment_id, "other", "fast_fcn8", "conv", 134_288_326, [0.9, 0.95], 500.0, "FINISHED"
    )
    return uri, client, experiment_id, ids, other_sweep


def compare(*args: str, cwd):
    return subprocess.run(
        [sys.executable, "-m", "ssnets.compare", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def table_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_table_ranks_the_sweep_runs_and_files_are_written(store, tmp_path):
    uri, client, experiment_id, ids, other_sweep = store
    out = tmp_path / "out"
    result = compare("--experiment", "cmp", "--sweep-id", SWEEP, "--tracking-uri", uri, "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    rows = table_rows(result.stdout)
    assert [(row[2], row[3]) for row in rows] == [
        ("fast_fcn8", "ds"),
        ("mobilenet_unet", "conv"),
        ("mobilenet_unet", "ds"),
        ("fc_densenet121", "conv"),
    ]
    best = rows[0]
    assert best[0] == ids["fast_fcn8", "ds"][:8] and best[1] == "FINISHED"
    assert best[4:] == ["20,607,585", "0.7200", "2.80%", "0.9000", "0.5400", "90.0", "0.36"]
    assert rows[-1][1] == "FAILED" and rows[-1][5] == ""
    assert other_sweep[:8] not in result.stdout

    assert (out / "comparison.md").read_text() in result.stdout
    with open(out / "comparison.csv") as file:
        records = list(csv.DictReader(file))
    assert [record["run"] for record in records][:1] == [ids["fast_fcn8", "ds"]]
    assert float(records[0]["val_miou"]) == pytest.approx(0.72)
    assert float(records[0]["train_images_per_second"]) == pytest.approx(TRAIN_IMAGES * 2 / 90)
    with Image.open(out / "comparison.png") as image:
        image.verify()
    with Image.open(out / "comparison.png") as image:
        assert image.format == "PNG" and image.width > 1000 and image.height > 400


def test_comparison_run_holds_the_files_and_parents_the_compared_runs(store, tmp_path):
    uri, client, experiment_id, ids, other_sweep = store
    result = compare(
        "--experiment", "cmp", "--sweep-id", SWEEP, "--tracking-uri", uri, "--out", str(tmp_path / "o"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    comparisons = client.search_runs([experiment_id], f"tags.`{COMPARISON_TAG}` = 'true'")
    assert len(comparisons) == 1
    parent = comparisons[0]
    assert parent.info.status == "FINISHED" and parent.info.run_name == "comparison"
    assert parent.data.tags[SWEEP_ID_TAG] == SWEEP
    assert {artifact.path for artifact in client.list_artifacts(parent.info.run_id)} == {
        "comparison.md",
        "comparison.csv",
        "comparison.png",
    }
    for run_id in ids.values():
        assert client.get_run(run_id).data.tags[PARENT_RUN_TAG] == parent.info.run_id
    assert PARENT_RUN_TAG not in client.get_run(other_sweep).data.tags

    # The comparison run is not itself compared the next time.
    again = compare("--experiment", "cmp", "--sweep-id", SWEEP, "--tracking-uri", uri, "--no-log", cwd=tmp_path)
    assert again.returncode == 0 and len(table_rows(again.stdout)) == len(KNOWN_RUNS)
    assert len(client.search_runs([experiment_id], f"tags.`{COMPARISON_TAG}` = 'true'")) == 1
    assert list((tmp_path / "outputs" / "compare").glob("*/comparison.png"))


def test_latest_sweep_and_whole_experiment(store, tmp_path):
    uri, *_ = store
    latest = compare("--experiment", "cmp", "--sweep-id", "latest", "--tracking-uri", uri, "--no-log", cwd=tmp_path)
    assert latest.returncode == 0, latest.stderr[-3000:]
    assert "sweep other" in latest.stdout and len(table_rows(latest.stdout)) == 1
    everything = compare("--experiment", "cmp", "--tracking-uri", uri, "--no-log", cwd=tmp_path)
    assert len(table_rows(everything.stdout)) == len(KNOWN_RUNS) + 1


def test_unknown_experiment_is_one_sentence(store, tmp_path):
    uri, *_ = store
    result = compare("--experiment", "nope", "--tracking-uri", uri, cwd=tmp_path)
    assert result.returncode == 1
    assert "No runs in experiment 'nope' in sqlite:" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_monitor_option_ranks_by_another_metric(store, tmp_path):
    uri, *_ = store
    args = ["--experiment", "cmp", "--sweep-id", SWEEP, "--tracking-uri", uri, "--no-log"]
    result = compare(*args, "--monitor", "train_seconds", "--mode", "min", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ranked by train_seconds (min)" in result.stdout
    assert [row[2] for row in table_rows(result.stdout)] == [
        "mobilenet_unet",
        "mobilenet_unet",
        "fast_fcn8",
        "fc_densenet121",
    ]
