"""Hyperparameter search: the `ssnets_optuna` Hydra sweeper on Optuna 4 (`hydra_plugins/ssnets_optuna_sweeper`).

`python -m ssnets.run -m hparams_search=iris_optuna` runs `sweeper.OptunaSearch`: it reads
the search space in Hydra's override syntax (`space`), opens or creates the study in its
storage (`study`: sqlite by default, any SQLAlchemy URL or an Optuna journal file), and
runs trials with `Study.optimize`, each one job of the configured Hydra launcher started as
soon as a worker slot is free (`trial_job`). The job reports every epoch to its trial
through `ssnets.training.pruning` (a `callbacks` entry the search adds), so the pruner
stops hopeless trials. `budget` counts the study's trials over all workers and reruns and
re-queues those whose worker died; `summary` is what a study found (written to
optimization_results.yaml), `pictures` draws its optimisation history, intermediate
values and parameter importances, and `study_run` keeps one MLflow parent run per study
with them and the trials nested under it; `config` is the sweeper's config as Hydra's
ConfigStore holds it.

Sits on top, beside the commands: may import `ssnets.common`, `ssnets.tracking` (through
its Tracker protocol) and `ssnets.training` (`pruning`, and `device_share` for how many
jobs the launcher runs at once); nothing below imports it. `config`
imports only Hydra, since Hydra loads it at every start-up.
"""
