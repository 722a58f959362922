"""What every dataset source hands the training loop: a Split held in memory or a StreamedSplit read from disk.

Both give `len(split)`, `split.names`, `split.images` and `split.masks` (uint8 (N,H,W,C) and
(N,H,W); a StreamedSplit's read on access, sliced like arrays) and `split.subset(indices)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Split:
    """One split held in memory: images uint8 (N,H,W,C), masks uint8 (N,H,W)."""

    images: np.ndarray
    masks: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, indices: Sequence[int] | np.ndarray) -> Split:
        return Split(self.images[indices], self.masks[indices], tuple(self.names[i] for i in indices))


@dataclass(frozen=True)
class MaskSpec:
    """How mask values are read: class count and the optional void label."""

    num_classes: int
    ignore_index: int | None = None


class SampleReader(Protocol):
    """Reads one sample of a dataset on disk, as the in-memory source would hold it."""

    image_shape: tuple[int, int, int]

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(image uint8 (H,W,C), mask uint8 (H,W)) of sample `index`."""

    def read_mask(self, index: int) -> np.ndarray:
        """The mask alone (uint8 (H,W)), without decoding the image."""


@dataclass(frozen=True, eq=False)
class StreamedSplit:
    """One split left on disk: samples `indices` of `reader`, decoded when read (data.in_memory=false)."""

    reader: SampleReader
    indices: np.ndarray
    names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)

    def read(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """(image, mask) of this split's sample `position`."""
        return self.reader.read(int(self.indices[position]))

    @property
    def images(self) -> LazySamples:
        return LazySamples(lambda position: self.read(position)[0], len(self), self.reader.image_shape)

    @property
    def masks(self) -> LazySamples:
        return LazySamples(
            lambda position: self.reader.read_mask(int(self.indices[position])), len(self), self.reader.image_shape[:2]
        )

    def subset(self, indices: Sequence[int] | np.ndarray) -> StreamedSplit:
        return StreamedSplit(self.reader, self.indices[indices], tuple(self.names[i] for i in indices))


class LazySamples:
    """N equally shaped uint8 arrays read one by one on access: `samples[i]`, `samples[:n]` and
    `samples[[i, j]]` read only those (in parallel), `np.asarray(samples)` reads them all."""

    dtype = np.dtype(np.uint8)

    def __init__(self, read: Callable[[int], np.ndarray], length: int, sample_shape: tuple[int, ...]):
        self._read = read
        self._length = length
        self.shape = (length, *sample_shape)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, key: int | slice | Sequence[int] | np.ndarray) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self._read(range(self._length)[key])
        positions = range(self._length)[key] if isinstance(key, slice) else np.asarray(key)
        with ThreadPoolExecutor() as pool:
            samples = list(pool.map(self._read, positions))
        return np.stack(samples) if samples else np.empty((0, *self.shape[1:]), self.dtype)

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        everything = self[:]
        return everything if dtype is None else everything.astype(dtype)
