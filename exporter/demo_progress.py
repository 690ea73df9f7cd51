"""The demo database's build, shown as it goes: a progress bar (rich) when stderr is a terminal,
otherwise a log line per step and per tenth done, so that a long build (100,000 users) is never
silent."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import structlog
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from exporter.demo_data import build_demo_database

log = structlog.get_logger()
# Without a terminal: a line for each step, and one more each time another tenth is done.
LOG_EVERY = 0.1


def build_with_progress(database: Path, *, now: float, users: int) -> None:
    started = time.monotonic()
    if sys.stderr.isatty():
        with Progress(TextColumn("{task.description:<22}"), BarColumn(),
                      TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                      TextColumn("elapsed,"), TimeRemainingColumn(), TextColumn("left"),
                      console=Console(stderr=True)) as bar:
            task = bar.add_task("building", total=1.0)
            build_demo_database(database, now=now, users=users, progress=lambda step, done:
                                bar.update(task, description=step, completed=done))
    else:
        logged: list[tuple[str, float]] = [("", -1.0)]

        def report(step: str, done: float) -> None:
            last_step, last_done = logged[-1]
            if step != last_step or done - last_done >= LOG_EVERY:
                logged.append((step, done))
                log.info("demo_building", step=step, done_percent=round(100 * done), users=users)

        build_demo_database(database, now=now, users=users, progress=report)
    log.info("demo_built", database=str(database), users=users,
             seconds=round(time.monotonic() - started, 1))
