"""logger=none: a tracker that records nothing (and so has nothing to look up)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ssnets.tracking.base import RunRecord
from ssnets.tracking.datasets import DatasetDescription


class NullTracker:
    run_id: str | None = None
    records_runs = False

    def prepare(self) -> None:
        pass

    @contextlib.contextmanager
    def start(
        self,
        tags: Mapping[str, str],
        run_id: str | None = None,
        run_name: str | None = None,
        run_dir: Path | None = None,
    ) -> Iterator[NullTracker]:
        yield self

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        pass

    def log_dataset(self, dataset: DatasetDescription) -> None:
        pass

    def log_image(self, key: str, image: np.ndarray, step: int) -> None:
        pass

    def log_artifact(self, path: Path) -> None:
        pass

    def log_model(self, model: keras.Model, input_example: Any) -> None:
        pass

    def location(self) -> str:
        return "not logged (logger=none)"

    def search_runs(self, tags: Mapping[str, str] | None = None) -> list[RunRecord]:
        return []

    def get_run(self, run_id: str) -> RunRecord | None:
        return None

    def metric_history(self, run_id: str, name: str) -> list[tuple[int, float]]:
        return []

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        pass

    def comparison_links(self, runs: Sequence[RunRecord], metric: str, mode: str) -> dict[str, str]:
        return {}
