"""Add user projects' `conf/` folders to the config search path of ssnets' commands.

A user project is a folder holding `conf/` (e.g. conf/model/*.yaml, conf/data/*.yaml,
conf/experiment/*.yaml) and the Python modules its `_target_`s name. Projects are
picked up from

- the working directory, when it has a `conf/` folder, and
- $SSNETS_PROJECT_PATH, a list of project folders separated like PATH,

and appended after ssnets' own configs, so their options appear beside the built-in
ones (`--help` lists them) and a built-in option keeps its name. Each project folder
also goes on `sys.path` (at the end, so it shadows no installed module), so its
`_target_`s import when the command runs from a console script as well as with
`python -m`. Only applications whose primary configs are ssnets' own are touched:
Hydra runs every installed SearchPathPlugin for every Hydra application.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

log = logging.getLogger(__name__)

PROJECT_PATH_VARIABLE = "SSNETS_PROJECT_PATH"
CONFIG_FOLDER = "conf"
PROVIDER = "ssnets-user-project"
SSNETS_CONFIG_MODULE = "ssnets.conf"


class SsnetsUserProjectSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        main = [element.path for element in search_path.get_path() if element.provider == "main"]
        if not main or not is_ssnets_config_path(main[0]):
            return
        for project in user_projects():
            search_path.append(provider=PROVIDER, path=f"file://{project / CONFIG_FOLDER}")
            if str(project) not in sys.path:
                sys.path.append(str(project))


def user_projects() -> list[Path]:
    """The project folders in use: $SSNETS_PROJECT_PATH's, then the working directory when it has conf/."""
    projects: list[Path] = []
    for entry in os.environ.get(PROJECT_PATH_VARIABLE, "").split(os.pathsep):
        if not entry:
            continue
        folder = Path(entry).expanduser().resolve()
        if (folder / CONFIG_FOLDER).is_dir():
            projects.append(folder)
        else:
            # A warning, not an error: Hydra prints a plugin's exception as a traceback. The project's
            # options are then missing, and Hydra's error for one of them lists the options there are.
            log.warning(
                f"{PROJECT_PATH_VARIABLE} names {folder}, which has no {CONFIG_FOLDER}/ folder; "
                f"name the folder that holds {CONFIG_FOLDER}/ or remove the entry."
            )
    cwd = Path.cwd().resolve()
    if (cwd / CONFIG_FOLDER).is_dir() and cwd / CONFIG_FOLDER not in ssnets_config_dirs():
        projects.append(cwd)
    return list(dict.fromkeys(projects))


def is_ssnets_config_path(path: str) -> bool:
    """Whether a search path entry (pkg://ssnets.conf, pkg://ssnets/conf, file://DIR or DIR) is ssnets' configs."""
    if path.startswith("pkg://"):
        return path.removeprefix("pkg://").replace("/", ".").strip(".") == SSNETS_CONFIG_MODULE
    return Path(path.removeprefix("file://")).resolve() in ssnets_config_dirs()


def ssnets_config_dirs() -> set[Path]:
    """Where ssnets' own config package lies (found without importing more than the ssnets package)."""
    spec = importlib.util.find_spec(SSNETS_CONFIG_MODULE)
    return {Path(location).resolve() for location in (spec.submodule_search_locations or [])} if spec else set()
