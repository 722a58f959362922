"""Hydra SearchPathPlugin that lets a user project extend ssnets' configs (ssnets_searchpath.py).

Hydra imports every module under the `hydra_plugins` namespace package at start-up
and uses the SearchPathPlugin subclasses it finds, so this package must stay
light: it imports Hydra and the standard library only.
"""
