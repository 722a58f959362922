"""Ctrl-C and SIGTERM (what a cluster sends before it kills a job) stop a run cleanly.

Both raise `Interrupted` in the main thread at the next Python bytecode (between
training steps), which unwinds like any exception: the MLflow run ends KILLED,
the last complete epoch's checkpoint stays on disk, and the process exits with
128 + the signal number.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; the message says how to continue the run."""

    def __init__(self, signum: int, resume_hint: str):
        self.exit_code = 128 + signum
        super().__init__(f"Stopped by {signal.Signals(signum).name}; continue with {resume_hint}.")


@contextlib.contextmanager
def interruptible(resume_hint: str) -> Iterator[None]:
    """Turn SIGINT/SIGTERM into Interrupted(resume_hint) while the block runs."""
    # Python delivers signals only to the main thread; jobs run elsewhere keep the default handlers.
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Interrupted(signum, resume_hint)

    previous = {signum: signal.signal(signum, stop) for signum in HANDLED}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def exit_on_interrupt(log: logging.Logger) -> Iterator[None]:
    """For entry points: an Interrupted run logs how to continue it and exits with 128 + the signal number."""
    try:
        yield
    except Interrupted as stop:
        log.error("%s", stop)
        sys.exit(stop.exit_code)
