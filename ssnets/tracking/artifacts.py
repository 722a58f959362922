"""Find and load a trained model from what a user has at hand.

`run=` may name an MLflow run id (its logged `model`), a `runs:/` or `models:/`
URI, a `.keras` file, a Hydra run directory holding `best.keras`, or a
downloaded MLflow model directory (with `MLmodel`). Models load for inference
only (`compile=False`): neither the optimizer nor a custom loss is needed.

`local_weights` does the same for `model.weights=` (pretraining): it turns a run
id, a `runs:/` or `models:/` URI or a run directory into a local `.keras` file
for the model builders, which read only local files.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import keras
import mlflow
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf

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


@contextlib.contextmanager
def local_weights(model_cfg: DictConfig, tracking_uri: str | None = None) -> Iterator[DictConfig]:
    """`model_cfg` with its `weights` made a local file while the block runs (the model is built inside it).

    A run id or `runs:/`/`models:/` URI is downloaded from the MLflow store
    (`tracking_uri`, or MLflow's default) into a temporary folder removed after
    the block, and its `.keras` file used; a run directory gives its `best.keras`.
    Anything else (null, imagenet, a file) is passed on unchanged, and so is
    `model_cfg` itself; the run's own config keeps what the user wrote.
    """
    weights = model_cfg.get("weights")
    if weights is None or Path(str(weights)).expanduser().is_file():
        yield model_cfg
        return
    reference = str(weights)
    run_dir = Path(reference).expanduser()
    if run_dir.is_dir() and (run_dir / BEST_MODEL).is_file():
        yield _with_weights(model_cfg, run_dir / BEST_MODEL)
        return
    uri = f"runs:/{reference}/model" if RUN_ID.match(reference) else reference
    if not uri.startswith(MLFLOW_URI_SCHEMES):
        yield model_cfg
        return
    with tempfile.TemporaryDirectory(prefix="ssnets-weights-") as folder:
        yield _with_weights(model_cfg, _download_keras_file(uri, tracking_uri, Path(folder)))


def _download_keras_file(uri: str, tracking_uri: str | None, folder: Path) -> Path:
    store = tracking_uri or mlflow.get_tracking_uri()
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder), tracking_uri=store))
    except MlflowException as error:
        raise UserError(
            f"Cannot download model.weights={uri} from the MLflow store {store} ({error.message}); check the "
            "run id, or point logger.tracking_uri at the store that holds it."
        ) from error
    found = sorted(local.rglob("*.keras")) if local.is_dir() else [local] if local.suffix == ".keras" else []
    if not found:
        raise UserError(
            f"model.weights={uri} holds no .keras model; name a run that logged its model (logger.log_model=true) "
            "or pass the run's best.keras."
        )
    return found[0]


def _with_weights(model_cfg: DictConfig, path: Path) -> DictConfig:
    resolved = OmegaConf.create(OmegaConf.to_container(model_cfg, resolve=True))
    resolved.weights = str(path)
    return resolved
