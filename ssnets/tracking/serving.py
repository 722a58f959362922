"""The MLflow flavor of ssnets models: how a model is saved when logged, and loaded when served.

A logged model is a plain `keras`-flavor model (`mlflow.keras.load_model` loads it)
whose pyfunc loader is this module: a saved model refers to ssnets' registered Keras
objects (the preprocessing layer, losses, metrics), which Keras finds only once
their modules are imported, and the keras flavor's own loader has no hook for that.
Following MLflow's custom-flavor convention, this module is the `flavor` given to
`mlflow.models.Model.log` (`save_model`) and the pyfunc `loader_module` (`_load_pyfunc`),
so `mlflow models serve` and `mlflow.pyfunc.load_model` work in a fresh process.
"""

from __future__ import annotations

import importlib.metadata
import os
from typing import Any

import keras
import mlflow
import numpy as np

import ssnets.models  # noqa: F401  registers the layers and initialisers every saved model refers to
import ssnets.task.losses  # noqa: F401  registers the losses a compiled model refers to
import ssnets.task.metrics  # noqa: F401  registers the Dice metric

FLAVOR_NAME = mlflow.keras.FLAVOR_NAME


def model_requirements() -> list[str]:
    """Pinned pip requirements of a logged model: keras and the distribution of its backend (e.g. tensorflow-cpu)."""
    backend_distributions = importlib.metadata.packages_distributions()[keras.backend.backend()]
    return [f"{name}=={importlib.metadata.version(name)}" for name in ("keras", *backend_distributions)]


def save_model(path: str, mlflow_model: mlflow.models.Model, **kwargs: Any) -> None:
    """mlflow.keras.save_model, then this module as the pyfunc loader."""
    # mlflow.keras.save_model writes the input example before it creates `path` (mlflow issue 16183).
    os.makedirs(path, exist_ok=True)
    mlflow.keras.save_model(path=path, mlflow_model=mlflow_model, **kwargs)
    mlflow_model.flavors[mlflow.pyfunc.FLAVOR_NAME][mlflow.pyfunc.MAIN] = __name__
    mlflow_model.save(os.path.join(path, mlflow.models.model.MLMODEL_FILE_NAME))


class KerasPredictor:
    """What pyfunc's predict calls: images (B, H, W, C) raw pixels -> class probabilities (B, H, W, classes)."""

    def __init__(self, model: keras.Model):
        self.model = model

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        return keras.ops.convert_to_numpy(self.model.predict_on_batch(np.asarray(data, dtype=np.float32)))


def _load_pyfunc(path: str) -> KerasPredictor:
    """MLflow's pyfunc entry point (`loader_module._load_pyfunc(data path)`)."""
    # The keras flavor hands over its data folder; the model (with its MLmodel) is the folder above.
    model_dir = (
        path if os.path.isfile(os.path.join(path, mlflow.models.model.MLMODEL_FILE_NAME)) else os.path.dirname(path)
    )
    return KerasPredictor(mlflow.keras.load_model(model_dir))
