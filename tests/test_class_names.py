"""Folder data names its classes from the config, else from classes.txt / classes.json beside it, else class_N."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from ssnets.common.errors import UserError
from ssnets.data.class_names import resolve_class_names


def data_config(root, num_classes=3, class_names=None):
    return OmegaConf.create({"root": str(root), "num_classes": num_classes, "class_names": class_names})


def test_without_names_anywhere_the_classes_are_numbered(tmp_path):
    assert resolve_class_names(data_config(tmp_path)) == ["class_0", "class_1", "class_2"]


def test_classes_txt_names_them_in_index_order(tmp_path):
    (tmp_path / "classes.txt").write_text("background\nmembrane\n\nnucleus\n")
    assert resolve_class_names(data_config(tmp_path)) == ["background", "membrane", "nucleus"]


@pytest.mark.parametrize(
    "content", [["background", "membrane", "nucleus"], {"2": "nucleus", "0": "background", "1": "membrane"}]
)
def test_classes_json_is_a_list_or_an_index_map(tmp_path, content):
    (tmp_path / "classes.json").write_text(json.dumps(content))
    assert resolve_class_names(data_config(tmp_path)) == ["background", "membrane", "nucleus"]


def test_the_config_wins_over_the_file(tmp_path):
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    assert resolve_class_names(data_config(tmp_path, class_names=["x", "y", "z"])) == ["x", "y", "z"]


def test_a_file_naming_too_few_classes_is_one_sentence(tmp_path):
    (tmp_path / "classes.txt").write_text("background\nmembrane\n")
    with pytest.raises(UserError, match=r"classes.txt names 2 classes but data.num_classes is 3; list one name"):
        resolve_class_names(data_config(tmp_path))


def test_a_json_map_with_a_gap_is_one_sentence(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps({"0": "background", "2": "nucleus"}))
    with pytest.raises(UserError, match=r"must name every class index from 0 to 1 once"):
        resolve_class_names(data_config(tmp_path, num_classes=2))
