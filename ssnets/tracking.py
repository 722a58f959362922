"""MLflow tracking: one run per training job.

Params are the resolved config flattened to dotted keys (`model.conv_type`,
`optimizer.lr`), plus parameter counts; metrics are logged per epoch and at
the end; artifacts are the resolved config, a preview PNG and the model.
`logger=none` gives a tracker with the same interface that records nothing.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import subprocess
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import keras
import mlflow
import requests
from omegaconf import DictConfig, OmegaConf

from ssnets import store
from ssnets.errors import UserError

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 5
MAX_TAG_CHARS = 5000


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay whole values."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def config_params(cfg: DictConfig) -> dict[str, Any]:
    """The resolved run config as MLflow params (Hydra's own node and loader internals left out)."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    tree.pop("hydra", None)
    return {key: value for key, value in flatten(tree).items() if ".loader." not in key}


def git_commit() -> str:
    package_dir = Path(__file__).resolve().parent
    result = subprocess.run(
        ["git", "-C", str(package_dir), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def model_requirements() -> list[str]:
    """Pinned pip requirements of a logged model: keras and the distribution of its backend (e.g. tensorflow-cpu)."""
    backend_distributions = importlib.metadata.packages_distributions()[keras.backend.backend()]
    return [f"{name}=={importlib.metadata.version(name)}" for name in ("keras", *backend_distributions)]


def save_keras_model(path: str, **kwargs: Any) -> None:
    # mlflow.keras.save_model writes the input example before it creates `path` (mlflow issue 16183).
    os.makedirs(path, exist_ok=True)
    mlflow.keras.save_model(path=path, **kwargs)
    # Serving loads through ssnets.serving, which registers ssnets' Keras objects first.
    mlflow_model = kwargs["mlflow_model"]
    mlflow_model.flavors[mlflow.pyfunc.FLAVOR_NAME][mlflow.pyfunc.MAIN] = "ssnets.serving"
    mlflow_model.save(os.path.join(path, mlflow.models.model.MLMODEL_FILE_NAME))


# mlflow.keras for Model.log, with the directory fix above; the logged model is a plain keras-flavor model.
KERAS_FLAVOR = types.SimpleNamespace(__name__=mlflow.keras.__name__, save_model=save_keras_model)


class NullTracker:
    """logger=none: the tracker interface, recording nothing."""

    run_id: str | None = None

    @contextlib.contextmanager
    def start(self, cfg: DictConfig, tags: Mapping[str, str], run_id: str | None = None) -> Iterator[NullTracker]:
        yield self

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        pass

    def log_missing_epochs(self, history: Mapping[str, list[float]]) -> None:
        pass

    def log_artifact(self, path: Path) -> None:
        pass

    def log_model(self, model: keras.Model, input_example: Any) -> None:
        pass

    def keras_callbacks(self) -> list[keras.callbacks.Callback]:
        return []

    def location(self) -> str:
        return "not logged (logger=none)"


class MlflowTracker(NullTracker):
    def __init__(self, tracking_uri: str | None, experiment_name: str, run_name: str | None, log_model: bool):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.should_log_model = log_model

    @contextlib.contextmanager
    def start(self, cfg: DictConfig, tags: Mapping[str, str], run_id: str | None = None) -> Iterator[MlflowTracker]:
        """An active MLflow run (a new one, or `run_id` continued).

        It ends FINISHED, FAILED when the body raises (the error in the `failure_reason` tag), or
        KILLED on Ctrl-C/SIGTERM.
        """
        if self.tracking_uri:
            mlflow.set_tracking_uri(self.tracking_uri)
        store.prepare(mlflow.get_tracking_uri(), self.experiment_name)
        mlflow.set_experiment(self.experiment_name)
        run_name = None if run_id else self.run_name
        run = store.retry_when_locked(
            mlflow.start_run, run_id=run_id, run_name=run_name, tags={**tags, "git_commit": git_commit()}
        )
        self.run_id = run.info.run_id
        log.info("MLflow run %s in %s", self.run_id, mlflow.get_tracking_uri())
        status = "FAILED"
        try:
            yield self
            status = "FINISHED"
        except KeyboardInterrupt as stop:
            status = "KILLED"
            store.retry_when_locked(mlflow.set_tag, "failure_reason", str(stop) or "KeyboardInterrupt")
            raise
        # Only records why the run failed; the error goes on up.
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"[:MAX_TAG_CHARS]
            store.retry_when_locked(mlflow.set_tag, "failure_reason", reason)
            raise
        finally:
            store.retry_when_locked(mlflow.end_run, status)

    def log_params(self, params: Mapping[str, Any]) -> None:
        store.retry_when_locked(
            mlflow.log_params, {key: "null" if value is None else value for key, value in params.items()}
        )

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        store.retry_when_locked(mlflow.log_metrics, dict(metrics), step=step)

    def log_missing_epochs(self, history: Mapping[str, list[float]]) -> None:
        """Log the epochs of `history` (step = epoch) the run lacks, e.g. queued when a process was killed."""
        client = mlflow.MlflowClient()
        for name, values in history.items():
            logged = {metric.step for metric in client.get_metric_history(self.run_id, name)}
            for epoch, value in enumerate(values):
                if epoch not in logged:
                    mlflow.log_metric(name, value, step=epoch)

    def log_artifact(self, path: Path) -> None:
        mlflow.log_artifact(str(path))

    def log_model(self, model: keras.Model, input_example: Any) -> None:
        """The model with an input example and a tensor signature (the keras flavor infers none)."""
        if self.should_log_model:
            output_example = keras.ops.convert_to_numpy(model.predict_on_batch(input_example))
            signature = mlflow.models.infer_signature(input_example, output_example)
            mlflow.models.Model.log(
                artifact_path=None,
                name="model",
                flavor=KERAS_FLAVOR,
                model=model,
                signature=signature,
                input_example=input_example,
                # Stated rather than inferred: MLflow's inference reloads the model in a
                # subprocess (~30 s a run) and falls back to keras alone anyway.
                pip_requirements=model_requirements(),
            )

    def keras_callbacks(self) -> list[keras.callbacks.Callback]:
        # Logs the optimizer config, the model summary and every epoch's Keras logs at step=epoch.
        return [mlflow.keras.MlflowCallback()]

    def location(self) -> str:
        return f"run {self.run_id} in {mlflow.get_tracking_uri()} (experiment {self.experiment_name!r})"


def check_reachable(tracking_uri: str) -> None:
    """Fail in seconds when an HTTP tracking server does not answer (MLflow's own retries take minutes)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        requests.get(f"{tracking_uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_SECONDS).raise_for_status()
    except requests.RequestException as error:
        reason = type(error).__name__ if isinstance(error, requests.ConnectionError) else error
        raise UserError(
            f"MLflow tracking server {tracking_uri} cannot be reached ({reason}); start it, correct "
            "logger.tracking_uri, or train without tracking with logger=none."
        ) from error


def build_tracker(logger_cfg: DictConfig) -> NullTracker:
    """The configured tracker; a tracking server must answer before any work starts."""
    if logger_cfg.name == "none":
        return NullTracker()
    check_reachable(logger_cfg.tracking_uri or mlflow.get_tracking_uri())
    run_name = None if logger_cfg.run_name is None else str(logger_cfg.run_name)
    return MlflowTracker(logger_cfg.tracking_uri, store.experiment_name_of(logger_cfg), run_name, logger_cfg.log_model)
