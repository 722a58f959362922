"""A run's config as tracker params: the resolved config flattened to dotted keys (`model.conv_type`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Config nodes that only point at other keys (callbacks.lr_schedule: ${scheduler}); the values are logged at the source.
REFERENCING_NODES = ("callbacks",)


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
    """The resolved run config as params: Hydra's own node, loader internals and repeated references left out."""
    tree = OmegaConf.to_container(cfg, resolve=True)
    tree.pop("hydra", None)
    repeated = repeated_references(cfg)
    return {
        key: value
        for key, value in flatten(tree).items()
        if ".loader." not in key and not any(key == ref or key.startswith(f"{ref}.") for ref in repeated)
    }


def repeated_references(cfg: DictConfig) -> list[str]:
    """Keys under REFERENCING_NODES whose value is an interpolation of another key, which is logged itself."""
    unresolved = flatten(OmegaConf.to_container(cfg, resolve=False))
    return [
        key
        for key, value in unresolved.items()
        if key.startswith(tuple(f"{node}." for node in REFERENCING_NODES))
        and isinstance(value, str)
        and value.startswith("${")
    ]
