"""ssnets: a Hydra-configured experiment framework for semantic segmentation.

The Python API, for use without Hydra's command line (see ``help(ssnets.api)``):

    import ssnets
    model = ssnets.build_model("mobilenet_unet", input_shape=(224, 224, 3), num_classes=2, conv_type="ds")
    metrics = ssnets.train(overrides=["experiment=smoke", "model=mobilenet_unet"])
    cfg = ssnets.compose(["experiment=smoke"])   # the job config, to change and pass to ssnets.train(cfg)

These names load ``ssnets.api`` (and with it Keras and TensorFlow) on first use:
``import ssnets`` itself stays light, because the synthetic generator's worker
processes import ``ssnets.data.iris`` and must not start TensorFlow.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

API = ("build_model", "compose", "train")
__all__ = [*API, "__version__"]


def __getattr__(name: str) -> Any:
    # Only called for names the module does not have, so a submodule (ssnets.training) never shadows these.
    if name in API:
        from ssnets import api

        return getattr(api, name)
    raise AttributeError(f"module 'ssnets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *API})
