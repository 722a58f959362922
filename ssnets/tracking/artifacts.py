"""Find and load a trained model from what a user has at hand.

`run=` may name an MLflow run id (its logged `model`), a `runs:/` or `models:/`
URI, a `.keras` file, a Hydra run directory holding `best.keras`, or a
downloaded MLflow model directory (with `MLmodel`). Models load for inference
only (`compile=False`): neither the optimizer nor a custom loss is needed.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
import mlflow
from mlflow.exceptions import MlflowException

import ssnets.models  # noqa: F401  registers the custom layers every saved model refers to
from ssnets.common.errors import UserError
from ssnets.common.run_files import BEST_MODEL

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MLFLOW_URI_SCHEMES = ("runs:/", "models:/")


def load_model(reference: str, tracking_uri: str | None = None) -> keras.Model:
    """The keras model `reference` names (see the module docstring)."""
    path = Path(reference).expanduser()
    if path.suffix == ".keras" and path.is_file():
        return keras.models.load_model(path, compile=False)
    if path.is_dir() and (path / BEST_MODEL).is_file():
        return keras.models.load_model(path / BEST_MODEL, compile=False)
    if path.is_dir() and (path / "MLmodel").is_file():
        return mlflow.keras.load_model(str(path), load_model_kwargs={"compile": False})
    if RUN_ID.match(reference):
        return load_mlflow_model(f"runs:/{reference}/model", tracking_uri)
    if reference.startswith(MLFLOW_URI_SCHEMES):
        return load_mlflow_model(reference, tracking_uri)
    raise UserError(
        f"run={reference} is neither an MLflow run id, a runs:/ or models:/ URI, a .keras file nor a "
        f"directory holding {BEST_MODEL} or MLmodel; pass one of those."
    )


def load_mlflow_model(uri: str, tracking_uri: str | None) -> keras.Model:
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    try:
        return mlflow.keras.load_model(uri, load_model_kwargs={"compile": False})
    except MlflowException as error:
        raise UserError(
            f"Cannot load {uri} from the MLflow store {mlflow.get_tracking_uri()} ({error.message}); "
            "check the id, or point tracking_uri= at the store that holds it."
        ) from error


def model_input_size(model: keras.Model) -> tuple[int, int, int]:
    """(height, width, channels) of the images `model` takes."""
    _, height, width, channels = model.input_shape
    return height, width, channels
