"""Streaming a folder from disk (data.in_memory=false): the same batches, checks and metrics as in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from skimage import io as skio
from test_folder import make_dataset as make_folder
from test_folder import write_pair

import ssnets
from ssnets.common.errors import UserError
from ssnets.data import folder
from ssnets.data.folder import load_folder
from ssnets.data.iris import ensure_dataset
from ssnets.data.pipeline import make_dataset
from ssnets.data.splitting import hold_out_validation
from ssnets.data.types import MaskSpec, Split, StreamedSplit

from conftest import TINY

BINARY = MaskSpec(num_classes=2)


def varied_folder(root: Path, count: int = 10) -> Path:
    """PNG and JPEG, RGB and grey, images of assorted sizes: every conversion and resize the reader does."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(count):
            height, width = (int(v) for v in rng.integers(30, 80, size=2))
            image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            if i % 3 == 1:
                image = image[..., 0]
            mask = (rng.random((height, width)) > 0.5).astype(np.uint8) * 255
            write_pair(root, split, f"s{i}", image, mask)
            if i % 3 == 2:  # the same picture as a JPEG
                (root / split / "img" / f"s{i}.png").unlink()
                skio.imsave(root / split / "img" / f"s{i}.jpg", image, check_contrast=False)
    return root


def assert_same_batches(a, b) -> None:
    for (images_a, masks_a), (images_b, masks_b) in zip(a, b, strict=True):
        np.testing.assert_array_equal(images_a.numpy(), images_b.numpy())
        np.testing.assert_array_equal(masks_a.numpy(), masks_b.numpy())


@pytest.mark.parametrize("cached", [False, True])
def test_streamed_splits_yield_the_in_memory_batches(tmp_path, cached):
    root = varied_folder(tmp_path / "data")
    cache = tmp_path / "cache" if cached else None
    in_memory = load_folder(root, 32, 3, BINARY, in_memory=True)
    streamed = load_folder(root, 32, 3, BINARY, in_memory=False, stream_cache=cache)
    for name, split in in_memory.items():
        stream = streamed[name]
        assert isinstance(split, Split) and isinstance(stream, StreamedSplit)
        assert stream.names == split.names and len(stream) == len(split)
        for training in (True, False):
            memory_batches = make_dataset(split, 4, training=training, seed=7)
            stream_batches = make_dataset(stream, 4, training=training, seed=7)
            for _ in range(2):  # a new shuffle each epoch, the same in both
                assert_same_batches(memory_batches, stream_batches)
        np.testing.assert_array_equal(stream.images[:3], split.images[:3])
        np.testing.assert_array_equal(stream.images[-1], split.images[-1])
        np.testing.assert_array_equal(np.asarray(stream.masks), split.masks)
    if cached:
        assert len(list(cache.glob("*.npz"))) == sum(len(split) for split in in_memory.values())
        from_cache = load_folder(root, 32, 3, BINARY, in_memory=False, stream_cache=cache)["train"]
        assert_same_batches(
            make_dataset(in_memory["train"], 4, training=True, seed=7),
            make_dataset(from_cache, 4, training=True, seed=7),
        )


def test_auto_streams_only_above_the_size_limit(tmp_path):
    root = make_folder(tmp_path)
    assert isinstance(load_folder(root, 32, 3, BINARY)["train"], Split)
    assert isinstance(load_folder(root, 32, 3, BINARY, in_memory_limit_gb=1e-6)["train"], StreamedSplit)
    with pytest.raises(UserError, match="data.in_memory='yes' must be true, false or auto"):
        load_folder(root, 32, 3, BINARY, in_memory="yes")


def test_held_out_validation_of_a_streamed_split_matches_in_memory(tmp_path):
    root = varied_folder(tmp_path)
    memory = hold_out_validation({"train": load_folder(root, 32, 3, BINARY)["train"]}, 0.3, seed=1)
    stream = hold_out_validation({"train": load_folder(root, 32, 3, BINARY, in_memory=False)["train"]}, 0.3, seed=1)
    for name in ("train", "val"):
        assert stream[name].names == memory[name].names
        np.testing.assert_array_equal(stream[name].images[:], memory[name].images)


def test_streaming_checks_every_file_up_front_but_decodes_only_the_masks(tmp_path, monkeypatch):
    root = varied_folder(tmp_path)
    decoded = []
    read_file = folder.read_file
    monkeypatch.setattr(folder, "read_file", lambda path: decoded.append(path.parent.name) or read_file(path))
    load_folder(root, 32, 3, BINARY, in_memory=False)
    # JPEGs written by skimage end with their end-of-image marker, so no image needed decoding.
    assert decoded and set(decoded) == {"mask"}


def stream_error(root: Path, match: str, spec: MaskSpec = BINARY) -> str:
    with pytest.raises(UserError, match=match) as info:
        load_folder(root, 32, 3, spec, in_memory=False)
    return str(info.value)


def test_streaming_names_a_damaged_png_before_training(tmp_path):
    root = make_folder(tmp_path)
    image = root / "train" / "img" / "s1.png"
    image.write_bytes(image.read_bytes()[:-30])
    assert "s1.png" in stream_error(root, "Cannot read")


def test_streaming_names_a_truncated_jpeg_before_training(tmp_path):
    root = make_folder(tmp_path)
    jpeg = root / "val" / "img" / "s0.jpg"
    skio.imsave(jpeg, np.full((40, 30, 3), 120, np.uint8), check_contrast=False)
    (root / "val" / "img" / "s0.png").unlink()
    jpeg.write_bytes(jpeg.read_bytes()[:200])
    assert "s0.jpg" in stream_error(root, "Cannot read")


def test_streaming_names_a_mask_of_another_size_or_with_bad_values(tmp_path):
    root = make_folder(tmp_path)
    skio.imsave(root / "train" / "mask" / "s0.png", np.zeros((10, 10), np.uint8), check_contrast=False)
    assert "s0.png" in stream_error(root, "must have their image's size")
    root = make_folder(tmp_path / "values", mask_value=3)
    assert "ignore_index" in stream_error(root, r"holds values \[3\] but data.num_classes is 2")


def test_streaming_rejects_what_in_memory_rejects_for_pixel_types(tmp_path):
    root = make_folder(tmp_path)
    write_pair(root, "train", "two_channels", np.zeros((40, 30, 2), np.uint8), np.zeros((40, 30), np.uint8))
    assert "two_channels.png" in stream_error(root, "expected a grey, RGB or RGBA image")


@pytest.mark.slow
def test_a_streamed_job_logs_the_in_memory_metrics(tmp_path, tracking_uri):
    """One tiny job in memory (ssnets.train from overrides) and one streamed (from a config object)."""
    cache = Path(ssnets.compose(TINY).data.cache_dir).expanduser()
    root = ensure_dataset(cache, 64, 16, 8, 4, 0)
    overrides = [
        "data=folder",
        f"data.root={root}",
        "data.image_size=64",
        "data.batch_size=8",
        *[override for override in TINY if override.startswith("trainer.")],
        f"logger.tracking_uri={tracking_uri}",
        "logger.experiment_name=streaming",
        "logger.log_model=false",
    ]
    in_memory = ssnets.train(overrides=[*overrides, "data.in_memory=true"], run_dir=tmp_path / "memory")
    config = ssnets.compose([*overrides, "data.in_memory=false", f"data.stream_cache={tmp_path / 'cache'}"])
    streamed = ssnets.train(config, run_dir=tmp_path / "streamed")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 16 + 8 + 4
    compared = [name for name in in_memory if name.startswith(("val_", "test_"))]
    assert "val_miou" in compared and "test_miou" in compared
    assert "val_iou_iris" in compared  # named by the classes.txt the generator writes beside its splits
    assert {name: streamed[name] for name in compared} == pytest.approx({name: in_memory[name] for name in compared})
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("streaming").experiment_id])
    assert sorted(run.data.params["data.in_memory"] for run in runs) == ["False", "True"]
    assert all(run.info.status == "FINISHED" for run in runs)
