"""ssnets: a Hydra-configured experiment framework for semantic segmentation."""

__version__ = "0.1.0"
