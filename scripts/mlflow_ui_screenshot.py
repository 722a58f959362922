"""Screenshots of a sweep's comparison in the MLflow UI, taken by a real (headless) Chromium.

    python scripts/mlflow_ui_screenshot.py --tracking-uri http://127.0.0.1:5000 [--experiment ssnets]
        [--sweep-id latest|ID] [--out docs/mlflow_sweep]

Saves the view `ssnets.compare` links to (the runs of the sweep sorted by val mIoU,
the params that differ and the metrics as columns) in the experiment, then writes
OUT_table.png (the runs table) and OUT_charts.png (the chart view, with the parallel
coordinates of the params against val mIoU). The tracking URI is a running server
(`mlflow ui` or `mlflow server`); Chromium is Debian's `chromium` package
(`apt-get install chromium`). The README's pictures were made with this script.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_SECONDS = 180
# Long enough for the UI to fetch the runs and draw the charts (virtual time: the page's timers, not the wall clock).
RENDER_BUDGET_MS = 40_000


def headless_chromium(url: str, window: tuple[int, int], screenshot: Path | None = None) -> str:
    """The DOM of `url` once rendered (and a PNG of the window when `screenshot` is given)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("No chromium on PATH; install Debian's package: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="ssnets-chromium-") as profile:
        common = [
            chromium,
            "--headless",
            "--no-sandbox",  # root in a container has no user namespace for Chromium's sandbox
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={window[0]},{window[1]}",
            f"--virtual-time-budget={RENDER_BUDGET_MS}",
        ]
        if screenshot is not None:
            run([*common, f"--screenshot={screenshot}", url])
        return run([*common, "--dump-dom", url])


def run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_SECONDS)
    if result.returncode != 0:
        raise RuntimeError(f"chromium exited {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def main() -> None:
    from hydra import compose, initialize_config_module

    from ssnets.compare import latest_sweep_id, rank, training_runs
    from ssnets.tracking.base import build_tracker
    from ssnets.training.monitor import Monitor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--experiment", default="ssnets")
    parser.add_argument("--sweep-id", default="latest")
    parser.add_argument("--out", type=Path, default=Path("docs/mlflow_sweep"))
    args = parser.parse_args()
    overrides = [f"logger.tracking_uri={args.tracking_uri}", f"logger.experiment_name={args.experiment}"]
    with initialize_config_module("ssnets.conf", version_base="1.3"):
        tracker = build_tracker(compose("config", overrides=overrides).logger)
    sweep_id = latest_sweep_id(tracker) if args.sweep_id == "latest" else args.sweep_id
    monitor = Monitor()
    links = tracker.comparison_links(rank(training_runs(tracker, sweep_id), monitor), monitor.name, monitor.mode)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for view, window in (("table", (2200, 720)), ("charts", (1900, 1000))):
        path = args.out.with_name(f"{args.out.name}_{view}.png")
        headless_chromium(links[view], window, path)
        print(f"{path}: {links[view]}")


if __name__ == "__main__":
    main()
