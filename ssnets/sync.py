"""Deliver what runs could not send to their MLflow store:  python -m ssnets.sync RUN_DIR [RUN_DIR ...]

A run whose tracking server did not answer before it finished keeps the records it
could not send (metrics, params, the dataset, pictures, artifacts, the model, its
final status) in RUN_DIR/mlflow-spool/RUN_ID, and says so as it ends. This sends
them to the store the run logged to (or --tracking-uri, for a server that moved),
in order and each once, waiting up to --timeout seconds for the store to answer,
and removes each spool once it is empty. A sweep directory works too: every run
directory under it is synced. Exit 0 when everything was delivered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from ssnets.common.errors import UserError, exit_on_user_error
from ssnets.tracking.delivery import Delivery, exclusive
from ssnets.tracking.spool import SPOOL_DIR, TARGET_FILE, Spool

log = logging.getLogger("ssnets.sync")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ssnets.sync", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories (or sweep directories, or spools)")
    parser.add_argument("--tracking-uri", help="deliver to this store instead of the one each run logged to")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the store (default 300)")
    return parser.parse_args(argv)


def spools_under(path: Path) -> list[Path]:
    """The spool folders of a run directory, of every run directory under a sweep directory, or `path` itself."""
    if (path / TARGET_FILE).is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path} is not a directory; pass the run directory the run named when it finished.")
    return sorted(target.parent for target in path.glob(f"**/{SPOOL_DIR}/*/{TARGET_FILE}"))


def sync(args: argparse.Namespace) -> bool:
    folders = [folder for path in args.run_dirs for folder in spools_under(path.expanduser())]
    if not folders:
        log.info("Nothing to deliver: no %s under %s", SPOOL_DIR, ", ".join(str(path) for path in args.run_dirs))
        return True
    deadline = time.monotonic() + args.timeout
    complete = True
    for folder in folders:
        complete &= sync_spool(folder, args.tracking_uri, deadline)
    return complete


def sync_spool(folder: Path, tracking_uri: str | None, deadline: float) -> bool:
    with exclusive(folder):
        if not (folder / TARGET_FILE).is_file():  # the run's own delivery finished it while this waited
            shutil.rmtree(folder, ignore_errors=True)
            return True
        spool = Spool(folder)
        delivery = Delivery(spool, tracking_uri)
        pending = spool.pending_count()
        delivered = delivery.deliver_until(deadline)
        left = spool.pending_count()
    run = f"run {spool.target.run_id} in {delivery.tracking_uri}"
    if not delivered:
        log.error("%s: delivered %d of %d records; %d are still in %s", run, pending - left, pending, left, folder)
        return False
    if spool.rejected_count():
        log.error("%s: the store refused %d records; they are listed in %s", run, spool.rejected_count(), folder)
        return False
    spool.remove()
    log.info("%s: delivered %d records", run, pending)
    return True


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_on_user_error(log):
        if not sync(parse_args(argv)):
            raise SystemExit(1)


if __name__ == "__main__":
    main()
