"""ssnets as an installed framework: the wheel, a user project extending it (examples/user_project), the Python API."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from mlflow.tracking import MlflowClient

import ssnets
from hydra_plugins.ssnets_searchpath.ssnets_searchpath import PROJECT_PATH_VARIABLE, SsnetsUserProjectSearchPath
from ssnets.common.errors import UserError

from conftest import REPO

USER_PROJECT = REPO / "examples" / "user_project"
BUILT_IN = {"model": "fast_fcn8", "data": "iris", "experiment": "smoke"}
USER_OPTIONS = {"model": "tiny_unet", "data": "discs", "experiment": "discs"}


@pytest.fixture
def user_project(tmp_path, monkeypatch) -> Path:
    """A copy of examples/user_project as the working directory; sys.path is restored afterwards."""
    project = tmp_path / "project"
    shutil.copytree(USER_PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "path", list(sys.path))
    return project


def group_options(group: str) -> list[str]:
    with initialize_config_module("ssnets.conf", version_base="1.3"):
        return GlobalHydra.instance().config_loader().get_group_options(group)


def test_hydra_discovers_the_search_path_plugin_from_this_install(tmp_path):
    # In a fresh process outside the checkout, so only the installed package (editable here and in CI) provides it.
    code = (
        "from hydra.core.plugins import Plugins; from hydra.plugins.search_path_plugin import SearchPathPlugin; "
        "print(*(f'{p.__module__}.{p.__qualname__}' for p in Plugins.instance().discover(SearchPathPlugin)))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert (
        f"{SsnetsUserProjectSearchPath.__module__}.{SsnetsUserProjectSearchPath.__qualname__}" in result.stdout.split()
    )


def test_a_user_project_in_the_working_directory_adds_its_options(user_project):
    for group, option in USER_OPTIONS.items():
        assert {option, BUILT_IN[group]} <= set(group_options(group))
    with initialize_config_module("ssnets.conf", version_base="1.3"):
        cfg = compose("config", overrides=["experiment=discs"])
    assert cfg.model._target_ == "my_project.models.build_tiny_unet"
    assert cfg.data.loader._target_ == "my_project.data.load_discs"
    assert str(user_project) in sys.path


def test_projects_named_in_the_environment_are_added(tmp_path, user_project, monkeypatch, caplog):
    other = tmp_path / "other"
    (other / "conf" / "model").mkdir(parents=True)
    (other / "conf" / "model" / "other_net.yaml").write_text("_target_: other.build\nname: other_net\n")
    monkeypatch.setenv(PROJECT_PATH_VARIABLE, str(other))
    assert {"other_net", "tiny_unet", "fast_fcn8"} <= set(group_options("model"))
    monkeypatch.setenv(PROJECT_PATH_VARIABLE, str(tmp_path / "nowhere"))
    assert "other_net" not in group_options("model")
    assert f"{PROJECT_PATH_VARIABLE} names {tmp_path / 'nowhere'}, which has no conf/ folder" in caplog.text


def test_hydra_searchpath_on_the_command_line_adds_a_conf_folder(tmp_path):
    with initialize_config_module("ssnets.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra.searchpath=[file://{USER_PROJECT / 'conf'}]", "model=tiny_unet"])
    assert cfg.model.name == "tiny_unet"


def test_other_hydra_applications_are_left_alone(tmp_path, user_project):
    app = tmp_path / "app_conf"
    app.mkdir()
    (app / "config.yaml").write_text("x: 1\n")
    with initialize_config_dir(str(app), version_base="1.3"):
        assert "model" not in GlobalHydra.instance().config_loader().list_groups("")


def test_help_lists_the_user_options_beside_the_built_in_ones(user_project):
    result = subprocess.run(
        [sys.executable, "-m", "ssnets.run", "--help"], cwd=user_project, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    groups = dict(line.split(": ", 1) for line in result.stdout.splitlines() if line.split(": ")[0] in BUILT_IN)
    for group, option in USER_OPTIONS.items():
        assert {option, BUILT_IN[group]} <= set(groups[group].split(", ")), groups


def test_importing_ssnets_loads_no_tensorflow():
    code = "import sys, ssnets, ssnets.data.iris; print(sorted({'tensorflow', 'keras', 'jax'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.strip() == "[]"


def test_build_model_builds_any_zoo_model_by_name():
    model = ssnets.build_model("mobilenet_unet", input_shape=(224, 224, 3), num_classes=2, conv_type="ds")
    # The README's parameter table (python -m ssnets.models --image-size 224).
    assert model.count_params() == 2_383_858
    assert model.output_shape == (None, 224, 224, 2)
    with pytest.raises(UserError, match="There is no model named 'unet'; choose one of fast_fcn8, "):
        ssnets.build_model("unet", (64, 64, 3), 2)
    with pytest.raises(UserError, match="Model fcn8 has no option 'depth'; its options are name, conv_type"):
        ssnets.build_model("fcn8", (64, 64, 3), 2, depth=3)


def test_build_model_finds_a_user_projects_model(user_project):
    model = ssnets.build_model("tiny_unet", (64, 64, 3), 3, width=4)
    assert model.output_shape == (None, 64, 64, 3)


def test_the_api_is_documented_for_help():
    assert {"build_model", "compose", "train"} <= set(dir(ssnets))
    for function in (ssnets.build_model, ssnets.compose, ssnets.train):
        assert function.__module__ == "ssnets.api" and len(function.__doc__.splitlines()) > 5
    assert "ssnets.train(overrides=" in ssnets.__doc__
    with pytest.raises(UserError, match="takes a config or overrides, not both"):
        ssnets.train(ssnets.compose(), overrides=["seed=1"])


def source_tree(destination: Path) -> Path:
    """The checkout's files as a source distribution has them (tracked or new, not ignored), outside the checkout
    so the build leaves nothing in it."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


@pytest.mark.slow
def test_the_wheel_runs_a_user_projects_model_and_data(tmp_path, user_project):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(source_tree(tmp_path / "src")),
        ],
        check=True,
        timeout=600,
    )
    (wheel,) = wheels.glob("ssnets-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "ssnets/conf/config.yaml",
        "ssnets/conf/model/mobilenet_unet.yaml",
        "ssnets/conf/experiment/README.md",
        "hydra_plugins/ssnets_searchpath/ssnets_searchpath.py",
    } <= names
    assert not any(name.startswith(("tests/", "examples/")) for name in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # --no-deps: the dependencies are this environment's; --force-reinstall: install beside the editable checkout.
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", str(wheel)],
        check=True,
        timeout=600,
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    where = subprocess.run(
        [
            python,
            "-c",
            "import ssnets, hydra_plugins.ssnets_searchpath as p; print(ssnets.__file__); print(p.__file__)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.split()
    assert all(Path(path).is_relative_to(venv) for path in where), where

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = subprocess.run(
        [
            venv / "bin" / "ssnets-run",
            "experiment=discs",
            "trainer.epochs=1",
            "trainer.verbose=2",
            f"logger.tracking_uri={uri}",
        ],
        cwd=user_project,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("discs").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["model._target_"] == "my_project.models.build_tiny_unet"
    assert run.data.params["data.name"] == "discs"
    expected = ssnets.build_model("tiny_unet", (64, 64, 3), 2).count_params()
    assert int(run.data.params["total_params"]) == expected
    assert "val_miou" in run.data.metrics
