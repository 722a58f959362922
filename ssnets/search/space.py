"""The search space, written in Hydra's override syntax and read as Optuna distributions.

`hydra.sweeper.params` and the sweep's command-line overrides take the forms
hydra-optuna-sweeper takes, parsed with Hydra's own override parser:

    interval(a, b)             FloatDistribution(a, b)
    tag(log, interval(a, b))   the same on a log scale
    choice(x, y, ...)          CategoricalDistribution (also `x,y,...`, and `shuffle(...)` of either)
    range(start, stop, step)   the values Python's range gives (stop excluded), as an Int/FloatDistribution
    anything else              a fixed override every trial gets as written

Optuna parameter names are the override keys (`optimizer.lr`, `model`), so a trial's
params read the same in Optuna and in the MLflow run's config params. Choices are kept
as Hydra writes them in an override (a quoted string keeps its quotes), as Hydra's own
sweepers do, so a choice goes back into a job's override as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from hydra.errors import HydraException
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from ssnets.common.errors import UserError

ESCAPED = re.compile(r"(\\*)('|$)")


@dataclass(frozen=True)
class SearchSpace:
    distributions: dict[str, BaseDistribution]
    expressions: dict[str, str]  # each searched parameter as the user wrote it
    fixed: list[str]  # overrides every trial gets unchanged (hparams_search=..., experiment=..., ...)

    @classmethod
    def parse(cls, params: Mapping[str, Any] | None, arguments: Sequence[str]) -> SearchSpace:
        """hydra.sweeper.params, then the command line's overrides (a key given in both: the command line wins)."""
        lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)
        try:
            overrides = OverridesParser.create().parse_overrides(lines)
        except HydraException as error:
            raise UserError(f"The search space does not parse: {error}") from error
        by_key: dict[str, Override] = {}
        for override in overrides:
            by_key.pop(override.get_key_element(), None)  # given twice: the later one wins
            by_key[override.get_key_element()] = override
        distributions, expressions, fixed = {}, {}, []
        for key, override in by_key.items():
            if override.is_sweep_override():
                distributions[key] = distribution_of(override)
                expressions[key] = override.input_line.split("=", 1)[1]
            else:
                fixed.append(override.input_line)
        if not distributions:
            raise UserError(
                "The search has nothing to search: give hydra.sweeper.params, or sweep overrides such as "
                "optimizer.lr='tag(log, interval(1e-4, 1e-2))'."
            )
        return cls(distributions, expressions, fixed)

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """This trial's value of every searched parameter (a re-queued trial gets its earlier values back)."""
        return {name: suggest(trial, name, distribution) for name, distribution in self.distributions.items()}

    def overrides(self, values: Mapping[str, Any]) -> list[str]:
        """The job overrides of one trial: the fixed ones, then `key=value` per searched parameter."""
        return [*self.fixed, *(f"{name}={override_value(value)}" for name, value in values.items())]

    def sample_overrides(self) -> list[str]:
        """Overrides with the first value of every parameter: composed once to check that every key exists."""
        return self.overrides({name: first_value(distribution) for name, distribution in self.distributions.items()})


def distribution_of(override: Override) -> BaseDistribution:
    value = override.value()
    if override.is_interval_sweep():  # Hydra reads both ends as floats
        return FloatDistribution(value.start, value.end, log="log" in value.tags)
    values = list(override.sweep_iterator(transformer=Transformer.encode))
    if override.is_range_sweep() and not value.shuffle:
        if not values:
            raise UserError(f"{override.input_line} is an empty range.")
        if all(isinstance(item, int) for item in values):
            return IntDistribution(values[0], values[-1], step=int(value.step))
        return FloatDistribution(float(values[0]), float(values[-1]), step=float(value.step))
    return CategoricalDistribution(values)


def suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    low, high, step, log = distribution.low, distribution.high, distribution.step, distribution.log
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, low, high, step=step, log=log)
    return trial.suggest_float(name, low, high, step=step, log=log)


def first_value(distribution: BaseDistribution) -> Any:
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[0]
    return distribution.low


def override_value(value: Any) -> str:
    """`value` as an override's right-hand side: choices are override text already, numbers as Python writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


def quoted(text: str) -> str:
    """`text` as a single-quoted override value that Hydra reads back unchanged.

    Hydra's grammar: a quote is escaped with a backslash, and so are the backslashes
    before a quote or at the end; other backslashes stay as they are.
    """
    return "'" + ESCAPED.sub(lambda match: match[1] * 2 + ("\\'" if match[2] else ""), text) + "'"
