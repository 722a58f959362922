"""Files that other processes (or a later run) read: written whole or not at all, and locks between processes."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ssnets.common.errors import UserError

log = logging.getLogger(__name__)

TEMPORARY_PREFIX = ".tmp-"


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """write(temporary path), flush it to disk, then rename it to `path` in one step.

    A reader sees the previous file or the new one, never a half-written one; a
    failed write (full disk, read-only folder) is one UserError naming `path`.
    """
    # Keras picks the file format from the suffix, so the temporary name keeps it.
    temporary = path.with_name(f"{TEMPORARY_PREFIX}{os.getpid()}-{path.name}")
    try:
        write(temporary)
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise UserError(
            f"Cannot write {path} ({error.strerror or error}); free disk space or point hydra.run.dir "
            "at a writable folder."
        ) from error


def remove_partial_writes(folder: Path) -> None:
    """Delete the temporary files a process killed inside write_atomically left in `folder`."""
    for partial in Path(folder).glob(f"{TEMPORARY_PREFIX}*"):
        partial.unlink()


@contextlib.contextmanager
def file_lock(lock_path: Path, waiting_message: str | None = None) -> Iterator[None]:
    """Held by one process at a time (an advisory lock on `lock_path`, created if missing).

    `waiting_message` is logged once when another process holds the lock, so a
    job that waits says why.
    """
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting_message:
                log.info("%s", waiting_message)
            fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
