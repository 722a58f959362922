"""Shared settings and helpers for the test suite.

Runs use tiny settings (64x64, a few images, one epoch) and a synthetic
dataset cached once per machine, and log into a temporary MLflow store.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SSNETS_CACHE", str(Path(tempfile.gettempdir()) / "ssnets-test-cache"))

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = REPO / "ssnets" / "conf"

TINY = [
    "data.image_size=64",
    "data.num_train=16",
    "data.num_val=8",
    "data.num_test=4",
    "data.batch_size=8",
    "trainer.epochs=1",
    "trainer.num_preview=2",
    # The default run's trainer.precision=auto could pick bf16 on some CPUs; the tests compare exact figures.
    "trainer.precision=float32",
]


def compose_config(overrides: list[str], config_name: str = "config", return_hydra_config: bool = False):
    """The config exactly as `python -m ssnets.run OVERRIDES` composes it (or ssnets.predict/export: config_name);
    with `return_hydra_config`, Hydra's own node (launcher, sweeper, job) too."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=return_hydra_config)


@pytest.fixture(autouse=True, scope="session")
def _outside_the_checkout(tmp_path_factory):
    """Work in a temporary directory: MLflow roots a sqlite store's artifacts (./mlruns) in the working
    directory, and in-process runs would otherwise leave them in the checkout."""
    previous = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(previous)


@pytest.fixture
def tracking_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def run_cli(args: list[str], cwd: Path, timeout: int = 600, env: dict | None = None):
    """`python -m ssnets.run ARGS` in a subprocess, as a user types it."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-m", "ssnets.run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
