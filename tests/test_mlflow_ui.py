"""What ssnets puts into the MLflow UI: the experiment's kind and description, and a saved comparison view.

The view is opened in a real browser by tests/test_tracking_server.py (slow); here its content.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlparse

from mlflow.tracking import MlflowClient

from ssnets.tracking import mlflow_ui, store
from ssnets.tracking.base import RunRecord
from ssnets.tracking.sweep import SWEEP_ID_TAG


def record(run_id: str, sweep: str | None, **params: str) -> RunRecord:
    tags = {SWEEP_ID_TAG: sweep} if sweep else {}
    return RunRecord(run_id, "FINISHED", 0, tags, {"seed": "1", "logger.run_name": run_id, **params}, {"val_miou": 0.5})


RUNS = [
    record("a" * 32, "multirun/x", **{"optimizer.lr": "0.01", "scheduler.base_lr": "0.01", "model.conv_type": "ds"}),
    record("b" * 32, "multirun/x", **{"optimizer.lr": "0.001", "scheduler.base_lr": "0.001", "model.conv_type": "ds"}),
    record("c" * 32, "multirun/x", **{"optimizer.lr": "0.01", "scheduler.base_lr": "0.01", "model.conv_type": "conv"}),
]


def test_compared_params_are_those_that_differ_once_each_and_not_how_runs_were_logged():
    # scheduler.base_lr follows optimizer.lr run by run; seed is the same everywhere; logger.* never counts.
    assert mlflow_ui.compared_params(RUNS) == ["model.conv_type", "optimizer.lr"]


def test_a_sweep_is_filtered_by_its_tag_and_other_runs_by_their_ids():
    assert mlflow_ui.search_filter(RUNS) == f"tags.{SWEEP_ID_TAG} = 'multirun/x'"
    mixed = [RUNS[0], record("d" * 32, None)]
    assert mlflow_ui.search_filter(mixed) == f"attributes.run_id IN ('{'a' * 32}', '{'d' * 32}')"


def test_the_view_is_saved_in_the_experiment_and_the_links_open_it_on_the_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    experiment_id = store.prepare(uri, "ui")
    client = MlflowClient(uri)
    links = mlflow_ui.comparison_links(client, uri, experiment_id, RUNS, "val_miou", ascending=False)
    query = parse_qs(urlparse(links["table"]).fragment.split("?", 1)[1])
    assert links["table"].startswith(f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?")
    assert query["workflowType"] == ["machine_learning"]
    assert links["charts"] == links["table"] + "&compareRunsMode=CHART"
    tags = client.get_experiment(experiment_id).tags
    view = json.loads(tags[mlflow_ui.SHARED_VIEW_TAG_PREFIX + query["viewStateShareKey"][0]])
    assert (view["orderByKey"], view["orderByAsc"]) == ("metrics.`val_miou`", False)
    assert "params.`optimizer.lr`" in view["selectedColumns"] and "metrics.`val_miou`" in view["selectedColumns"]
    (parallel,) = view["compareRunCharts"]
    assert (parallel["type"], parallel["selectedMetrics"]) == ("PARALLEL", ["val_miou"])
    assert parallel["selectedParams"] == ["model.conv_type", "optimizer.lr"]


def test_an_experiment_made_before_gets_the_kind_and_description_it_lacks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("older", tags={mlflow_ui.DESCRIPTION_TAG: "my own words"})
    assert store.prepare(uri, "older") == experiment_id
    tags = client.get_experiment(experiment_id).tags
    assert tags[mlflow_ui.EXPERIMENT_KIND_TAG] == mlflow_ui.MODEL_TRAINING_KIND
    assert tags[mlflow_ui.DESCRIPTION_TAG] == "my own words"
