"""The names of a dataset's classes (iou_NAME, dice_NAME, class_weight_NAME): the config's, else the data's own.

data.class_names when given; else a `classes.txt` (one name per line, in class-index
order) or `classes.json` (a list of names, or an object from class index to name) in
data.root; else class_0, class_1, ...
"""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig

from ssnets.common.errors import UserError

NAME_FILES = ("classes.txt", "classes.json")


def resolve_class_names(data_cfg: DictConfig) -> list[str]:
    if data_cfg.get("class_names") is not None:
        return [str(name) for name in data_cfg.class_names]
    root = data_cfg.get("root")
    for file_name in NAME_FILES if root else ():
        path = Path(root).expanduser() / file_name
        if path.is_file():
            names = read_names(path)
            if len(names) != data_cfg.num_classes:
                raise UserError(
                    f"{path} names {len(names)} classes but data.num_classes is {data_cfg.num_classes}; "
                    "list one name per class or set data.num_classes to match."
                )
            return names
    return [f"class_{index}" for index in range(data_cfg.num_classes)]


def read_names(path: Path) -> list[str]:
    if path.suffix == ".txt":
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    try:
        content = json.loads(path.read_text())
    except ValueError as error:
        raise UserError(f"{path} is not valid JSON ({error}); write a list of class names.") from error
    if isinstance(content, dict):
        try:
            by_index = {int(index): str(name) for index, name in content.items()}
        except ValueError as error:
            raise UserError(f"{path} maps {error}; its keys must be class indices 0, 1, ...") from error
        if sorted(by_index) != list(range(len(by_index))):
            raise UserError(f"{path} must name every class index from 0 to {len(by_index) - 1} once.")
        return [by_index[index] for index in range(len(by_index))]
    if isinstance(content, list):
        return [str(name) for name in content]
    raise UserError(f"{path} holds a {type(content).__name__}; write a list of class names.")
