"""The study's pictures, drawn with Optuna's matplotlib plots: optimisation history, intermediate values
(each trial's trainer.monitor per epoch; pruned trials end early) and parameter importances (fANOVA)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import optuna
from matplotlib.axes import Axes
from optuna.importance import FanovaImportanceEvaluator
from optuna.trial import TrialState
from optuna.visualization.matplotlib import plot_intermediate_values, plot_optimization_history, plot_param_importances

from ssnets.common.files import write_atomically

log = logging.getLogger(__name__)

HISTORY_FILE = "optimization_history.png"
INTERMEDIATE_FILE = "intermediate_values.png"
IMPORTANCES_FILE = "param_importances.png"


def draw(study: optuna.Study, folder: Path, value_name: str) -> list[Path]:
    """The pictures, written into `folder` (the trials' value called `value_name`); importances need two complete
    trials."""
    plots: dict[str, Callable[[optuna.Study], Axes]] = {
        HISTORY_FILE: partial(plot_optimization_history, target_name=value_name),
        INTERMEDIATE_FILE: partial(intermediate_values, value_name=value_name),
    }
    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= 2:
        plots[IMPORTANCES_FILE] = importances
    else:
        log.info("Parameter importances need two complete trials; %s not drawn", IMPORTANCES_FILE)
    return [save(plot(study), Path(folder) / name) for name, plot in plots.items()]


def intermediate_values(study: optuna.Study, value_name: str) -> Axes:
    axes = plot_intermediate_values(study)
    axes.set_xlabel("epoch (the MLflow step: 0 is the first)")
    axes.set_ylabel(value_name)
    return axes


def importances(study: optuna.Study) -> Axes:
    # A fixed seed draws the same importances for the same trials.
    return plot_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))


def save(axes: Axes, path: Path) -> Path:
    figure = axes.figure
    figure.set_size_inches(8, 5)
    write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=110, bbox_inches="tight"))
    plt.close(figure)
    return path
