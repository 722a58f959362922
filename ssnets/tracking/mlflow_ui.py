"""What the MLflow UI shows of ssnets runs: the experiment's kind and description, and links into it.

- The experiment carries `mlflow.experimentKind=custom_model_development` (model
  training, not a GenAI app) and a description (`mlflow.note.content`, shown above
  the runs). MLflow 3.17's UI decides what an experiment opens on by its sidebar
  switch (GenAI / Model training, remembered per browser, GenAI at first) or a
  link's `workflowType=machine_learning`, not by the tag; so every link ssnets
  prints carries that parameter and opens the runs table.
- `comparison_links` saves a view of some runs with the UI's own sharing mechanism
  (an experiment tag `mlflow.sharedViewState.KEY`, opened by `viewStateShareKey=KEY`,
  as its Share button does): the runs filtered, sorted by the compared metric, the
  params that differ between them and the metric as table columns, and in the chart
  view a parallel-coordinates chart of those params against the metric. The view's
  JSON is the UI's, not a documented API; tests/test_tracking_server.py opens it in a real
  browser and fails if the UI stops reading it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from urllib.parse import urlencode

from mlflow.tracking import MlflowClient

from ssnets.tracking.base import RunRecord
from ssnets.tracking.sweep import SWEEP_ID_TAG

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
DESCRIPTION_TAG = "mlflow.note.content"
DESCRIPTION = (
    "Semantic segmentation runs of ssnets: one run per training job, named model-conv_type-data-size "
    "(a sweep appends its job number), with the resolved config as params, per-epoch metrics (step = epoch), "
    "a prediction picture per epoch, system metrics, the dataset and the model. Compare a sweep with "
    "`python -m ssnets.compare --sweep-id latest`, which prints a link to its table and charts here."
)
SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
MODEL_TRAINING_VIEW = {"workflowType": "machine_learning"}
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store by default
# Params that say how a run was logged or resumed, never what it computed.
NOT_COMPARED = ("logger.", "trainer.resume", "trainer.verbose", "hydra.")
# Outcomes of the choices, not choices: shown in the table, left out of the parallel coordinates.
COUNTS = ("total_params", "trainable_params")
MAX_TABLE_PARAMS, MAX_CHART_PARAMS = 12, 5
EXTRA_METRIC_COLUMNS = ("val_e1", "train_seconds")
# The UI's own column ids for the run name, start time, dataset and duration columns, and widths in pixels
# that show a whole default run name and dataset.
FIRST_COLUMNS = ("attributes.`Run Name`", "runDateAndNestInfo", "attributes.`Dataset`", "duration")
COLUMN_WIDTHS = {"attributes.`Run Name`": 250, "attributes.`Dataset`": 220}


def experiment_tags() -> dict[str, str]:
    """The tags a new ssnets experiment gets (an existing one gets those it lacks)."""
    return {EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND, DESCRIPTION_TAG: DESCRIPTION}


def ui_base(tracking_uri: str) -> str:
    """The UI of a tracking server is at its URI; a local store's is wherever `mlflow ui` serves it."""
    return tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else LOCAL_UI


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    return f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}?{urlencode(MODEL_TRAINING_VIEW)}"


def compared_params(runs: Sequence[RunRecord]) -> list[str]:
    """Params whose value differs between the runs (model and conv type first), those of logging left out,
    and of params with the same values run by run (`scheduler.base_lr` follows `optimizer.lr`) only the first."""
    keys = sorted({key for run in runs for key in run.params if not key.startswith(NOT_COMPARED)})
    first = [key for key in ("model.name", "model.conv_type") if key in keys]
    compared, seen = [], set()
    for key in first + [key for key in keys if key not in first]:
        values = tuple(run.params.get(key) for run in runs)
        if len(set(values)) > 1 and values not in seen:
            compared.append(key)
            seen.add(values)
    return compared


def search_filter(runs: Sequence[RunRecord]) -> str:
    """The runs' sweep when they are one sweep, else their ids."""
    sweeps = {run.tags.get(SWEEP_ID_TAG) for run in runs}
    if len(sweeps) == 1 and None not in sweeps:
        return f"tags.{SWEEP_ID_TAG} = '{sweeps.pop()}'"
    return "attributes.run_id IN ({})".format(", ".join(f"'{run.run_id}'" for run in runs))


def comparison_view(runs: Sequence[RunRecord], metric: str, ascending: bool) -> dict:
    """The UI state of the view (what its Share button saves)."""
    params = compared_params(runs)
    logged_metrics = {key for run in runs for key in run.metrics}
    metrics = [metric, *(name for name in EXTRA_METRIC_COLUMNS if name in logged_metrics and name != metric)]
    # The parallel coordinates in a section of their own, above the UI's own charts (one per metric).
    sections = [
        {"uuid": f"ssnets-{key}", "name": name, "display": True, "isReordered": False, "deleted": False}
        | {"isGenerated": key != "comparison"}
        for key, name in (("comparison", "Comparison"), ("model", "Model metrics"), ("system", "System metrics"))
    ]
    parallel = {
        "uuid": "ssnets-parallel-coordinates",
        "type": "PARALLEL",
        "metricSectionId": "ssnets-comparison",
        "runsCountToCompare": len(runs),
        "showAllRuns": True,
        "deleted": False,
        "isGenerated": False,
        "selectedParams": [key for key in params if key not in COUNTS][:MAX_CHART_PARAMS],
        "selectedMetrics": [metric],
    }
    metric_columns = [f"metrics.`{name}`" for name in metrics]
    param_columns = [f"params.`{key}`" for key in params[:MAX_TABLE_PARAMS]]
    return {
        "searchFilter": search_filter(runs),
        "orderByKey": f"metrics.`{metric}`",
        "orderByAsc": ascending,
        "selectedColumns": ["attributes.`Dataset`", *param_columns, *metric_columns],
        "columnOrder": [*FIRST_COLUMNS, *metric_columns, *param_columns],
        "columnWidths": COLUMN_WIDTHS,
        "compareRunCharts": [parallel],
        "compareRunSections": sections,
    }


def comparison_links(
    client: MlflowClient,
    tracking_uri: str,
    experiment_id: str,
    runs: Sequence[RunRecord],
    metric: str,
    ascending: bool,
) -> dict[str, str]:
    """Save the comparison view of `runs` in their experiment; links to it as a table and as charts."""
    key = "ssnets-" + hashlib.sha256(",".join(sorted(run.run_id for run in runs)).encode()).hexdigest()[:12]
    view = comparison_view(runs, metric, ascending)
    client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG_PREFIX + key, json.dumps(view))
    page = f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs"
    query = {"viewStateShareKey": key, **MODEL_TRAINING_VIEW}
    return {
        "table": f"{page}?{urlencode(query)}",
        "charts": f"{page}?{urlencode({**query, 'compareRunsMode': 'CHART'})}",
    }
