"""A run's tracking records kept on local disk until the tracking store has taken them: the spool.

Logging a metric, param, tag, dataset, artifact, picture or the model appends one
JSON line to `RUN_DIR/mlflow-spool/records.jsonl` (files are first copied into
`files/`), which costs the training loop a local write whatever the tracking
server's latency or state. `delivery` sends the lines to the store in order and,
after each one the store took, moves the cursor in `delivered.json` past it.

Nothing appended is lost: a record stays in the file until the cursor passes it,
each line is written by one `write` (a process killed at any moment leaves whole
lines, and a trailing partial line is dropped on reopening), and the cursor is
replaced atomically. `target.json` names the store, experiment and run the records
belong to, so `python -m ssnets.sync RUN_DIR` can deliver what a finished process
left behind. Once every record is delivered the spool folder is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ssnets.common.files import TEMPORARY_PREFIX, write_atomically

SPOOL_DIR = "mlflow-spool"
TARGET_FILE = "target.json"
RECORDS_FILE = "records.jsonl"
CURSOR_FILE = "delivered.json"
REJECTED_FILE = "rejected.jsonl"
FILES_DIR = "files"


@dataclass(frozen=True)
class Target:
    """Where a spool's records go."""

    tracking_uri: str
    experiment_id: str
    run_id: str


@dataclass(frozen=True)
class Record:
    number: int  # the line's index in records.jsonl
    end: int  # byte offset just past the line
    kind: str
    fields: Mapping[str, Any]


class Spool:
    """The records of one run not yet delivered; appended by the run's threads, read by its delivery."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        if not (self.directory / TARGET_FILE).is_file():
            raise FileNotFoundError(self.directory / TARGET_FILE)
        self.target = Target(**json.loads((self.directory / TARGET_FILE).read_text()))
        self._records = self.directory / RECORDS_FILE
        self._changed = threading.Condition()
        self._drop_partial_writes()
        self._count = self._complete_lines()

    @classmethod
    def open_or_create(cls, directory: Path, target: Target) -> Spool:
        """The spool in `directory`, created for `target` if there is none (a continued run reuses its own)."""
        directory = Path(directory)
        (directory / FILES_DIR).mkdir(parents=True, exist_ok=True)
        if not (directory / TARGET_FILE).is_file():
            write_atomically(directory / TARGET_FILE, lambda path: path.write_text(json.dumps(asdict(target))))
        return cls(directory)

    def append(self, kind: str, **fields: Any) -> None:
        line = (json.dumps({"kind": kind, **fields}, allow_nan=True) + "\n").encode()
        with self._changed:
            with open(self._records, "ab") as file:
                file.write(line)
            self._count += 1
            self._changed.notify_all()

    def keep(self, name: str, write: Callable[[Path], None]) -> str:
        """write(path) of a file or folder `name` under files/, renamed into place once complete; the path
        relative to the spool, for a record to carry (the files go once the record is delivered)."""
        relative = Path(FILES_DIR, uuid.uuid4().hex[:12], name)
        final = self.directory / relative
        temporary = final.with_name(TEMPORARY_PREFIX + name)  # keeps the suffix, which writers go by
        temporary.parent.mkdir(parents=True)
        write(temporary)
        os.replace(temporary, final)
        return str(relative)

    def keep_copy(self, source: Path) -> str:
        """A copy of `source` (the run may rewrite the original before it is delivered)."""
        return self.keep(Path(source).name, lambda path: shutil.copyfile(source, path))

    def path(self, relative: str) -> Path:
        return self.directory / relative

    def pending(self) -> list[Record]:
        """The records past the cursor, in order."""
        return list(self._read_from_cursor())

    def next_pending(self) -> Record | None:
        """The oldest record past the cursor (reading only that far)."""
        return next(self._read_from_cursor(), None)

    def _read_from_cursor(self) -> Iterator[Record]:
        number, end = self._cursor()
        if not self._records.exists():
            return
        with open(self._records, "rb") as file:
            file.seek(end)
            for line in file:
                if not line.endswith(b"\n"):  # being appended right now
                    return
                end += len(line)
                fields = json.loads(line)
                yield Record(number, end, fields.pop("kind"), fields)
                number += 1

    def pending_count(self) -> int:
        return self._count - self._cursor()[0]

    def mark_delivered(self, record: Record) -> None:
        """Move the cursor past `record`, then drop the files it carried."""
        cursor = {"delivered": record.number + 1, "offset": record.end}
        write_atomically(self.directory / CURSOR_FILE, lambda path: path.write_text(json.dumps(cursor)))
        if "path" in record.fields:
            shutil.rmtree(self.path(record.fields["path"]).parent, ignore_errors=True)
        with self._changed:
            self._changed.notify_all()

    def reject(self, record: Record, reason: str) -> None:
        """Set aside a record the store refused for good (it would block every later one), then pass it."""
        line = json.dumps({"kind": record.kind, **record.fields, "rejected_because": reason}) + "\n"
        with open(self.directory / REJECTED_FILE, "a") as file:
            file.write(line)
        self.mark_delivered(record)

    def rejected_count(self) -> int:
        rejected = self.directory / REJECTED_FILE
        return len(rejected.read_text().splitlines()) if rejected.exists() else 0

    def wait_for_change(self, timeout: float) -> None:
        """Block until a record is appended or delivered, or `timeout` seconds pass."""
        with self._changed:
            self._changed.wait(timeout)

    def wake(self) -> None:
        """Wake every thread in wait_for_change (one that is asked to stop)."""
        with self._changed:
            self._changed.notify_all()

    def remove(self) -> None:
        """Delete the spool, and RUN_DIR/mlflow-spool once no run's spool is left in it; only once everything
        is delivered (and nothing was rejected)."""
        shutil.rmtree(self.directory)
        with contextlib.suppress(OSError):  # another run's spool is still there
            self.directory.parent.rmdir()

    def _cursor(self) -> tuple[int, int]:
        path = self.directory / CURSOR_FILE
        if not path.exists():
            return 0, 0
        cursor = json.loads(path.read_text())
        return cursor["delivered"], cursor["offset"]

    def _complete_lines(self) -> int:
        return self._records.read_bytes().count(b"\n") if self._records.exists() else 0

    def _drop_partial_writes(self) -> None:
        """A line or file cut short by a killed process: never referenced by a whole record, only in the way."""
        if self._records.exists():
            data = self._records.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(self._records, "r+b") as file:
                    file.truncate(data.rfind(b"\n") + 1)
        for partial in (self.directory / FILES_DIR).glob(f"*/{TEMPORARY_PREFIX}*"):
            shutil.rmtree(partial) if partial.is_dir() else partial.unlink()
        for partial in self.directory.glob(f"{TEMPORARY_PREFIX}*"):
            partial.unlink()
