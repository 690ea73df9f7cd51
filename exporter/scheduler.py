"""One APScheduler job per collector: its own interval and jitter (or cron schedule), never two
runs at once, and exponential backoff while its queries keep failing (while the database cannot
be reached there is no backoff: a refused connection costs the database nothing, and probing on
schedule brings the values, and usage_database_up, back within one interval of its return); and
one that refreshes the process metrics.

Each run is logged in one line (collector, duration, per-user rows read, next run); a run that
succeeds after failures says so (collector_recovered), and `ready` is logged once, when every
collector has its first result. Failures are logged by the runner, with their error.
"""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from exporter.config import CollectorConfig
from exporter.runner import Runner
from exporter.runtime import REFRESH_SECONDS
from exporter.snapshot import CollectorStatus

MAX_BACKOFF_SECONDS = 300.0
log = structlog.get_logger()


def backoff_delay(interval: float, consecutive_failures: int) -> float:
    """After n failures in a row wait interval * 2**n, capped at max(interval, 5 minutes)."""
    return min(interval * 2 ** consecutive_failures, max(interval, MAX_BACKOFF_SECONDS))


def user_rows(status: CollectorStatus) -> int:
    """Per-user rows the run read: the longest of its per-user columns (one row per user)."""
    result = status.result
    return max(map(len, result.users.values()), default=0) if result else 0


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
        self._started = time.monotonic()
        self._ready_lock = threading.Lock()
        self._ready_logged = False
        now = datetime.now(UTC)
        for name in runner.applicable():
            config = runner.collectors[name].config
            self.scheduler.add_job(
                self._run, trigger(config), args=[name], id=name, name=name, next_run_time=now,
                misfire_grace_time=max(1, int(config.interval / 2)))
        self.scheduler.add_job(runner.store.refresh_runtime,
                               IntervalTrigger(seconds=REFRESH_SECONDS), id="runtime metrics",
                               misfire_grace_time=int(REFRESH_SECONDS))

    def _run(self, name: str) -> None:
        failures_before = self.runner.snapshot.collectors[name].consecutive_failures
        snapshot = self.runner.run(name)
        status = snapshot.collectors[name]
        if status.state == "failed":
            if snapshot.database_up is not False:
                delay = backoff_delay(self.runner.collectors[name].config.interval,
                                      status.consecutive_failures)
                self.scheduler.modify_job(name, next_run_time=datetime.now(UTC)
                                          + timedelta(seconds=delay))
        elif status.runs > 0 and not self.runner.database.closed:  # not cancelled by a stop
            job = self.scheduler.get_job(name)
            next_run = job.next_run_time.isoformat(timespec="seconds") if job else None
            log.info("collector_run", collector=name, duration_seconds=round(
                status.duration_seconds, 3), user_rows=user_rows(status), next_run=next_run)
            if failures_before:
                log.info("collector_recovered", collector=name, failed_runs=failures_before)
        with self._ready_lock:
            if snapshot.ready and not self._ready_logged:
                self._ready_logged = True
                log.info("ready", collectors=self.runner.applicable(),
                         seconds=round(time.monotonic() - self._started, 2))

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        """Start no more runs and wait for the running ones: each ends by its timeout, or at once
        when the runner is closed first."""
        with contextlib.suppress(SchedulerNotRunningError):  # stopped by a reload meanwhile
            self.scheduler.shutdown(wait=True)
