"""The folder data source: reading, conversion, and one clear error per bad input."""

from pathlib import Path

import numpy as np
import pytest
from skimage import io as skio

from ssnets.common.errors import UserError
from ssnets.data.folder import load_folder
from ssnets.data.types import MaskSpec

BINARY = MaskSpec(num_classes=2)


def write_pair(root: Path, split: str, name: str, image: np.ndarray, mask: np.ndarray) -> None:
    for kind, array in (("img", image), ("mask", mask)):
        folder = root / split / kind
        folder.mkdir(parents=True, exist_ok=True)
        skio.imsave(folder / f"{name}.png", array, check_contrast=False)


def make_dataset(root: Path, size=(40, 30), count=2, mask_value=255) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(count):
            image = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
            mask = np.zeros(size, np.uint8)
            mask[5:15, 5:20] = mask_value
            write_pair(root, split, f"s{i}", image, mask)
    return root


def test_reads_and_resizes_with_binary_masks_mapped(tmp_path):
    splits = load_folder(make_dataset(tmp_path), 32, 3, BINARY)
    assert set(splits) == {"train", "val"}
    train = splits["train"]
    assert train.images.shape == (2, 32, 32, 3) and train.images.dtype == np.uint8
    assert train.masks.shape == (2, 32, 32)
    assert set(np.unique(train.masks)) == {0, 1}
    assert train.names == ("s0", "s1")


def test_test_split_is_read_when_present(tmp_path):
    root = make_dataset(tmp_path)
    write_pair(root, "test", "t0", np.zeros((40, 30, 3), np.uint8), np.zeros((40, 30), np.uint8))
    assert len(load_folder(root, 32, 3, BINARY)["test"]) == 1


def test_grey_rgba_and_16_bit_images_are_converted(tmp_path):
    root = make_dataset(tmp_path)
    write_pair(root, "train", "grey", np.full((40, 30), 100, np.uint8), np.zeros((40, 30), np.uint8))
    write_pair(root, "train", "rgba", np.full((40, 30, 4), 200, np.uint8), np.zeros((40, 30), np.uint8))
    write_pair(root, "train", "deep", np.full((40, 30), 257 * 50, np.uint16), np.zeros((40, 30), np.uint8))
    train = load_folder(root, 32, 3, BINARY)["train"]
    by_name = dict(zip(train.names, train.images, strict=True))
    assert by_name["grey"].shape == (32, 32, 3) and by_name["grey"].max() == 100
    assert by_name["rgba"].max() == 200
    assert by_name["deep"].max() == 50
    assert load_folder(root, 32, 1, BINARY)["train"].images.shape[-1] == 1


def test_class_index_masks_and_ignore_index(tmp_path):
    root = tmp_path
    mask = np.array([[0, 1, 2, 255]] * 4, np.uint8)
    for split in ("train", "val"):
        write_pair(root, split, "a", np.zeros((4, 4, 3), np.uint8), mask)
    train = load_folder(root, 4, 3, MaskSpec(3, ignore_index=255))["train"]
    np.testing.assert_array_equal(train.masks[0], mask)


def test_mask_resize_is_nearest(tmp_path):
    root = make_dataset(tmp_path, size=(64, 64))
    masks = load_folder(root, 32, 3, BINARY)["train"].masks
    assert set(np.unique(masks)) <= {0, 1}


def expect_error(root, match, spec=BINARY):
    with pytest.raises(UserError, match=match) as info:
        load_folder(root, 32, 3, spec)
    return str(info.value)


def test_missing_root(tmp_path):
    expect_error(tmp_path / "nope", "does not exist")


def test_missing_split(tmp_path):
    root = make_dataset(tmp_path)
    for f in (root / "val" / "img").iterdir():
        f.unlink()
    for f in (root / "val" / "mask").iterdir():
        f.unlink()
    (root / "val" / "img").rmdir()
    (root / "val" / "mask").rmdir()
    (root / "val").rmdir()
    expect_error(root, r"val is missing")


def test_empty_folder(tmp_path):
    root = make_dataset(tmp_path)
    for f in (root / "train" / "img").iterdir():
        f.unlink()
    expect_error(root, "holds no images")


def test_image_without_mask_names_the_file(tmp_path):
    root = make_dataset(tmp_path)
    (root / "train" / "mask" / "s1.png").unlink()
    assert "s1.png" in expect_error(root, "has no mask")


def test_mask_without_image_names_the_file(tmp_path):
    root = make_dataset(tmp_path)
    (root / "val" / "img" / "s0.png").unlink()
    assert "s0.png" in expect_error(root, "has no image")


def test_mask_of_another_size(tmp_path):
    root = make_dataset(tmp_path)
    skio.imsave(root / "train" / "mask" / "s0.png", np.zeros((10, 10), np.uint8), check_contrast=False)
    assert "s0.png" in expect_error(root, "must have their image's size")


def test_mask_values_beyond_num_classes(tmp_path):
    root = make_dataset(tmp_path, mask_value=3)
    message = expect_error(root, r"holds values \[3\] but data.num_classes is 2")
    assert "ignore_index" in message


def test_unreadable_file(tmp_path):
    root = make_dataset(tmp_path)
    (root / "train" / "img" / "s0.png").write_bytes(b"not a png")
    assert "s0.png" in expect_error(root, "Cannot read")


def test_two_files_with_one_base_name(tmp_path):
    root = make_dataset(tmp_path)
    skio.imsave(root / "train" / "img" / "s0.jpg", np.zeros((40, 30, 3), np.uint8), check_contrast=False)
    message = expect_error(root, "share a base name")
    assert "s0.jpg" in message and "s0.png" in message
