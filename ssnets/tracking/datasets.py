"""What data a run trained on, as trackers record it: MLflow's dataset input of the run.

`describe_dataset` takes the data config and the file names of each split (what every
split type has, in memory or streamed) and gives a `DatasetDescription`: a name (the
folder's for real data, the config's otherwise), the source (the folder, or the
generator and its parameters for synthetic data), the split sizes and a digest of
source and file list. Runs with the same description carry the same MLflow dataset
(name and digest), so the UI's Datasets column and its grouping put them together.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.meta_dataset import MetaDataset
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.types import Schema, TensorSpec
from omegaconf import DictConfig, OmegaConf

# Loader arguments that say where a copy is kept or how it is read, not which data it is.
NOT_PART_OF_DATA = ("_target_", "cache_dir", "in_memory", "in_memory_limit_gb", "stream_cache", "workers")
TRAINING_CONTEXT = "training"


@dataclass(frozen=True)
class DatasetDescription:
    name: str
    source: str  # a folder, or the generator's import path
    parameters: Mapping[str, Any]  # the generator's parameters ({} for a folder)
    split_sizes: Mapping[str, int]
    digest: str
    image_shape: tuple[int, int, int]  # (height, width, channels) as the model reads the images
    mask_shape: tuple[int, int] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "mask_shape", self.image_shape[:2])


def describe_dataset(data_cfg: DictConfig, names: Mapping[str, Sequence[str]]) -> DatasetDescription:
    """The data of `data_cfg`, whose splits hold the files `names` (split -> base names)."""
    loader = OmegaConf.to_container(data_cfg.loader, resolve=True)
    if loader.get("root") is not None:
        source, parameters = str(Path(loader["root"]).expanduser().resolve()), {}
        name = Path(source).name
    else:
        source = loader["_target_"]
        parameters = {key: value for key, value in loader.items() if key not in NOT_PART_OF_DATA}
        # A generator draws at the run's image size, so the size is part of its data.
        parameters["image_size"] = data_cfg.image_size
        name = str(data_cfg.name)
    files = {split: sorted(split_names) for split, split_names in names.items()}
    identity = json.dumps({"source": source, "parameters": parameters, "files": files}, sort_keys=True, default=str)
    return DatasetDescription(
        name=name,
        source=source,
        parameters=parameters,
        split_sizes={split: len(split_names) for split, split_names in names.items()},
        digest=hashlib.sha256(identity.encode()).hexdigest()[:8],
        image_shape=(int(data_cfg.image_size), int(data_cfg.image_size), int(data_cfg.channels)),
    )


class SegmentationDataset(MetaDataset):
    """An MLflow dataset holding only metadata, with the split sizes as its profile."""

    def __init__(self, description: DatasetDescription):
        schema = Schema(
            [
                TensorSpec(np.dtype(np.uint8), (-1, *description.image_shape), "image"),
                TensorSpec(np.dtype(np.uint8), (-1, *description.mask_shape), "mask"),
            ]
        )
        super().__init__(dataset_source(description), description.name, description.digest, schema)
        self._split_sizes = dict(description.split_sizes)

    @property
    def profile(self) -> dict[str, int]:
        return self._split_sizes

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self.profile)}


def dataset_source(description: DatasetDescription) -> DatasetSource:
    """The folder (MLflow's local source), or the generator with its parameters (a code source)."""
    if description.parameters:
        return CodeDatasetSource({"generator": description.source, **description.parameters})
    return LocalArtifactDatasetSource(description.source)
