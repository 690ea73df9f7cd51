"""Each collector runs on its own schedule, never overlapping itself, backing off while it fails."""

from __future__ import annotations

import shutil
import time

import pytest

from exporter.runner import Runner
from exporter.scheduler import MAX_BACKOFF_SECONDS, Scheduler, backoff_delay
from tests.conftest import NEXTCLOUD_DB, make_config, sqlite_execute


def test_backoff_doubles_and_is_capped():
    assert [backoff_delay(60, n) for n in (1, 2, 3)] == [120, 240, MAX_BACKOFF_SECONDS]
    assert backoff_delay(3600, 4) == 3600  # never sooner than the interval itself


def wait_for(predicate, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def runner(tmp_path):
    copy = tmp_path / "nc.db"
    shutil.copy(NEXTCLOUD_DB, copy)
    runner = Runner(make_config(f"sqlite:///{copy}", "nextcloud", collectors={
        "users": {"interval": "1s", "timeout": "1s", "jitter": "0.01s"},
        "shares": {"interval": "1s", "timeout": "1s", "jitter": "0.01s"},
        "sessions": {"enabled": False}, "storage": {"enabled": False},
        "dau": {"enabled": False}, "apps": {"enabled": False}}))
    yield runner, copy
    runner.close()


def test_every_collector_runs_at_start_and_again_each_interval(runner):
    runner, _ = runner
    scheduler = Scheduler(runner)
    scheduler.start()
    try:
        wait_for(lambda: runner.snapshot.ready)
        wait_for(lambda: all(s.runs >= 3 for s in runner.snapshot.collectors.values()
                             if s.state != "not_applicable"))
    finally:
        scheduler.stop()


def test_a_failing_collector_backs_off_while_others_keep_their_schedule(runner):
    runner, copy = runner
    sqlite_execute(copy, "ALTER TABLE oc_share RENAME TO oc_share_gone")
    scheduler = Scheduler(runner)
    scheduler.start()
    try:
        wait_for(lambda: runner.snapshot.collectors["shares"].failures == 1)
        next_run = scheduler.scheduler.get_job("shares").next_run_time.timestamp()
        assert next_run - time.time() > 1.5  # backed off to 2 x the 1 s interval
        wait_for(lambda: runner.snapshot.collectors["users"].runs >= 2)
        assert runner.snapshot.collectors["shares"].failures == 1
    finally:
        scheduler.stop()


def test_while_the_database_is_unreachable_it_is_probed_every_interval_without_backoff(runner):
    """Backoff would hide the recovery: the first run after the database is back would come up
    to 2x, 4x... the interval later."""
    runner, copy = runner
    moved = copy.with_suffix(".moved")
    copy.rename(moved)
    scheduler = Scheduler(runner)
    scheduler.start()
    try:
        wait_for(lambda: runner.snapshot.collectors["users"].failures >= 1)
        assert runner.snapshot.database_up is False
        next_run = scheduler.scheduler.get_job("users").next_run_time.timestamp()
        assert next_run - time.time() <= 1.05  # the 1 s interval (0.01 s jitter), not 2 s
        moved.rename(copy)
        back = time.monotonic()
        wait_for(lambda: runner.snapshot.database_up is True)
        assert time.monotonic() - back < 1.5
        assert runner.snapshot.collectors["users"].state == "ok"
    finally:
        scheduler.stop()


@pytest.fixture
def scheduled_query(tmp_path):
    """A custom query `q` (SQL and timing given) on its own schedule, on a Nextcloud copy."""
    started: list[tuple[Runner, Scheduler]] = []

    def start(**query: str) -> tuple[Runner, Scheduler]:
        copy = tmp_path / "nc.db"
        shutil.copy(NEXTCLOUD_DB, copy)
        runner = Runner(make_config(f"sqlite:///{copy}", "custom", custom_metrics=[{
            "name": "q", **query, "metrics": [{"name": "n", "help": "n."}]}]))
        scheduler = Scheduler(runner)
        started.append((runner, scheduler))
        scheduler.start()
        return runner, scheduler

    yield start
    for runner, scheduler in started:
        scheduler.stop()
        runner.close()


def test_a_cron_schedule_runs_at_its_times_and_once_at_start(scheduled_query):
    runner, scheduler = scheduled_query(sql="SELECT 1 AS n", schedule="0 3 * * *")
    wait_for(lambda: runner.snapshot.collectors["sql:q"].runs == 1)
    next_run = scheduler.scheduler.get_job("sql:q").next_run_time
    assert (next_run.hour, next_run.minute, next_run.second) == (3, 0, 0)
    assert str(next_run.tzinfo) == "UTC"


def test_a_failing_custom_query_backs_off_like_a_collector(scheduled_query):
    runner, scheduler = scheduled_query(sql="SELECT COUNT(*) AS n FROM no_such_table",
                                        interval="1s", timeout="1s", jitter="0.01s")
    wait_for(lambda: runner.snapshot.collectors["sql:q"].failures == 1)
    next_run = scheduler.scheduler.get_job("sql:q").next_run_time.timestamp()
    assert next_run - time.time() > 1.5  # backed off to 2 x the 1 s interval
