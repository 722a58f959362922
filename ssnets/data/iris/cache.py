"""The synthetic dataset on disk: rendering samples into PNGs over worker processes, and the cache of datasets.

`ensure_dataset` writes root/{train,val,test}/{img,mask}/NNNNN.png once per
identity and reuses it afterwards; `python -m ssnets.data.iris --out DIR
--preview grid.png` does the same by hand. The identity is what decides the
pixels: size, counts, seed, mode and frame aspect, the generator's own source
code and the versions of the libraries it calls, so any edit to the generator
makes a new dataset.

Worker processes come from a forkserver: forking the caller itself is unsafe
once TensorFlow or JAX have started their threads (JAX warns about it), and a
forkserver pays the interpreter start-up and imports once per calling process
(about a second) where `spawn` pays them for every pool.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib.metadata
import json
import logging
import math
import multiprocessing
import os
import shutil
import time
import uuid
from contextlib import AbstractContextManager
from pathlib import Path

import imageio.v3 as imageio
import numpy as np

from ssnets.common.errors import UserError
from ssnets.common.files import file_lock
from ssnets.data.iris.appearance import check_mode
from ssnets.data.iris.render import DEFAULT_FRAME_ASPECT, DEFAULT_MODE, render_sample, sample_rng

SPLITS = ("train", "val", "test")
COMPLETE_MARKER = "dataset.json"
PACKAGE_DIR = Path(__file__).parent
# The libraries whose numbers end up in the pixels: random streams, filters and drawing, JPEG and PNG coding.
LIBRARIES = ("numpy", "scipy", "scikit-image", "imageio", "pillow")
# How worker processes start (see the module docstring); the tests swap in "fork" to reach a patched worker.
START_METHOD = "forkserver"
FRAME_ASPECT_RANGE = (0.5, 2.0)

log = logging.getLogger(__name__)


def _write_samples(
    directory: str, image_size: int, seed: int, mode: str, frame_aspect: float, split: str, start: int, stop: int
) -> float:
    """Render and write samples start..stop-1 of `split`; return the CPU seconds it took."""
    cpu_started = time.process_time()
    split_dir = Path(directory) / split
    for index in range(start, stop):
        image, mask = render_sample(sample_rng(seed, SPLITS.index(split), index), image_size, mode, frame_aspect)
        # imageio directly (skimage.io's own backend) because only it takes a compression level:
        # level 1 writes these noisy images twice as fast as the default for ~8% more bytes.
        imageio.imwrite(split_dir / "img" / f"{index:05d}.png", image, compress_level=1)
        imageio.imwrite(split_dir / "mask" / f"{index:05d}.png", mask * np.uint8(255), compress_level=1)
    return time.process_time() - cpu_started


def _chunks(counts: dict[str, int], workers: int) -> list[tuple[str, int, int]]:
    """(split, start, stop) pieces: several per worker for balance, big enough to amortise the hand-off."""
    chunk = max(1, min(50, math.ceil(sum(counts.values()) / (4 * workers))))
    return [
        (split, start, min(start + chunk, count)) for split, count in counts.items() for start in range(0, count, chunk)
    ]


def _worker_context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context(START_METHOD)
    if START_METHOD == "forkserver":
        context.set_forkserver_preload([__name__])  # each worker forks with the generator already imported
    return context


def _generate_into(
    directory: Path,
    image_size: int,
    counts: dict[str, int],
    seed: int,
    workers: int | None,
    mode: str,
    frame_aspect: float,
) -> None:
    total = sum(counts.values())
    workers = max(1, workers or os.cpu_count() or 1)
    chunks = _chunks(counts, workers)
    for split, count in counts.items():
        if count:
            for kind in ("img", "mask"):
                (directory / split / kind).mkdir(parents=True)
    log.info(
        "Generating %d synthetic iris images (%dpx, %s, %.2f:1 frames, seed %d) with %d workers",
        total,
        image_size,
        mode,
        frame_aspect,
        seed,
        workers,
    )
    started = time.perf_counter()
    settings = (str(directory), image_size, seed, mode, frame_aspect)
    if workers == 1 or len(chunks) <= 1:
        cpu = sum(_write_samples(*settings, *chunk) for chunk in chunks)
    else:
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=min(workers, len(chunks)), mp_context=_worker_context()
        ) as pool:
            futures = [pool.submit(_write_samples, *settings, *chunk) for chunk in chunks]
            done, pending = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
            for future in pending:  # after a failure, do not render what will be thrown away
                future.cancel()
            cpu = sum(future.result() for future in done)
    seconds = time.perf_counter() - started
    # CPU time is what the images cost whatever else runs on the machine; the load says how much else did.
    log.info(
        "Generated %d images in %.1f s (%.1f images/s; %.1f ms CPU per image; load average %.1f)",
        total,
        seconds,
        total / max(seconds, 1e-9),
        1000 * cpu / max(total, 1),
        os.getloadavg()[0],
    )
    # data=folder on this folder then names the classes as data=iris does (the NICE-I mask convention).
    (directory / "classes.txt").write_text("background\niris\n")
    identity = _identity(image_size, counts, seed, mode, frame_aspect)
    (directory / COMPLETE_MARKER).write_text(json.dumps(identity, indent=2) + "\n")


def is_complete(root: Path) -> bool:
    return (root / COMPLETE_MARKER).is_file()


def _generation_lock(target: Path) -> AbstractContextManager[None]:
    """Serialise generation of one target across processes (e.g. parallel sweep jobs)."""
    return file_lock(
        target.parent / f".{target.name}.lock", f"Waiting for another process to finish generating {target}"
    )


def write_dataset(
    target: Path,
    image_size: int,
    counts: dict[str, int],
    seed: int,
    workers: int | None,
    mode: str = DEFAULT_MODE,
    frame_aspect: float = DEFAULT_FRAME_ASPECT,
) -> None:
    """Generate into a temporary sibling and rename it onto `target` when complete.

    Callers that may race on `target` hold `_generation_lock(target)`: then no one else is
    writing, so staging folders and an unmarked target left by earlier runs are removed.
    """
    check_settings(mode, frame_aspect)
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(leftover)
    if target.exists() and not is_complete(target):
        shutil.rmtree(target)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        _generate_into(staging, image_size, counts, seed, workers, mode, frame_aspect)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # only still there when generation failed


def code_digest(package_dir: Path = PACKAGE_DIR) -> str:
    """SHA-256 of the generator's source: every .py file of this package, in file-name order."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.glob("*.py"), key=lambda path: path.name):
        source = path.read_bytes()
        # Name and length delimit each file, so no two different sets of files hash alike.
        digest.update(f"{path.name}\0{len(source)}\0".encode())
        digest.update(source)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in LIBRARIES}


def _identity(image_size: int, counts: dict[str, int], seed: int, mode: str, frame_aspect: float) -> dict:
    """Everything that decides a dataset's content."""
    return {
        "image_size": image_size,
        "counts": counts,
        "seed": seed,
        "mode": mode,
        "frame_aspect": frame_aspect,
        "code_digest": code_digest(),
        "libraries": library_versions(),
    }


def dataset_key(
    image_size: int,
    counts: dict[str, int],
    seed: int,
    mode: str = DEFAULT_MODE,
    frame_aspect: float = DEFAULT_FRAME_ASPECT,
) -> str:
    identity = _identity(image_size, counts, seed, mode, frame_aspect)
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def check_settings(mode: str, frame_aspect: float) -> None:
    """Stop on a mode or frame aspect the generator does not draw."""
    check_mode(mode)
    low, high = FRAME_ASPECT_RANGE
    if not low <= frame_aspect <= high:
        raise UserError(
            f"data.frame_aspect must lie in [{low}, {high}] (width / height of the camera frame, 1.3333 for 4:3), "
            f"got {frame_aspect}."
        )


def ensure_dataset(
    cache_dir: str | os.PathLike,
    image_size: int,
    num_train: int,
    num_val: int,
    num_test: int,
    seed: int,
    workers: int | None = None,
    mode: str = DEFAULT_MODE,
    frame_aspect: float = DEFAULT_FRAME_ASPECT,
) -> Path:
    """Root of a synthetic dataset root/{train,val,test}/{img,mask}/NNNNN.png, generated on first use.

    The root is cache_dir/iris-<hash of size, counts, seed, mode, frame aspect,
    generator source and library versions>; a split with count 0 is not written. A root is only ever
    created complete (by rename), so an interrupted generation is never mistaken
    for a dataset.
    """
    check_settings(mode, frame_aspect)
    counts = {"train": num_train, "val": num_val, "test": num_test}
    cache = Path(cache_dir).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / f"iris-{dataset_key(image_size, counts, seed, mode, frame_aspect)}"
    with _generation_lock(root):
        if is_complete(root):
            log.info("Using cached synthetic iris dataset %s", root)
        else:
            write_dataset(root, image_size, counts, seed, workers, mode, frame_aspect)
    return root
