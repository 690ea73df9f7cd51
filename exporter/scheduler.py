"""One APScheduler job per collector: its own interval and jitter (or cron schedule), never two
runs at once, and exponential backoff while it keeps failing."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from exporter.config import CollectorConfig
from exporter.runner import Runner

MAX_BACKOFF_SECONDS = 300.0


def backoff_delay(interval: float, consecutive_failures: int) -> float:
    """After n failures in a row wait interval * 2**n, capped at max(interval, 5 minutes)."""
    return min(interval * 2 ** consecutive_failures, max(interval, MAX_BACKOFF_SECONDS))


def trigger(config: CollectorConfig) -> BaseTrigger:
    """Its cron schedule (in UTC) if it has one, else its interval. Either way a collector also
    runs at start-up, so /metrics is complete before the first scheduled time."""
    if config.schedule is not None:
        return CronTrigger.from_crontab(config.schedule, timezone=UTC)
    return IntervalTrigger(seconds=config.interval, jitter=config.jitter)


class Scheduler:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.scheduler = BackgroundScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1})
        now = datetime.now(UTC)
        for name in runner.applicable():
            config = runner.collectors[name].config
            self.scheduler.add_job(
                self._run, trigger(config), args=[name], id=name, name=name, next_run_time=now,
                misfire_grace_time=max(1, int(config.interval / 2)))

    def _run(self, name: str) -> None:
        status = self.runner.run(name).collectors[name]
        if status.state == "failed":
            delay = backoff_delay(self.runner.collectors[name].config.interval,
                                  status.consecutive_failures)
            self.scheduler.modify_job(name, next_run_time=datetime.now(UTC)
                                      + timedelta(seconds=delay))

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        """Start no more runs and wait for the running ones: each ends by its timeout, or at once
        when the runner is closed first."""
        with contextlib.suppress(SchedulerNotRunningError):  # stopped by a reload meanwhile
            self.scheduler.shutdown(wait=True)
