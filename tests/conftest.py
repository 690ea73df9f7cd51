"""Shared fixtures: the real platform databases (in SQLite, PostgreSQL and MariaDB), their own
answers, and configs pointing at them."""

from __future__ import annotations

import atexit
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collectors import available
from collectors.base import CollectorResult
from exporter.config import Config, parse_config
from exporter.exposition import snapshot_json
from exporter.runner import Runner
from exporter.snapshot import Snapshot
from tests.copy_db import copy_tables
from tests.servers import (  # noqa: F401
    PostgresServer,
    mariadb_server,
    postgres_server,
    prometheus_server,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
NEXTCLOUD = FIXTURES / "nextcloud"
OWNCLOUD = FIXTURES / "owncloud"
SYNAPSE = FIXTURES / "synapse"
SYNAPSE_PG = FIXTURES / "synapse_pg"  # the same Synapse, run on PostgreSQL 15
# SQLite creates side files (-shm) next to a WAL database even when reading it, so tests read
# copies and tests/fixtures/ stays exactly as it is.
_COPIES = Path(tempfile.mkdtemp(prefix="usage-exporter-fixtures-"))
atexit.register(shutil.rmtree, _COPIES, ignore_errors=True)


def fixture_copy(path: Path) -> Path:
    copy = _COPIES / path.parent.name / path.name
    if not copy.exists():
        copy.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, copy)
    return copy


NEXTCLOUD_DB = fixture_copy(NEXTCLOUD / "nextcloud.db")
OWNCLOUD_DB = fixture_copy(OWNCLOUD / "owncloud.db")
API_KEY = "test-key-0123456789abcdef"
BACKENDS = ("sqlite", "postgresql", "mariadb")
SERVER_FIXTURES = {"postgresql": "postgres_server", "mariadb": "mariadb_server"}


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def sqlite_execute(path: Path, *statements: str) -> None:
    """Change a test copy of a database, as a platform would, and close the connection so the
    change is checkpointed into the file itself."""
    db = sqlite3.connect(path)
    try:
        for statement in statements:
            db.execute(statement)
        db.commit()
    finally:
        db.close()


def changed_copy(database: Path, directory: Path, *statements: str) -> str:
    """A private copy of a fixture database with `statements` applied; its SQLAlchemy URL."""
    copy = directory / database.name
    shutil.copyfile(database, copy)
    sqlite_execute(copy, *statements)
    return f"sqlite:///{copy}"


@pytest.fixture(scope="session")
def nextcloud_now() -> int:
    """The instant Nextcloud's answers were captured at: every time window is measured from it."""
    return int(read_json(NEXTCLOUD / "capture_time.json")["captured_at_before"])


@pytest.fixture(scope="session")
def owncloud_now() -> float:
    """The instant ownCloud's metrics app was asked (before the call; its timeStamp is this,
    truncated)."""
    return float(read_json(OWNCLOUD / "capture_time.json")["metrics_api_before"])


def make_config(url: str, platform: str, **sections: Any) -> Config:
    database = {"url": url, "platform": platform, **sections.pop("database", {})}
    history = {"url": f"sqlite:///{tempfile.mkdtemp(dir=_COPIES)}/history.db",
               **sections.pop("history", {})}
    raw = {"database": database, "history": history,
           "api": {"keys": [{"name": "tests", "secret": API_KEY}]}, **sections}
    return parse_config(raw, collector_options={n: c.options for n, c in available().items()})


def run_collector(url: str, platform: str, name: str,
                  **sections: Any) -> tuple[Snapshot, CollectorResult]:
    """One run of collector `name` by a runner of its own: the snapshot and the run's result."""
    runner = Runner(make_config(url, platform, **sections))
    try:
        snapshot = runner.run(name)
    finally:
        runner.close()
    (result,) = snapshot.results()
    return snapshot, result


def collect_json(url: str, platform: str, now: float, **collectors: Any) -> dict[str, Any]:
    """One refresh of every collector as of `now`; every applicable one must succeed."""
    runner = Runner(make_config(url, platform, collectors=collectors), clock=lambda: now)
    try:
        runner.preflight()
        snapshot = runner.run_all()
    finally:
        runner.close()
    assert snapshot.failures == {}
    return snapshot_json(snapshot, users=True)


@pytest.fixture(scope="session")
def server_database(request: pytest.FixtureRequest) -> Callable[[str, str, Path], str]:
    """Load a SQLite database into a fresh database on the named server; returns its URL (on
    backend "sqlite", the file's own)."""
    def load(backend: str, name: str, sqlite_path: Path) -> str:
        if backend == "sqlite":
            return f"sqlite:///{sqlite_path}"
        server = request.getfixturevalue(SERVER_FIXTURES[backend])
        url = server.create_database(name)
        copy_tables(f"sqlite:///{sqlite_path}", url)
        return url
    return load


@pytest.fixture(scope="session", params=BACKENDS)
def nextcloud_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  server_database: Callable[[str, str, Path], str]) -> str:
    """The real Nextcloud fixture database, on each database server we support."""
    return server_database(request.param, "nextcloud", NEXTCLOUD_DB)


@pytest.fixture(scope="session", params=BACKENDS)
def owncloud_url(request: pytest.FixtureRequest,
                 server_database: Callable[[str, str, Path], str]) -> str:
    """The real ownCloud fixture database, on each database server we support."""
    return server_database(request.param, "owncloud", OWNCLOUD_DB)


@pytest.fixture(scope="session")
def synapse_pg_url(request: pytest.FixtureRequest) -> str:
    """The real Synapse PostgreSQL fixture, restored from its pg_dump into a UTF8 database with
    C collation (the cluster's locale), as Synapse requires."""
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.restore_dump("synapse_pg", SYNAPSE_PG / "dump.sql")
