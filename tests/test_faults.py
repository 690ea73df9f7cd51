"""Faults while the daemon runs: a database server that goes away and comes back, a query stuck
behind a lock, a SQLite file locked or replaced, a history store killed mid-write, corrupt or
unwritable. The real daemon runs as a subprocess against real servers; each fault is real."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import API_KEY, NEXTCLOUD_DB, sqlite_execute
from tests.copy_db import copy_tables
from tests.daemon_process import DaemonProcess, collectors, config_yaml, wait_until
from tests.servers import start_mariadb, start_postgres

# --- PostgreSQL and MariaDB ------------------------------------------------------------------


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def own_server(request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    """A server for this module alone, since its tests stop it, with the Nextcloud fixture loaded;
    and the URL of a user that may only read it (the exporter's)."""
    server = start_postgres() if request.param == "postgresql" else start_mariadb()
    try:
        copy_tables(f"sqlite:///{NEXTCLOUD_DB}", server.create_database("nextcloud"))
        yield server, server.readonly_url("nextcloud")
    finally:
        server.stop()


def nextcloud_on(url: str, directory: Path, **collector_settings: Any) -> dict[str, Any]:
    return config_yaml({"url": url, "platform": "nextcloud"}, directory,
                       collectors=collectors(**collector_settings))


def applicable(daemon: DaemonProcess) -> tuple[str, ...]:
    return tuple(daemon.events("listening")[0]["collectors"])


def test_a_stopped_database_server_leaves_the_last_values_and_is_used_again_once_back(
        own_server, tmp_path, nextcloud_now):
    server, url = own_server
    daemon = DaemonProcess(tmp_path, nextcloud_on(url, tmp_path), as_of=nextcloud_now)
    with daemon.start():
        names = applicable(daemon)
        wait_until(lambda: daemon.all_succeeded(names), what="a first good run of each")
        before = daemon.values()
        pid = daemon.process.pid
        with server.stopped():
            wait_until(lambda: all(daemon.collector_metric("failures_total", name) >= 2
                                   for name in names), 60, "two failed runs of each collector")
            during = daemon.metrics()
            healthy = daemon.get("/-/healthy")[0]
        wait_until(lambda: daemon.all_succeeded(names), 60, "a good run of each, server back")
        after = daemon.metrics()
        assert daemon.running() and daemon.process.pid == pid
    assert healthy == 200
    assert during["usage_database_up"] == 0
    assert {name: during[f'usage_collector_success{{collector="{name}"}}'] for name in names} \
        == dict.fromkeys(names, 0)
    assert {k: v for k, v in during.items() if k in before} == before
    assert after["usage_database_up"] == 1
    assert {k: v for k, v in after.items() if k in before} == before
    errors = {event["error"] for event in daemon.events("collector_failed")}
    assert errors and all(error.startswith("OperationalError: ") for error in errors), errors
    # Each collector says once that it works again, and after how many failed runs.
    recovered = {event["collector"]: event["failed_runs"]
                 for event in daemon.events("collector_recovered")}
    assert sorted(recovered) == sorted(names)
    assert all(runs >= 2 for runs in recovered.values()), recovered
    assert make_url(url).password not in daemon.log_text()
    assert "Traceback" not in daemon.log_text()


@contextmanager
def table_locked(server: Any, table: str) -> Iterator[None]:
    """Another session holds a lock on `table` that keeps every reader of it waiting."""
    engine = create_engine(server.admin_url("nextcloud"))
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
                yield
                conn.rollback()
            else:
                conn.execute(text(f"LOCK TABLES {table} WRITE"))
                yield
                conn.execute(text("UNLOCK TABLES"))
    finally:
        engine.dispose()


def running_queries(server: Any, url: str) -> Callable[[], int]:
    """How many statements the exporter's database user has running right now."""
    user = make_url(url).username
    sql = ("SELECT count(*) FROM pg_stat_activity WHERE usename = :user AND state = 'active'"
           if url.startswith("postgresql") else
           "SELECT count(*) FROM information_schema.PROCESSLIST WHERE USER = :user "
           "AND COMMAND = 'Query'")
    engine = create_engine(server.admin_url("nextcloud"))

    def count() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text(sql), {"user": user}).scalar_one())

    return count


def test_a_query_stuck_past_its_timeout_is_cancelled_in_the_database_and_others_run_on(
        own_server, tmp_path, nextcloud_now):
    server, url = own_server
    config = nextcloud_on(url, tmp_path, only=("users", "shares"),
                          shares={"interval": "3s", "timeout": "2s"})
    running = running_queries(server, url)
    with DaemonProcess(tmp_path, config, as_of=nextcloud_now).start() as daemon:
        wait_until(lambda: daemon.all_succeeded(("users", "shares")))
        with table_locked(server, "oc_share"):
            wait_until(running, 30, "the shares query to wait for the lock")
            users_runs = daemon.collector_metric("runs_total", "users")
            # The functional bound: the 2 s timeout, plus a generous margin for a busy machine.
            wait_until(lambda: running() == 0, 2 + 5, "the database to cancel the query")
            failure = daemon.wait_for_event("collector_failed", collector="shares")
            wait_until(lambda: daemon.collector_metric("runs_total", "users") >= users_runs + 2,
                       30, "two more runs of users while shares is stuck")
            stuck = daemon.metrics()
        wait_until(lambda: daemon.all_succeeded(("shares",)), 60, "shares to run again")
    assert failure["error"].startswith("timed out after 2s: ")
    assert stuck['usage_collector_success{collector="shares"}'] == 0
    assert stuck['usage_collector_success{collector="users"}'] == 1
    assert stuck["usage_database_up"] == 1


# --- SQLite ----------------------------------------------------------------------------------


def test_a_locked_or_replaced_sqlite_file_fails_clearly_then_recovers(tmp_path, nextcloud_now):
    database = tmp_path / "nextcloud.db"
    shutil.copy(NEXTCLOUD_DB, database)
    # A rollback journal, as many installations keep it: there a writer's lock stops readers.
    sqlite_execute(database, "PRAGMA journal_mode = DELETE")
    enabled = 'usage_users{status="enabled"}'
    config = config_yaml({"url": f"sqlite:///{database}", "platform": "nextcloud",
                          "connect_timeout": "0.5s"}, tmp_path,
                         collectors=collectors(only=("users",)))
    with DaemonProcess(tmp_path, config, as_of=nextcloud_now).start() as daemon:
        wait_until(lambda: daemon.all_succeeded(("users",)))
        users = daemon.values()[enabled]

        writer = sqlite3.connect(database, isolation_level=None)
        writer.execute("BEGIN EXCLUSIVE")
        locked = daemon.wait_for_event("collector_failed", collector="users")
        locked_values = daemon.values()
        writer.execute("COMMIT")
        writer.close()
        wait_until(lambda: daemon.all_succeeded(("users",)), 60, "a good run after the lock")

        garbage = tmp_path / "garbage.db"
        garbage.write_bytes(os.urandom(64 * 1024))
        os.replace(garbage, database)
        replaced = daemon.wait_for_event("collector_failed", count=2, collector="users")

        fixed = tmp_path / "fixed.db"
        shutil.copy(NEXTCLOUD_DB, fixed)
        sqlite_execute(fixed, "PRAGMA journal_mode = DELETE",
                       "DELETE FROM oc_users WHERE uid = 'victor'")
        os.replace(fixed, database)
        wait_until(lambda: daemon.values()[enabled] == users - 1, 60,
                   "the values of the new file")
    assert locked["error"] == "OperationalError: database is locked"
    assert locked_values[enabled] == users
    assert replaced["error"] == "DatabaseError: file is not a database"


# --- the history store -----------------------------------------------------------------------


def history_dates(daemon: DaemonProcess) -> dict[str, int]:
    entries = daemon.api("/api/v1/history/dau?days=30")["entries"]
    dates = [entry["date"] for entry in entries]
    assert len(dates) == len(set(dates)), f"a day listed twice: {dates}"
    return {entry["date"]: entry["amount"] for entry in entries}


def history_is(daemon: DaemonProcess, expected: dict[str, int]) -> bool:
    return history_dates(daemon) == expected


def visits_config(platform: Path, directory: Path) -> dict[str, Any]:
    return config_yaml({"url": f"sqlite:///{platform}", "platform": "custom",
                        "relations": {"activity": "SELECT user_id, last_active FROM visits"}},
                       directory, collectors=collectors("10s", "10s", only=("dau",)))


def writing(history: Path) -> bool:
    """Whether a connection holds the write lock of the SQLite file `history` right now."""
    if not history.exists():
        return False
    probe = sqlite3.connect(history, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as error:
        assert str(error) == "database is locked", error
        return True
    finally:
        probe.close()


def committed_users(history: Path, day: str) -> int:
    with sqlite3.connect(history) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        count = (db.execute("SELECT count(*) FROM usage_daily_active_users WHERE day = ?",
                            (day,)).fetchone()[0] if "usage_daily_active_users" in tables else 0)
    db.close()
    return count


def test_killing_the_daemon_during_history_writes_loses_or_doubles_no_acknowledged_day(
        tmp_path):
    platform = tmp_path / "app.db"
    history = tmp_path / "history.db"
    sqlite_execute(platform, "CREATE TABLE visits (user_id TEXT, last_active INTEGER)")
    first_day = datetime(2026, 11, 1, 12, tzinfo=UTC)
    expected: dict[str, int] = {}
    interrupted = 0
    for step in range(4):
        # Two days, two batches of new users each; every batch makes a write of 20000 rows,
        # long enough to be killed in.
        now = first_day + timedelta(days=step // 2)
        db = sqlite3.connect(platform)
        db.executemany("INSERT INTO visits VALUES (?, ?)",
                       ((f"step{step}-user{i}", int(now.timestamp()) - 60) for i in range(20000)))
        db.commit()
        db.close()
        today = now.date().isoformat()
        expected[today] = expected.get(today, 0) + 20000
        daemon = DaemonProcess(tmp_path, visits_config(platform, tmp_path), as_of=now.timestamp())
        daemon.start(ready=False)
        try:
            wait_until(partial(writing, history), 30, "a write to the history store")
        finally:
            daemon.kill()
        interrupted += committed_users(history, today) < expected[today]
        # Restarted, it finishes the interrupted write; every day acknowledged before is intact.
        daemon.start()
        try:
            wait_until(partial(history_is, daemon, expected), 60, f"the history to be {expected}")
        finally:
            daemon.kill()
    with daemon.start():
        assert history_dates(daemon) == expected
    assert interrupted >= 1  # at least one kill did land inside a write
    with sqlite3.connect(history) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()


def custom_with_past_days(directory: Path, now: datetime) -> tuple[dict[str, Any], dict]:
    """A custom platform that keeps exact past days: `k` users active `k` days ago (k = 3..9),
    so a first run reads them back. Returns the database section and those days."""
    database = directory / "app.db"
    sqlite_execute(database, "CREATE TABLE accounts (id TEXT, last_active INTEGER)",
                   "CREATE TABLE visits (user_id TEXT, day INTEGER)")
    days = {}
    db = sqlite3.connect(database)
    for back in range(3, 10):
        day = datetime.combine((now - timedelta(days=back)).date(), datetime.min.time(), UTC)
        days[day.date().isoformat()] = back
        db.executemany("INSERT INTO visits VALUES (?, ?)",
                       ((f"user{i}", int(day.timestamp())) for i in range(back)))
    db.executemany("INSERT INTO accounts VALUES (?, ?)",
                   ((f"user{i}", int(now.timestamp()) - 60) for i in range(12)))
    db.commit()
    db.close()
    return {
        "url": f"sqlite:///{database}", "platform": "custom",
        "relations": {
            "users": "SELECT id AS user_id, id AS display_name, 'local' AS backend, "
                     "'enabled' AS status, 0 AS is_admin, 0 AS created_at, "
                     "last_active AS last_login FROM accounts",
            "activity": "SELECT id AS user_id, last_active FROM accounts",
            "daily_activity": "SELECT user_id, day FROM visits",
        },
    }, days


def test_a_corrupt_history_file_fails_only_the_dau_collector_and_loses_no_past_day(tmp_path):
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    database, past_days = custom_with_past_days(tmp_path, now)
    history = tmp_path / "history.db"
    history.write_bytes(b"this is not a database, " * 4096)
    config = config_yaml(database, tmp_path, collectors=collectors(only=("users", "dau")))
    with DaemonProcess(tmp_path, config, as_of=now.timestamp()).start() as daemon:
        failure = daemon.wait_for_event("collector_failed", collector="dau")
        metrics = daemon.metrics()
        status, body = daemon.get("/api/v1/history/dau", API_KEY)
        history.rename(tmp_path / "history.db.corrupt")  # what an operator would do
        wait_until(lambda: daemon.all_succeeded(("dau",)), 60, "dau to run on a new store")
        recorded = history_dates(daemon)
    assert failure["error"] == (f"history store sqlite:///{history}: "
                                "DatabaseError: file is not a database")
    assert metrics['usage_collector_success{collector="dau"}'] == 0
    assert metrics['usage_collector_success{collector="users"}'] == 1
    assert metrics['usage_users{status="enabled"}'] == 12
    assert status == 503 and b"Traceback" not in body
    assert {day: recorded[day] for day in past_days} == past_days


@contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """`path` cannot be opened for writing; for root, who ignores file modes, by the immutable
    attribute."""
    as_root = os.geteuid() == 0
    if as_root:
        subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
    else:
        path.chmod(0o444)
    try:
        yield
    finally:
        if as_root:
            subprocess.run(["chattr", "-i", str(path)], check=True, capture_output=True)
        else:
            path.chmod(0o644)


def test_an_unwritable_history_file_fails_the_dau_collector_until_it_is_writable(
        tmp_path, nextcloud_now):
    database = tmp_path / "nextcloud.db"
    shutil.copy(NEXTCLOUD_DB, database)
    history = tmp_path / "history.db"
    config = config_yaml({"url": f"sqlite:///{database}", "platform": "nextcloud"}, tmp_path,
                         collectors=collectors(only=("users", "dau")))
    with DaemonProcess(tmp_path, config, as_of=nextcloud_now).start() as daemon:
        wait_until(lambda: daemon.all_succeeded(("dau",)), what="a history to exist")
    with daemon:
        with unwritable(history):
            daemon.start()
            failure = daemon.wait_for_event("collector_failed", collector="dau")
            metrics = daemon.metrics()
        wait_until(lambda: daemon.all_succeeded(("dau",)), 60, "dau to write again")
    assert failure["error"].startswith(f"history store sqlite:///{history}: OperationalError: ")
    assert metrics['usage_collector_success{collector="dau"}'] == 0
    assert metrics['usage_collector_success{collector="users"}'] == 1
    assert "Traceback" not in daemon.log_text()
