"""The synthetic iris generator: samples, masks, the cached dataset on disk, and its CLI."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from skimage import io as skio

from ssnets.data import iris
from ssnets.data.iris import cache
from ssnets.data.iris.__main__ import main
from ssnets.data.types import MaskSpec

SIZE = 64


def png_files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*.png"))}


def test_sample_has_the_promised_types():
    image, mask = iris.render_sample(np.random.default_rng(0), SIZE)
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
    assert mask.shape == (SIZE, SIZE) and mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) <= {0, 1}
    assert image.std() > 10  # a picture, not a flat fill


def test_same_seed_gives_the_same_sample_and_another_seed_a_different_one():
    first = iris.render_sample(iris.sample_rng(3, 0, 5), SIZE)
    again = iris.render_sample(iris.sample_rng(3, 0, 5), SIZE)
    other = iris.render_sample(iris.sample_rng(4, 0, 5), SIZE)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_masks_are_plausible_irises_and_exclude_the_pupil():
    fractions = []
    for index in range(40):
        _, mask, geo = iris.render_with_geometry(iris.sample_rng(0, 0, index), SIZE)
        fractions.append(mask.mean())
        x, y = geo.pupil_center
        assert mask[int(y), int(x)] == 0
    assert 0.01 < np.mean(fractions) < 0.4
    assert sum(fraction > 0 for fraction in fractions) >= 30


def test_mask_pixels_lie_in_the_visible_iris_geometry():
    for index in range(10):
        _, mask, geo = iris.render_with_geometry(iris.sample_rng(1, 0, index), SIZE)
        rows, cols = np.nonzero(mask)
        x, y = cols + 0.5, rows + 0.5
        gx, gy = geo.to_iris_frame(x, y)
        # Majority downsampling lets a pixel whose centre is just outside a boundary count; one pixel of slack.
        assert np.all(np.hypot(gx, gy) < geo.iris_radius + 1)
        px, py = gx - geo.pupil_offset[0], gy - geo.pupil_offset[1]
        assert np.all(np.hypot(px, py) > geo.pupil_radius * 0.9 - 1)
        along, across = geo.to_eye_frame(x, y)
        u = along / geo.half_width
        assert np.all(across > geo.upper_lid(u) - 1) and np.all(across < geo.lower_lid(u) + 1)


def test_some_captures_are_grey_near_infrared():
    images = [iris.render_sample(iris.sample_rng(2, 0, index), 32)[0] for index in range(50)]
    grey = sum(
        np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])
        for image in images
    )
    assert 3 <= grey <= 20


def test_dataset_layout_names_and_mask_values(tmp_path):
    root = iris.ensure_dataset(tmp_path, SIZE, num_train=5, num_val=3, num_test=2, seed=1, workers=1)
    assert root.parent == tmp_path and root.name.startswith("iris-") and cache.is_complete(root)
    for split, count in (("train", 5), ("val", 3), ("test", 2)):
        names = [f"{index:05d}.png" for index in range(count)]
        assert sorted(p.name for p in (root / split / "img").iterdir()) == names
        assert sorted(p.name for p in (root / split / "mask").iterdir()) == names
        for name in names:
            image = skio.imread(root / split / "img" / name)
            mask = skio.imread(root / split / "mask" / name)
            assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
            assert mask.shape == (SIZE, SIZE) and mask.dtype == np.uint8
            assert set(np.unique(mask).tolist()) <= {0, 255}
    train, val = (skio.imread(root / split / "img" / "00000.png") for split in ("train", "val"))
    assert not np.array_equal(train, val)


def test_a_split_with_no_samples_is_not_written(tmp_path):
    root = iris.ensure_dataset(tmp_path, SIZE, num_train=2, num_val=1, num_test=0, seed=0, workers=1)
    assert (root / "val" / "img").is_dir() and not (root / "test").exists()


def test_files_do_not_depend_on_the_worker_count(tmp_path):
    one = iris.ensure_dataset(tmp_path / "one", SIZE, num_train=6, num_val=2, num_test=1, seed=7, workers=1)
    two = iris.ensure_dataset(tmp_path / "two", SIZE, num_train=6, num_val=2, num_test=1, seed=7, workers=2)
    assert one.name == two.name
    assert png_files(one) == png_files(two)


def test_another_seed_is_another_dataset(tmp_path):
    first = iris.ensure_dataset(tmp_path, SIZE, num_train=3, num_val=1, num_test=0, seed=1, workers=1)
    second = iris.ensure_dataset(tmp_path, SIZE, num_train=3, num_val=1, num_test=0, seed=2, workers=1)
    assert first != second
    assert png_files(first) != png_files(second)


def test_a_complete_dataset_is_reused_untouched(tmp_path):
    root = iris.ensure_dataset(tmp_path, SIZE, num_train=3, num_val=1, num_test=1, seed=0, workers=1)
    stamps = {path: path.stat().st_mtime_ns for path in root.rglob("*")}
    assert iris.ensure_dataset(tmp_path, SIZE, num_train=3, num_val=1, num_test=1, seed=0, workers=1) == root
    assert {path: path.stat().st_mtime_ns for path in root.rglob("*")} == stamps


def test_leftovers_of_an_interrupted_generation_are_replaced(tmp_path):
    counts = {"train": 3, "val": 1, "test": 0}
    root = tmp_path / f"iris-{cache.dataset_key(SIZE, counts, 0)}"
    # A killed run leaves its staging folder; a root without the completion marker is no dataset either.
    staging = tmp_path / f".{root.name}.tmp-deadbeef"
    (staging / "train" / "img").mkdir(parents=True)
    (root / "train" / "img").mkdir(parents=True)
    (root / "train" / "img" / "00000.png").write_bytes(b"half a file")

    assert iris.ensure_dataset(tmp_path, SIZE, num_train=3, num_val=1, num_test=0, seed=0, workers=1) == root
    assert cache.is_complete(root) and not staging.exists()
    assert len(list((root / "train" / "img").iterdir())) == 3
    assert skio.imread(root / "train" / "img" / "00000.png").shape == (SIZE, SIZE, 3)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_generation_leaves_nothing_that_looks_complete(tmp_path, monkeypatch, workers):
    calls = []  # per process: forked workers each count their own

    def render_then_fail(rng, size):
        calls.append(size)
        if len(calls) == 2:
            raise RuntimeError("interrupted")
        return iris.render_with_geometry(rng, size)[:2]

    monkeypatch.setattr(cache, "render_sample", render_then_fail)
    with pytest.raises(RuntimeError, match="interrupted"):
        iris.ensure_dataset(tmp_path, SIZE, num_train=4, num_val=1, num_test=0, seed=0, workers=workers)
    assert not [path for path in tmp_path.iterdir() if path.is_dir()]


def test_the_cache_key_follows_the_generator_code_and_only_it(tmp_path, monkeypatch):
    counts = {"train": 3, "val": 1, "test": 0}
    key = cache.dataset_key(SIZE, counts, 0)
    assert cache.dataset_key(SIZE, counts, 0) == key

    ignore_bytecode = shutil.ignore_patterns("__pycache__")
    unchanged = shutil.copytree(cache.PACKAGE_DIR, tmp_path / "unchanged", ignore=ignore_bytecode)
    edited = shutil.copytree(cache.PACKAGE_DIR, tmp_path / "edited", ignore=ignore_bytecode)
    appearance = edited / "appearance.py"
    source = appearance.read_text()
    assert source.count("NIR_FRACTION = 0.2\n") == 1
    appearance.write_text(source.replace("NIR_FRACTION = 0.2\n", "NIR_FRACTION = 0.25\n"))

    digest_of = cache.code_digest
    monkeypatch.setattr(cache, "code_digest", lambda: digest_of(unchanged))
    assert cache.dataset_key(SIZE, counts, 0) == key
    monkeypatch.setattr(cache, "code_digest", lambda: digest_of(edited))
    assert cache.dataset_key(SIZE, counts, 0) != key


def test_a_newer_library_is_another_dataset(monkeypatch):
    counts = {"train": 3, "val": 1, "test": 0}
    key = cache.dataset_key(SIZE, counts, 0)
    versions = cache.library_versions()
    assert set(versions) == {"numpy", "scipy", "scikit-image", "imageio"}
    monkeypatch.setattr(cache, "library_versions", lambda: {**versions, "scipy": "999.0"})
    assert cache.dataset_key(SIZE, counts, 0) != key


def test_the_dataset_records_its_identity(tmp_path):
    root = iris.ensure_dataset(tmp_path, SIZE, num_train=1, num_val=1, num_test=0, seed=0, workers=1)
    identity = json.loads((root / "dataset.json").read_text())
    assert identity == {
        "image_size": SIZE,
        "counts": {"train": 1, "val": 1, "test": 0},
        "seed": 0,
        "code_digest": cache.code_digest(),
        "libraries": cache.library_versions(),
    }
    assert "generator_version" not in identity


def test_loader_reads_the_dataset_through_the_folder_source(tmp_path):
    splits = iris.load(tmp_path, 4, 2, 0, seed=0, image_size=32, channels=3, mask_spec=MaskSpec(num_classes=2))
    assert set(splits) == {"train", "val"}
    assert splits["train"].images.shape == (4, 32, 32, 3)
    assert set(np.unique(splits["train"].masks).tolist()) <= {0, 1}


def test_cli_writes_the_dataset_and_a_preview(tmp_path):
    out, preview = tmp_path / "data", tmp_path / "preview.png"
    sizes = ["--image-size", "32", "--num-train", "4", "--num-val", "2", "--num-test", "1", "--workers", "1"]
    main(["--out", str(out), *sizes, "--preview", str(preview), "--preview-count", "4"])
    assert cache.is_complete(out)
    assert sorted(p.name for p in (out / "val" / "mask").iterdir()) == ["00000.png", "00001.png"]
    grid = skio.imread(preview)
    # Four samples, each as image | overlay, two pairs per row.
    assert grid.shape == (2 * 32, 4 * 32, 3)


def test_cli_refuses_to_write_into_a_folder_with_files(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--image-size", "32", "--num-train", "1", "--num-val", "1"])
    assert (tmp_path / "keep.txt").read_text() == "mine"
