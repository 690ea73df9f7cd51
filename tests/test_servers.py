"""Proof that the test harness works: real servers start, take a full copy of the platform
fixture databases unchanged, enforce select-only roles, and Prometheus scrapes."""

from __future__ import annotations

import datetime as dt
import http.server
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests import servers
from tests.copy_db import copy_tables
from tests.servers import MariaDBServer, PostgresServer, PrometheusFactory

# The server fixtures come from tests/servers.py through conftest.py.

DatabaseServer = PostgresServer | MariaDBServer

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PLATFORM_DBS = {
    "nextcloud": FIXTURES / "nextcloud" / "nextcloud.db",
    "synapse": FIXTURES / "synapse" / "homeserver.db",
}
# Permission-denied codes: PostgreSQL SQLSTATE 42501, MariaDB ER_TABLEACCESS_DENIED_ERROR.
DENIED = {"postgresql": "42501", "mysql": 1142}


@pytest.fixture(scope="module")
def sqlite_copies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Private copies of the fixture databases: nothing may ever write to the originals."""
    missing = [str(p) for p in PLATFORM_DBS.values() if not p.is_file()]
    if missing:
        pytest.fail(f"fixture databases missing: {missing}", pytrace=False)
    target = tmp_path_factory.mktemp("sqlite")
    return {
        name: Path(shutil.copy(path, target / path.name)) for name, path in PLATFORM_DBS.items()
    }


@pytest.fixture(scope="module", params=["postgres", "mariadb"])
def db_server(request: pytest.FixtureRequest) -> DatabaseServer:
    server: DatabaseServer = request.getfixturevalue(f"{request.param}_server")
    return server


def _quote(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _rows(conn: sa.Connection, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    cols = ", ".join(_quote(conn, c) for c in columns)
    rows = conn.exec_driver_sql(f"SELECT {cols} FROM {_quote(conn, table)}").all()
    return sorted((tuple(_plain(v) for v in row) for row in rows), key=repr)


def _plain(value: object) -> object:
    """The SQLite spelling of a value the target returns with a richer type."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return value


@pytest.mark.parametrize("platform", sorted(PLATFORM_DBS))
def test_copy_keeps_every_table_row_and_value(
    db_server: DatabaseServer, sqlite_copies: dict[str, Path], platform: str
) -> None:
    source_url = f"sqlite:///{sqlite_copies[platform]}"
    target_url = db_server.create_database(f"copy_{platform}")
    copy_tables(source_url, target_url)

    source, target = sa.create_engine(source_url), sa.create_engine(target_url)
    try:
        tables = sa.inspect(source).get_table_names()
        assert len(tables) == {"nextcloud": 92, "synapse": 184}[platform]
        assert sorted(sa.inspect(target).get_table_names()) == sorted(tables)
        with source.connect() as src, target.connect() as dst:
            for table in tables:
                count = "SELECT COUNT(*) FROM {}"
                assert (
                    dst.exec_driver_sql(count.format(_quote(dst, table))).scalar()
                    == src.exec_driver_sql(count.format(_quote(src, table))).scalar()
                ), table
                columns = [c["name"] for c in sa.inspect(source).get_columns(table)]
                assert _rows(dst, table, columns) == _rows(src, table, columns), table
            if platform == "nextcloud":
                # Spot check of the types a collector will see (strings stay strings).
                user = dst.exec_driver_sql("SELECT uid, displayname FROM oc_users").first()
                assert user is not None and all(isinstance(v, str | None) for v in user)
        source_inspector, target_inspector = sa.inspect(source), sa.inspect(target)
        for table in tables:
            assert (
                target_inspector.get_pk_constraint(table)["constrained_columns"]
                == source_inspector.get_pk_constraint(table)["constrained_columns"]
            ), table
    finally:
        source.dispose()
        target.dispose()


def test_readonly_url_can_select_but_not_write(
    db_server: DatabaseServer, sqlite_copies: dict[str, Path]
) -> None:
    admin_url = db_server.create_database("readonly_proof")
    copy_tables(f"sqlite:///{sqlite_copies['nextcloud']}", admin_url, ["oc_users"])
    readonly = sa.create_engine(db_server.readonly_url("readonly_proof"))
    try:
        with readonly.connect() as conn:
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM oc_users").scalar() > 0
            code = DENIED[conn.dialect.name]
            for statement in (
                "INSERT INTO oc_users (uid, displayname, password, uid_lower) "
                "VALUES ('intruder', 'x', 'x', 'intruder')",
                "UPDATE oc_users SET displayname = 'x'",
                "DELETE FROM oc_users",
                "CREATE TABLE intruder (id INTEGER)",
            ):
                with pytest.raises(sa.exc.DBAPIError) as denied:
                    conn.exec_driver_sql(statement)
                conn.rollback()
                orig: Any = denied.value.orig
                assert (orig.sqlstate if code == "42501" else orig.args[0]) == code, statement
    finally:
        readonly.dispose()


@pytest.fixture
def metrics_endpoint() -> Iterator[str]:
    """A stand-in exporter on a free port serving one gauge."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"# TYPE harness_probe gauge\nharness_probe 42\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

    server = http.server.ThreadingHTTPServer((servers.HOST, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{servers.HOST}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_prometheus_is_ready_scrapes_and_stops(
    prometheus_server: PrometheusFactory, metrics_endpoint: str
) -> None:
    prom = prometheus_server([metrics_endpoint], scrape_interval="1s")
    servers.wait_for_ready(prom.url, timeout=10)  # start already waited; must stay ready
    check = subprocess.run(
        [servers.promtool_path(), "check", "config", str(prom.config_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr

    # Prometheus hands new targets to the scraper every 5 s, so the first sample takes ~6 s.
    deadline = time.monotonic() + 20
    while not (result := prom.query('harness_probe{job="usage-exporter"}')):
        assert time.monotonic() < deadline, "Prometheus never scraped the endpoint"
        time.sleep(0.2)
    assert result[0]["value"][1] == "42"

    pid, workdir = prom.process.pid, prom.process.workdir
    prom.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not workdir.exists()


def test_missing_binaries_skip_locally_and_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install postgresql\) or run"):
        servers._require(None, "postgresql")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="mariadb-server"):
        servers._require(None, "mariadb-server")
