"""Where runs are recorded: the Tracker protocol and its implementations, and what sweeps and serving need of them.

`base` defines the `Tracker` protocol every caller uses (the training job, resume,
sweeps, the comparison and the benchmark) and `build_tracker`, which instantiates the
`logger` config group's `_target_`; `mlflow_tracker`, `csv_tracker` and `null` implement
it; `params` turns a config into run params and `datasets` the data into a dataset
description; `store` prepares a shared MLflow store; `spool` keeps an MLflow run's
records on disk until `delivery` has sent them (`python -m ssnets.sync` sends what a
finished run left); `system_metrics` samples CPU, memory and GPU use; `mlflow_ui` tags
the experiment for MLflow's UI and saves comparison views in it; `sweep` tags the runs
of one multirun; `artifacts` finds a trained model from what a user names; `serving` is
the pyfunc loader of logged models. Adding a logger is one module implementing
`Tracker` and one YAML in `conf/logger/`.

May import `ssnets.common`, `ssnets.models` (to load saved models) and the tracking
libraries; never `ssnets.training`, `ssnets.data` or the commands.
"""
