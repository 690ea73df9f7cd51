"""The history store keeps each day once, however often or by how many replicas it is written,
survives restarts, drops days past retention, refuses a store from a newer version, and records
audit rows from many threads without a commit ever running a checkpoint."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from exporter import history
from exporter.config import HistoryConfig
from exporter.history import AuditRow, HistoryError, HistoryRows, HistoryStore, schema, user_key

TODAY = date(2026, 11, 23)
YESTERDAY = TODAY - timedelta(days=1)


def rows(day: date, *users: str, tz: str = "UTC") -> HistoryRows:
    return HistoryRows(active=tuple((tz, day, user_key(u)) for u in users))


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    return request.getfixturevalue("postgres_server").create_database(
        f"history_{request.node.name.split('[')[0][-30:]}")


def test_writing_the_same_day_twice_counts_each_user_once(history_url):
    store = HistoryStore(HistoryConfig(url=history_url))
    store.write(rows(TODAY, "alice", "bob"), TODAY)
    store.write(rows(TODAY, "bob", "carol"), TODAY)
    assert store.daily_active("UTC", YESTERDAY) == [(TODAY, 3)]
    store.close()


def test_a_restarted_store_still_has_every_day(history_url):
    first = HistoryStore(HistoryConfig(url=history_url))
    first.write(rows(YESTERDAY, "alice"), YESTERDAY)
    first.close()
    second = HistoryStore(HistoryConfig(url=history_url))
    second.write(rows(TODAY, "alice", "bob"), TODAY)
    assert second.daily_active("UTC", YESTERDAY) == [(YESTERDAY, 1), (TODAY, 2)]
    second.close()


def test_two_replicas_writing_the_same_day_agree(history_url):
    one, two = (HistoryStore(HistoryConfig(url=history_url)) for _ in range(2))
    one.write(rows(TODAY, "alice", "bob"), TODAY)
    two.write(rows(TODAY, "bob", "carol"), TODAY)
    one.write(HistoryRows(statuses=(("UTC", TODAY, "enabled", 10),)), TODAY)
    two.write(HistoryRows(statuses=(("UTC", TODAY, "enabled", 11),)), TODAY)
    assert one.daily_active("UTC", TODAY) == two.daily_active("UTC", TODAY) == [(TODAY, 3)]
    assert one.status_counts("UTC", TODAY) == two.status_counts("UTC", TODAY) == {
        "enabled": [(TODAY, 11)]}  # the latest sample of the day wins
    one.close()
    two.close()


def test_time_zones_are_kept_apart(history_url):
    store = HistoryStore(HistoryConfig(url=history_url))
    store.write(rows(TODAY, "alice", tz="UTC"), TODAY)
    store.write(rows(YESTERDAY, "alice", tz="America/New_York"), TODAY)
    assert sorted(store.timezones()) == ["America/New_York", "UTC"]
    assert store.daily_active("America/New_York", YESTERDAY) == [(YESTERDAY, 1)]
    store.close()


def test_a_zone_with_only_status_counts_is_listed(history_url):
    """Users by status are kept for every zone, active users only where someone was active."""
    store = HistoryStore(HistoryConfig(url=history_url))
    store.write(rows(TODAY, "alice", tz="UTC"), TODAY)
    store.write(HistoryRows(statuses=(("Asia/Kolkata", TODAY, "enabled", 2),)), TODAY)
    assert sorted(store.timezones()) == ["Asia/Kolkata", "UTC"]
    store.close()


def test_days_past_retention_are_dropped(tmp_path):
    store = HistoryStore(HistoryConfig(url=f"sqlite:///{tmp_path / 'h.db'}", retention_days=7))
    old = TODAY - timedelta(days=8)
    store.write(rows(old, "alice"), old)
    store.write(HistoryRows(statuses=(("UTC", old, "enabled", 1),)), old)
    store.write(rows(TODAY, "bob"), TODAY)
    assert store.daily_active("UTC", old) == [(TODAY, 1)]
    assert store.status_counts("UTC", old) == {}
    store.close()


def test_a_store_from_a_newer_exporter_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    store = HistoryStore(HistoryConfig(url=url))
    with store.engine.begin() as conn:
        conn.execute(insert(schema).values(version=99))
    store.close()
    with pytest.raises(HistoryError, match="schema version 99, newer than"):
        HistoryStore(HistoryConfig(url=url))


def test_user_keys_are_stable_and_hold_no_names():
    assert user_key("alice") == user_key("alice") != user_key("bob")
    assert -(2**63) <= user_key("alice") < 2**63


def audit_rows_in_database_file(database: Path, copy: Path) -> int:
    """Audit rows in the SQLite file itself, without its write-ahead log: what checkpoints
    have copied there."""
    shutil.copyfile(database, copy)
    with closing(sqlite3.connect(copy)) as connection:
        if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'usage_api_audits'"
                                  ).fetchall():
            return 0  # not even the table has been copied yet
        return int(connection.execute("SELECT count(*) FROM usage_api_audits").fetchone()[0])


def audit(n: int) -> AuditRow:
    return AuditRow(f"2026-11-23T12:00:00.{n % 1000:03d}Z", "tests", "/api/v1/snapshot", "{}")


def test_no_audit_commit_runs_a_checkpoint_and_the_stores_thread_does(tmp_path, monkeypatch):
    """A checkpoint copies the log into the database with an fsync: left to SQLite, it runs
    inside whichever commit fills the log, and that API request waits for it."""
    database = tmp_path / "history.db"
    monkeypatch.setattr(history, "CHECKPOINT_SECONDS", 3600.0)
    store = HistoryStore(HistoryConfig(url=f"sqlite:///{database}"))
    before = audit_rows_in_database_file(database, tmp_path / "copy.db")
    assert before == 0
    for n in range(3000):  # several times SQLite's default checkpoint threshold of 1000 pages
        store.record_audit(audit(n))
    assert audit_rows_in_database_file(database, tmp_path / "copy.db") == before
    store.close()

    monkeypatch.setattr(history, "CHECKPOINT_SECONDS", 0.1)
    store = HistoryStore(HistoryConfig(url=f"sqlite:///{database}"))
    store.record_audit(audit(3000))
    deadline = time.monotonic() + 30
    while audit_rows_in_database_file(database, tmp_path / "copy.db") < 3001:
        assert time.monotonic() < deadline, "the store's thread never checkpointed"
        time.sleep(0.1)
    store.close()


def test_concurrent_audit_writers_each_get_their_row_recorded(history_url):
    store = HistoryStore(HistoryConfig(url=history_url))

    def write(first: int) -> None:
        for n in range(first, first + 50):
            store.record_audit(audit(n))

    threads = [threading.Thread(target=write, args=(50 * t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(store.audits(action=None, start=None, end=None, limit=1000, offset=0)) == 400
    store.close()
