"""The synthetic iris generator: samples, masks, the cached dataset on disk, and its CLI."""

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from skimage import io as skio

from ssnets.common.errors import UserError
from ssnets.data import iris, load_splits
from ssnets.data.iris import cache
from ssnets.data.iris.__main__ import main
from ssnets.data.types import MaskSpec

from conftest import compose_config

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
    fractions, pupils_seen = [], 0
    for index in range(40):
        _, mask, geo = iris.render_with_geometry(iris.sample_rng(0, 0, index), SIZE)
        fractions.append(mask.mean())
        x, y = geo.to_pixels(*geo.pupil_center)
        if 0 <= x < SIZE and 0 <= y < SIZE:  # off-centre framing can put the pupil out of the frame
            pupils_seen += 1
            assert mask[int(y), int(x)] == 0
    assert pupils_seen >= 30
    assert 0.01 < np.mean(fractions) < 0.4
    assert sum(fraction > 0 for fraction in fractions) >= 30


def test_mask_pixels_lie_in_the_visible_iris_geometry():
    for index in range(10):
        _, mask, geo = iris.render_with_geometry(iris.sample_rng(1, 0, index), SIZE)
        rows, cols = np.nonzero(mask)
        x, y = (cols + 0.5) * geo.pixel_aspect, rows + 0.5  # scene coordinates of the pixel centres
        gx, gy = geo.to_iris_frame(x, y)
        # Majority downsampling lets a pixel whose centre is just outside a boundary count; one pixel of slack.
        assert np.all(np.hypot(gx, gy) < geo.iris_radius + 1)
        px, py = gx - geo.pupil_offset[0], gy - geo.pupil_offset[1]
        assert np.all(np.hypot(px, py) > geo.pupil_radius * 0.9 - 1)
        along, across = geo.to_eye_frame(x, y)
        u = along / geo.half_width
        assert np.all(across > geo.upper_lid(u) - 1) and np.all(across < geo.lower_lid(u) + 1)


def is_grey(image: np.ndarray) -> bool:
    return np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])


@pytest.mark.parametrize(("mode", "low", "high"), [("mixed", 15, 35), ("nir", 50, 50), ("visible", 0, 0)])
def test_the_mode_decides_how_many_captures_are_grey_near_infrared(mode, low, high):
    images = [iris.render_sample(iris.sample_rng(2, 0, index), 32, mode)[0] for index in range(50)]
    assert low <= sum(is_grey(image) for image in images) <= high


def test_near_infrared_irises_are_bright_and_their_limbus_faint():
    # Published NIR captures: a mid-grey, textured iris close to the sclera in brightness, a dark pupil.
    iris_to_sclera, pupil_to_iris = [], []
    for index in range(30):
        image, mask, geo = iris.render_with_geometry(iris.sample_rng(5, 0, index), 96, "nir")
        rows, cols = np.mgrid[:96, :96]
        gx, gy = geo.to_iris_frame((cols + 0.5) * geo.pixel_aspect, rows + 0.5)
        ring = np.hypot(gx, gy) / geo.iris_radius
        outer_iris = mask.astype(bool) & (ring > 0.75)
        along, across = geo.to_eye_frame((cols + 0.5) * geo.pixel_aspect, rows + 0.5)
        u = along / geo.half_width
        in_opening = (across > geo.upper_lid(u) + 2) & (across < geo.lower_lid(u) - 2) & (np.abs(u) < 0.8)
        sclera = in_opening & (ring > 1.2)
        if outer_iris.sum() < 20 or sclera.sum() < 20:
            continue
        grey = image[..., 0].astype(float)
        iris_to_sclera.append(np.median(grey[outer_iris]) / max(np.median(grey[sclera]), 1))
        px, py = gx - geo.pupil_offset[0], gy - geo.pupil_offset[1]
        pupil = np.hypot(px, py) < 0.7 * geo.pupil_radius
        if pupil.sum() >= 5:
            pupil_to_iris.append(np.median(grey[pupil]) / max(np.median(grey[outer_iris]), 1))
    assert len(iris_to_sclera) >= 10
    assert np.median(iris_to_sclera) > 0.55  # a low-contrast limbus is the rule, not the exception
    assert np.mean(np.array(iris_to_sclera) > 0.8) > 0.15
    assert np.median(pupil_to_iris) < 0.6


def test_the_frame_is_squeezed_like_a_resized_four_by_three_photo():
    # The same draws in a square and in a 4:3 frame: the 4:3 iris is 3/4 as wide in pixels, as tall.
    ratios = []
    for index in range(20):
        square = iris.render_with_geometry(iris.sample_rng(4, 0, index), SIZE, "visible", 1.0)[1]
        wide = iris.render_with_geometry(iris.sample_rng(4, 0, index), SIZE, "visible", 4 / 3)[1]
        width_square, width_wide = square.any(0).sum(), wide.any(0).sum()
        if width_square >= 12 and square.any(0)[[0, -1]].sum() == 0 and wide.any(0)[[0, -1]].sum() == 0:
            ratios.append(width_wide / width_square)
    assert len(ratios) >= 8
    assert 0.7 < np.median(ratios) < 0.8


def test_a_mode_or_frame_the_generator_does_not_draw_stops_with_one_sentence(tmp_path):
    with pytest.raises(UserError, match="data.mode must be one of nir, visible, mixed, got 'infrared'"):
        iris.ensure_dataset(tmp_path, SIZE, 1, 1, 0, seed=0, mode="infrared")
    with pytest.raises(UserError, match=r"data.frame_aspect must lie in \[0.5, 2.0\]"):
        iris.ensure_dataset(tmp_path, SIZE, 1, 1, 0, seed=0, frame_aspect=4.0)
    assert not list(tmp_path.iterdir())


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


def test_workers_are_not_forked_from_a_process_running_jax_threads(tmp_path):
    jax = pytest.importorskip("jax")
    jax.numpy.ones(3).block_until_ready()  # JAX's threads run now; forking this process would warn (and may hang)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        root = iris.ensure_dataset(tmp_path, 32, num_train=4, num_val=2, num_test=0, seed=0, workers=2)
    assert cache.is_complete(root) and len(list((root / "train" / "img").iterdir())) == 4


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

    def render_then_fail(rng, size, mode, frame_aspect):
        calls.append(size)
        if len(calls) == 2:
            raise RuntimeError("interrupted")
        return iris.render_with_geometry(rng, size, mode, frame_aspect)[:2]

    monkeypatch.setattr(cache, "render_sample", render_then_fail)
    # Forkserver workers import the generator afresh; forked ones inherit the patched renderer.
    monkeypatch.setattr(cache, "START_METHOD", "fork")
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
    assert source.count("MIXED_NIR_FRACTION = 0.5\n") == 1
    appearance.write_text(source.replace("MIXED_NIR_FRACTION = 0.5\n", "MIXED_NIR_FRACTION = 0.55\n"))

    digest_of = cache.code_digest
    monkeypatch.setattr(cache, "code_digest", lambda: digest_of(unchanged))
    assert cache.dataset_key(SIZE, counts, 0) == key
    monkeypatch.setattr(cache, "code_digest", lambda: digest_of(edited))
    assert cache.dataset_key(SIZE, counts, 0) != key


def test_a_newer_library_is_another_dataset(monkeypatch):
    counts = {"train": 3, "val": 1, "test": 0}
    key = cache.dataset_key(SIZE, counts, 0)
    versions = cache.library_versions()
    assert set(versions) == {"numpy", "scipy", "scikit-image", "imageio", "pillow"}
    monkeypatch.setattr(cache, "library_versions", lambda: {**versions, "scipy": "999.0"})
    assert cache.dataset_key(SIZE, counts, 0) != key


def test_the_dataset_records_its_identity(tmp_path):
    root = iris.ensure_dataset(tmp_path, SIZE, num_train=1, num_val=1, num_test=0, seed=0, workers=1)
    identity = json.loads((root / "dataset.json").read_text())
    assert identity == {
        "image_size": SIZE,
        "counts": {"train": 1, "val": 1, "test": 0},
        "seed": 0,
        "mode": "mixed",
        "frame_aspect": 4 / 3,
        "code_digest": cache.code_digest(),
        "libraries": cache.library_versions(),
    }
    assert "generator_version" not in identity


def test_loader_reads_the_dataset_through_the_folder_source(tmp_path):
    splits = iris.load(tmp_path, 4, 2, 0, seed=0, image_size=32, channels=3, mask_spec=MaskSpec(num_classes=2))
    assert set(splits) == {"train", "val"}
    assert splits["train"].images.shape == (4, 32, 32, 3)
    assert set(np.unique(splits["train"].masks).tolist()) <= {0, 1}


def test_the_data_config_passes_mode_and_frame_to_the_generator(tmp_path):
    overrides = ["data.num_train=3", "data.num_val=1", "data.num_test=0", "data.image_size=32", "data.mode=nir"]
    cfg = compose_config([*overrides, f"data.cache_dir={tmp_path}"])
    assert cfg.data.frame_aspect == pytest.approx(4 / 3)
    splits = load_splits(cfg.data)
    assert all(is_grey(image) for image in splits["train"].images)
    (root,) = tmp_path.glob("iris-*")
    identity = json.loads((root / "dataset.json").read_text())
    assert identity["mode"] == "nir" and identity["frame_aspect"] == pytest.approx(4 / 3)


def test_cli_writes_the_dataset_and_a_preview(tmp_path):
    out, preview = tmp_path / "data", tmp_path / "preview.png"
    sizes = ["--image-size", "32", "--num-train", "4", "--num-val", "2", "--num-test", "1", "--workers", "1"]
    main(["--out", str(out), *sizes, "--mode", "nir", "--preview", str(preview), "--preview-count", "4"])
    assert cache.is_complete(out)
    assert sorted(p.name for p in (out / "val" / "mask").iterdir()) == ["00000.png", "00001.png"]
    assert is_grey(skio.imread(out / "train" / "img" / "00000.png"))
    grid = skio.imread(preview)
    # Four samples, each as image | overlay shown 4:3 (32 x 43), two pairs per row.
    assert grid.shape == (2 * 32, 4 * 43, 3)


def test_cli_refuses_to_write_into_a_folder_with_files(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--image-size", "32", "--num-train", "1", "--num-val", "1"])
    assert (tmp_path / "keep.txt").read_text() == "mine"
