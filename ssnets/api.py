"""The Python API: build a model by name, compose a job config and run a training job, without the command line.

    import ssnets
    model = ssnets.build_model("mobilenet_unet", input_shape=(224, 224, 3), num_classes=2, conv_type="ds")
    metrics = ssnets.train(overrides=["experiment=smoke", "model=mobilenet_unet"])
    cfg = ssnets.compose(["experiment=smoke"])
    cfg.trainer.epochs = 2
    metrics = ssnets.train(cfg)

Configs come from the same search path as the commands': ssnets' own and those
of any user project (a working directory holding conf/, or $SSNETS_PROJECT_PATH),
so a user project's models, datasets and experiments work here by name too.
Sits on top with the commands: it may import every ssnets subpackage.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from ssnets import models
from ssnets.common.errors import UserError
from ssnets.training import job

CONFIG_MODULE = "ssnets.conf"
VERSION_BASE = "1.3"  # the commands' @hydra.main(version_base=...)


def compose(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """The job config that ``python -m ssnets.run OVERRIDES`` would run, to read, change and pass to ``train``.

    ``overrides`` are command-line overrides (``["model=fcn8", "data.image_size=128"]``);
    sweeps (``model=a,b``) are for the command line's ``-m``. ``config_name``
    picks another primary config of ``ssnets/conf`` (``bench``, ``predict``, ``export``).
    A wrong group option or key raises Hydra's error naming it and its choices.
    """
    return without_hydra_node(compose_with_hydra_node(overrides, config_name))


def build_model(
    name: str,
    input_shape: Sequence[int],
    num_classes: int,
    *,
    l2: float = 0.0,
    bn_momentum: float | None = None,
    **options: Any,
) -> keras.Model:
    """The model ``conf/model/NAME.yaml`` describes, built as a training run builds it.

    ``ssnets.build_model("mobilenet_unet", input_shape=(224, 224, 3), num_classes=2, conv_type="ds")``

    ``name``: any zoo model (``fcn8``, ``fast_fcn8``, ``mobilenet_unet``, ``fc_densenet121``/``169``/``201``)
    or a user project's. ``input_shape``: (height, width, channels), height and width multiples of 32.
    ``options``: the model config's own keys (``conv_type``, ``weights``, ``dropout``, ...).
    ``l2``: L2 regularisation of the convolution kernels (a run's ``trainer.l2``; none by default here).
    ``bn_momentum``: every batch norm's momentum (a run's ``trainer.bn_momentum``; None keeps each
    architecture's own).

    The model takes raw pixels (float32 0..255; its preprocessing is inside) and returns float32
    softmax probabilities (batch, height, width, num_classes). It is not compiled. Raises UserError
    for an unknown name or option, an input size the model cannot take or a missing weights file.
    """
    with initialize_config_module(CONFIG_MODULE, version_base=VERSION_BASE):
        available = GlobalHydra.instance().config_loader().get_group_options("model")
        if name not in available:
            raise UserError(f"There is no model named {name!r}; choose one of {', '.join(available)}.")
        model_cfg = hydra_compose(overrides=[f"+model={name}"]).model
    keys = [key for key in model_cfg if key != "_target_"]
    unknown = sorted(set(options) - set(keys))
    if unknown:
        raise UserError(f"Model {name} has no option {unknown[0]!r}; its options are {', '.join(keys)}.")
    model_cfg = OmegaConf.merge(model_cfg, options)
    return models.build_model(model_cfg, tuple(input_shape), num_classes, l2, bn_momentum)


def train(
    config: DictConfig | Mapping[str, Any] | None = None,
    *,
    overrides: Sequence[str] = (),
    run_dir: str | os.PathLike | None = None,
) -> dict[str, float]:
    """Run one training job as ``python -m ssnets.run`` does and return its final metrics.

    Give either ``overrides`` (the command line's: ``ssnets.train(overrides=["experiment=smoke"])``)
    or ``config``, a whole job config: what ``ssnets.compose`` returns, changed as you like, or a
    run's ``config.yaml`` read with ``OmegaConf.load``. ``run_dir`` is where the run writes its
    checkpoints, ``best.keras``, preview and config; by default Hydra's ``hydra.run.dir``
    (``outputs/DATE/TIME``, with ``-1``, ``-2``, ... when that directory exists already).

    The run is logged as the config's ``logger`` says (MLflow's ./mlflow.db by default). The
    metrics are those the run logs at its end: ``val_miou``, ``val_e1``, ``val_pixel_accuracy``,
    ``val_iou_<class>``, ``val_mean_dice``, ``val_dice_<class>``, the same for ``test_`` when the data
    has a test split, ``train_seconds``, ``train_images_per_second`` and ``best_epoch``; an empty dict
    for ``trainer.dry_run=true``. Raises UserError (one sentence) for a bad value or a bad data file.
    """
    if config is not None and overrides:
        raise UserError(
            "ssnets.train takes a config or overrides, not both; apply the overrides with "
            "ssnets.compose(overrides), change that config and pass it alone."
        )
    composed = compose_with_hydra_node(overrides if config is None else (), "config")
    run_dir = Path(run_dir) if run_dir is not None else fresh_directory(Path(composed.hydra.run.dir))
    if config is None:
        config = without_hydra_node(composed)
    elif not isinstance(config, DictConfig):
        config = OmegaConf.create(dict(config))
    return job.train(config, run_dir)


def compose_with_hydra_node(overrides: Sequence[str], config_name: str) -> DictConfig:
    """The composed config with Hydra's own node (hydra.run.dir and the rest) as `hydra`."""
    with initialize_config_module(CONFIG_MODULE, version_base=VERSION_BASE):
        return hydra_compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)


def without_hydra_node(config: DictConfig) -> DictConfig:
    """The job's config as @hydra.main hands it to the task function."""
    with open_dict(config):
        del config["hydra"]
    return config


def fresh_directory(path: Path) -> Path:
    """`path`, or path-1, path-2, ... when it exists: two runs started in one second would share Hydra's."""
    candidate, number = path, 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate
