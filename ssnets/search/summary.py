"""What a study has found: its trials by state, its best trial, and the epochs pruning saved.

Written to the sweep directory as `optimization_results.yaml` (the name Hydra's Optuna
sweeper used) by every worker when it stops, and logged to the study's MLflow run.
"Epochs saved" counts, for every pruned trial, the epochs its job was set to train
(`planned_epochs`, recorded by the pruning callback) that it did not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.trial import TrialState

from ssnets.common.files import write_atomically
from ssnets.search.budget import Progress
from ssnets.training.pruning import PLANNED_EPOCHS_ATTR

RESULTS_FILE = "optimization_results.yaml"


@dataclass(frozen=True)
class Summary:
    study_name: str
    storage: str  # as shown to a user (no password)
    progress: Progress
    epochs_trained: int  # by the finished trials
    epochs_saved: int  # by pruning
    best_trial: int | None
    best_value: float | None
    best_params: dict[str, Any]

    @classmethod
    def of(cls, study: optuna.Study, storage: str) -> Summary:
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
        pruned = [trial for trial in finished if trial.state == TrialState.PRUNED]
        saved = sum(
            max(int(trial.user_attrs.get(PLANNED_EPOCHS_ATTR, 0)) - len(trial.intermediate_values), 0)
            for trial in pruned
        )
        complete = [trial for trial in finished if trial.state == TrialState.COMPLETE]
        best = study.best_trial if complete else None
        return cls(
            study_name=study.study_name,
            storage=storage,
            progress=Progress.of(study),
            epochs_trained=sum(len(trial.intermediate_values) for trial in finished),
            epochs_saved=saved,
            best_trial=None if best is None else best.number,
            best_value=None if best is None else best.value,
            best_params={} if best is None else dict(best.params),
        )

    def as_dict(self) -> dict[str, Any]:
        progress = self.progress
        return {
            "name": "ssnets_optuna",
            "study_name": self.study_name,
            "storage": self.storage,
            "trials": {
                "complete": progress.complete,
                "pruned": progress.pruned,
                "failed": progress.failed,
                "running": progress.running,
                "waiting": progress.waiting,
            },
            "epochs": {"trained": self.epochs_trained, "saved_by_pruning": self.epochs_saved},
            "best_trial": self.best_trial,
            "best_value": self.best_value,
            "best_params": self.best_params,
        }

    def metrics(self) -> dict[str, float]:
        metrics = {
            "trials_complete": self.progress.complete,
            "trials_pruned": self.progress.pruned,
            "trials_failed": self.progress.failed,
            "epochs_trained": self.epochs_trained,
            "epochs_saved_by_pruning": self.epochs_saved,
        }
        if self.best_value is not None:
            metrics["best_value"] = self.best_value
        return metrics

    def write(self, folder: Path) -> Path:
        path = Path(folder) / RESULTS_FILE
        write_atomically(path, lambda temporary: OmegaConf.save(OmegaConf.create(self.as_dict()), temporary))
        return path
