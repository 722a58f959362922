"""The pyfunc loader of logged ssnets models, so `mlflow models serve` can load them.

A saved model refers to ssnets' registered Keras objects (the preprocessing
layer, losses, metrics), which Keras finds only once their modules are
imported; MLflow's keras flavor has no hook for that, so logged models name
this module as their pyfunc `loader_module`: it imports them, then hands over
to the keras flavor's own loader.
"""

from __future__ import annotations

from mlflow.keras.load import _load_pyfunc as load_keras_pyfunc

import ssnets.losses  # noqa: F401  registers the losses a compiled model refers to
import ssnets.metrics  # noqa: F401  registers the Dice metric
import ssnets.models  # noqa: F401  registers the layers and initialisers


def _load_pyfunc(path: str):
    """MLflow's pyfunc entry point (`loader_module._load_pyfunc`)."""
    return load_keras_pyfunc(path)
