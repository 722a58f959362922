"""logger=csv: a second Tracker, one module and one YAML; runs, resumes and comparisons go through it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from ssnets.tracking.base import build_tracker
from ssnets.tracking.csv_tracker import CsvTracker
from ssnets.training import resume
from ssnets.training.job import train

from conftest import TINY, compose_config


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """One tiny 2-epoch run logged with logger=csv, trained in this process."""
    work = tmp_path_factory.mktemp("csv")
    overrides = [*TINY, "trainer.epochs=2", "logger=csv", f"logger.root={work / 'logs'}", "logger.experiment_name=tiny"]
    metrics = train(compose_config(overrides), work / "run")
    (run_dir,) = (work / "logs" / "tiny").iterdir()
    return work, overrides, metrics, run_dir


def rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_a_run_is_a_folder_of_plain_files(csv_run):
    _, _, metrics, run_dir = csv_run
    run = json.loads((run_dir / "run.json").read_text())
    assert (run["run_id"], run["status"], run["run_name"]) == (run_dir.name, "FINISHED", "fast_fcn8-ds-iris-64")
    assert {"backend", "git_commit", resume.JOB_HASH_TAG, resume.RUN_DIR_TAG} <= set(run["tags"])
    params = {row["key"]: row["value"] for row in rows(run_dir / "params.csv")}
    assert (params["model.name"], params["model.conv_type"], params["data.image_size"]) == ("fast_fcn8", "ds", "64")
    assert int(params["total_params"]) > 1_000_000
    logged = rows(run_dir / "metrics.csv")
    assert [int(row["step"]) for row in logged if row["name"] == "val_miou"] == [0, 1, 2]
    final = {row["name"]: float(row["value"]) for row in logged if row["step"] == "2"}
    assert final["val_miou"] == pytest.approx(metrics["val_miou"])
    assert {path.name for path in (run_dir / "artifacts").iterdir()} == {
        "config.yaml",
        "predictions.png",
        "model_summary.txt",
        "model.keras",
    }


def test_the_tracker_reads_its_runs_back(csv_run):
    work, overrides, metrics, run_dir = csv_run
    tracker = build_tracker(compose_config(overrides).logger)
    assert isinstance(tracker, CsvTracker)
    (record,) = tracker.search_runs({resume.RUN_DIR_TAG: str((work / "run").resolve())})
    assert (record.run_id, record.status) == (run_dir.name, "FINISHED")
    assert record.metrics["val_miou"] == pytest.approx(metrics["val_miou"])
    assert [step for step, _ in tracker.metric_history(record.run_id, "loss")] == [0, 1]
    assert tracker.search_runs({"no_such_tag": "x"}) == []


def test_resume_auto_skips_the_job_it_finished(csv_run, tmp_path):
    _, overrides, metrics, _ = csv_run
    cfg = compose_config([*overrides, "trainer.resume=auto"])
    job = resume.resolve(cfg, tmp_path / "again", build_tracker(cfg.logger))
    assert job.state is resume.JobState.FINISHED
    assert job.finished_metrics["val_miou"] == pytest.approx(metrics["val_miou"])


def test_compare_ranks_csv_runs(csv_run, tmp_path):
    work, *_ = csv_run
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssnets.compare",
            "--experiment",
            "tiny",
            "--out",
            str(tmp_path),
            "logger=csv",
            f"logger.root={work / 'logs'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 runs of experiment 'tiny', ranked by val_miou (max)" in result.stdout
    assert "| fast_fcn8 | ds |" in result.stdout
    comparison = [path for path in (work / "logs" / "tiny").iterdir() if path.name != csv_run[3].name]
    assert len(comparison) == 1 and (comparison[0] / "artifacts" / "comparison.md").is_file()
