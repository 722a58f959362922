"""Hydra sweeper plugin `hydra/sweeper=ssnets_optuna`: ssnets' search on Optuna 4 (ssnets_optuna_sweeper.py).

Hydra imports every module under the `hydra_plugins` namespace package at start-up and
instantiates sweepers only from there, so this package holds the thin Sweeper class and
the config registration; the search itself is `ssnets.search`, imported when a search runs.
"""
