"""The one exception type for problems a user can fix.

Its message is a single sentence that names the offending file or value and
says what to do; the entry points print it without a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator


class UserError(ValueError):
    """A configuration or data problem the user caused and can fix."""


@contextlib.contextmanager
def exit_on_user_error(log: logging.Logger, reraise: bool = False) -> Iterator[None]:
    """For entry points: a UserError is logged as its one sentence and the process exits 1.

    With `reraise` (a job of a multirun) it is logged and passed on, for the launcher to
    record; HYDRA_FULL_ERROR=1 lets it through with its traceback, as Hydra does for its own errors.
    """
    try:
        yield
    except UserError as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        log.error("%s", error)
        if reraise:
            raise
        sys.exit(1)
