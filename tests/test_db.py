"""The platform database is never written, and a slow statement is cancelled in the database
when the collector's timeout passes."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from exporter.db import Database, DatabaseUnavailable, read_only_url
from exporter.runner import Runner
from tests.conftest import NEXTCLOUD_DB, SERVER_FIXTURES, make_config

SLOW_SQLITE = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
               "SELECT count(*) FROM n")


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sqlite_is_opened_read_only(tmp_path):
    copy = tmp_path / "nc.db"
    shutil.copy(NEXTCLOUD_DB, copy)
    database = Database(make_config(f"sqlite:///{copy}", "nextcloud").database)
    # Two layers: the file opened with mode=ro, and an authorizer refusing the write first.
    assert database.engine.url.query["mode"] == "ro"
    with database.connect(5) as conn, pytest.raises(DBAPIError, match="not authorized"):
        conn.execute(text("DELETE FROM oc_users"))
    database.close()


def test_a_full_refresh_leaves_the_sqlite_file_byte_for_byte_unchanged(tmp_path):
    copy = tmp_path / "nc.db"
    shutil.copy(NEXTCLOUD_DB, copy)
    before = sha256(copy)
    runner = Runner(make_config(f"sqlite:///{copy}", "nextcloud"))
    snapshot = runner.run_all()
    runner.close()
    assert snapshot.ready and snapshot.failures == {}
    assert sha256(copy) == before
    # The database is in WAL mode: readers may create the shared-memory index, never a log entry.
    wal = tmp_path / "nc.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_read_only_url_keeps_other_backends_unchanged():
    url = make_config("postgresql+psycopg://u:p@h/db", "nextcloud").database.sqlalchemy_url()
    assert read_only_url(url) is url


def test_a_slow_sqlite_statement_is_interrupted_at_the_deadline():
    database = Database(make_config(f"sqlite:///{NEXTCLOUD_DB}",
                                    "nextcloud").database)
    started = time.monotonic()
    with database.connect(0.5) as conn, pytest.raises(DBAPIError, match="interrupted"):
        conn.execute(text(SLOW_SQLITE))
    assert time.monotonic() - started < 5
    database.close()


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_slow_server_statement_is_cancelled_in_the_database(backend, request):
    server = request.getfixturevalue(SERVER_FIXTURES[backend])
    url = server.create_database(f"slow_{backend}")
    database = Database(make_config(url, "nextcloud").database)
    sleep = "SELECT pg_sleep(30)" if backend == "postgresql" else "SELECT SLEEP(30)"
    started = time.monotonic()
    with database.connect(0.5) as conn:
        try:
            value = conn.execute(text(sleep)).scalar()
        except DBAPIError:
            value = "cancelled"
    elapsed = time.monotonic() - started
    # MariaDB's SLEEP() returns 1 when killed instead of raising.
    assert value in ("cancelled", 1)
    assert elapsed < 5
    database.close()


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_server_sessions_are_read_only(backend, request):
    server = request.getfixturevalue(SERVER_FIXTURES[backend])
    url = server.create_database(f"ro_{backend}")
    database = Database(make_config(url, "nextcloud").database)
    with database.connect(5) as conn, pytest.raises(DBAPIError, match=r"(?i)read.only"):
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    database.close()


def test_an_unreachable_server_raises_database_unavailable():
    database = Database(make_config("postgresql+psycopg://u:p@127.0.0.1:9/db", "nextcloud")
                        .database)
    with pytest.raises(DatabaseUnavailable, match="OperationalError"), database.connect(1):
        pass


def test_a_sqlite_connection_is_kept_for_the_next_run(tmp_path):
    copy = tmp_path / "nc.db"
    shutil.copy(NEXTCLOUD_DB, copy)
    database = Database(make_config(f"sqlite:///{copy}", "nextcloud").database)
    with database.connect(5) as conn:
        first = conn.connection.dbapi_connection
    with database.connect(5) as conn:
        assert conn.connection.dbapi_connection is first
    database.close()


def test_a_sqlite_file_replaced_on_disk_is_read_anew(tmp_path):
    copy = tmp_path / "nc.db"
    shutil.copy(NEXTCLOUD_DB, copy)
    database = Database(make_config(f"sqlite:///{copy}", "nextcloud").database)
    count = "SELECT count(*) FROM oc_users"
    with database.connect(5) as conn:
        before = conn.execute(text(count)).scalar_one()
    replacement = tmp_path / "restored.db"
    shutil.copy(NEXTCLOUD_DB, replacement)
    with sqlite3.connect(replacement) as writer:
        writer.execute("DELETE FROM oc_users WHERE uid IN (SELECT uid FROM oc_users LIMIT 2)")
    writer.close()
    os.replace(replacement, copy)
    with database.connect(5) as conn:
        assert conn.execute(text(count)).scalar_one() == before - 2
    database.close()


def test_one_watchdog_thread_serves_every_connection(tmp_path):
    def watchdog_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "statement-watchdog"}

    earlier = watchdog_threads()  # other tests' databases may still be open
    database = Database(make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud").database)
    for _ in range(20):
        with database.connect(5) as conn:
            conn.execute(text("SELECT 1"))
    watchdogs = list(watchdog_threads() - earlier)
    assert len(watchdogs) == 1
    database.close()
    watchdogs[0].join(5)
    assert not watchdogs[0].is_alive()
