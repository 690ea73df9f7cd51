"""Read-only access to the platform database, with statements cancelled at a deadline.

Read-only is enforced by the database, not just intended: SQLite opens the file with mode=ro
and lets statements only read (an authorizer), every PostgreSQL transaction is started read-only
(and rolled back), MySQL/MariaDB sessions are set read-only each time a connection is taken from
the pool. A config's own SQL is also held to one SELECT statement (exporter.readonly says why
each layer is needed).
A collector's timeout is enforced twice: as the server's own statement timeout, and by a watchdog
that cancels whatever statement is still running when the deadline passes (SQLite's interrupt,
PostgreSQL's cancel request, MySQL's KILL QUERY).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, DisconnectionError, StatementError

from exporter.config import DatabaseConfig
from exporter.log import SECRET_NAME
from exporter.readonly import sqlite_authorizer

log = structlog.get_logger()


class DatabaseUnavailable(Exception):
    """The database could not be reached or refused the login."""


def describe_error(error: BaseException) -> str:
    """One readable line: the driver's own message (or SQLAlchemy's, for a statement it
    refused to send), without SQLAlchemy's background link."""
    if isinstance(error, StatementError) and error.orig is not None:
        error = error.orig
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def shown_url(url: URL) -> str:
    """The URL for a message: its password, and any query value named like a credential
    (?password=..., sslpassword), masked."""
    query = {name: "REDACTED" if SECRET_NAME.search(name) else value
             for name, value in url.query.items()}
    return url.set(query=query).render_as_string(hide_password=True)


def read_only_url(url: URL) -> URL:
    """SQLite: open through a URI with mode=ro, so the file cannot be written even by mistake."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return url
    return url.set(database=f"file:{url.database}", query={**url.query, "mode": "ro",
                                                          "uri": "true"})


class Database:
    def __init__(self, config: DatabaseConfig) -> None:
        source = config.sqlalchemy_url()
        url = read_only_url(source)
        self.backend = url.get_backend_name()
        options: dict[str, Any] = {"pool_pre_ping": True}
        connect_args: dict[str, Any] = {}
        if self.backend == "sqlite":
            # Connections are kept: a new one parses the whole schema before its first
            # statement (~8 ms on Synapse's). One whose file was replaced is not reused.
            options = {}
            connect_args = {"timeout": config.connect_timeout, "check_same_thread": False}
        elif self.backend == "postgresql":
            connect_args = {"connect_timeout": int(config.connect_timeout),
                            "application_name": "usage-exporter",
                            "options": "-c default_transaction_read_only=on"}
        else:
            connect_args = {"connect_timeout": int(config.connect_timeout)}
            options["pool_recycle"] = 3600
        self.engine: Engine = create_engine(url, connect_args=connect_args, **options)
        if self.backend in ("mysql", "mariadb"):
            # Each checkout: a session whose mode a statement changed is not trusted.
            event.listen(self.engine, "checkout", _mysql_read_only)
        if self.backend == "sqlite":
            event.listen(self.engine, "connect", _sqlite_read_only)
        if self.backend == "sqlite" and source.database not in (None, "", ":memory:"):
            _drop_when_replaced(self.engine, str(source.database))
        self._lock = threading.Lock()
        self._running: set[Connection] = set()  # connections in use, for close() to cancel
        self._watchdog = Watchdog(self._cancel)
        self.closed = False

    @contextmanager
    def connect(self, timeout: float) -> Iterator[Connection]:
        """A connection whose statements are cancelled once `timeout` seconds have passed."""
        try:
            conn = self.engine.connect()
        except DBAPIError as error:
            raise DatabaseUnavailable(self._missing_file() or describe_error(error)) from error
        with conn:
            with self._lock:
                if self.closed:
                    raise DatabaseUnavailable("the exporter is stopping")
                self._running.add(conn)
            try:
                self._begin_read_only(conn, timeout)
                self._watchdog.watch(conn, timeout)
                yield conn
            finally:
                self._watchdog.release(conn)
                with self._lock:
                    self._running.discard(conn)
                conn.rollback()

    def _missing_file(self) -> str | None:
        """Why SQLite could not open its file, when the reason is that there is none (SQLite
        only says 'unable to open database file')."""
        path = self.engine.url.database or ""
        path = path.removeprefix("file:")
        if self.backend == "sqlite" and path and not os.path.exists(path):
            return f"no such file: {path}"
        return None

    def close(self) -> None:
        """Cancel the statements still running, refuse new connections, close the pool: whoever
        stops the exporter need not wait for a slow query's timeout."""
        with self._lock:
            self.closed = True
            running = list(self._running)
        for conn in running:
            self._cancel(conn)
        self._watchdog.stop()
        self.engine.dispose()

    def _begin_read_only(self, conn: Connection, timeout: float) -> None:
        """The transaction's read-only mode (PostgreSQL) and the server's statement timeout."""
        if self.backend == "postgresql":
            # The session's default_transaction_read_only is only a default: this one binds.
            conn.execute(text("SET TRANSACTION READ ONLY"))
            conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout * 1000)}"))
        elif self.backend in ("mysql", "mariadb"):
            if conn.dialect.is_mariadb:
                conn.execute(text(f"SET SESSION max_statement_time = {timeout:.3f}"))
            else:
                conn.execute(text(f"SET SESSION max_execution_time = {int(timeout * 1000)}"))

    def _cancel(self, conn: Connection) -> None:
        """Runs on the watchdog thread. The statement may have ended meanwhile (or been stopped by
        the server's own timeout), so a failed cancel is expected and harmless."""
        try:
            raw = conn.connection.dbapi_connection
            if raw is None:
                return
            if self.backend == "sqlite":
                raw.interrupt()
            elif self.backend == "postgresql":
                raw.cancel_safe()
            else:
                with self.engine.connect() as killer:
                    killer.execute(text(f"KILL QUERY {int(raw.thread_id())}"))
        except Exception as error:
            log.debug("cancel_failed", error=describe_error(error))


class Watchdog:
    """Cancels each watched connection's statement once its deadline passes: one thread for
    all of them, started on first use (a thread per connection costs ~1 ms an API call)."""

    def __init__(self, cancel: Callable[[Connection], None]) -> None:
        self._cancel = cancel
        self._changed = threading.Condition()
        self._deadlines: dict[Connection, float] = {}
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._wakes_at = math.inf

    def watch(self, conn: Connection, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            self._deadlines[conn] = deadline
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name="statement-watchdog",
                                                daemon=True)
                self._thread.start()
            # Woken only for a deadline before the one it waits for: API reads, each with the
            # same timeout, then do not wake it (and take the GIL from requests) every time.
            if deadline < self._wakes_at:
                self._changed.notify()

    def release(self, conn: Connection) -> None:
        with self._changed:
            self._deadlines.pop(conn, None)

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [conn for conn, deadline in self._deadlines.items() if deadline <= now]
                for conn in due:
                    del self._deadlines[conn]
                if not due:
                    if self._stopped:
                        return
                    self._wakes_at = min(self._deadlines.values(), default=now + 60)
                    self._changed.wait(self._wakes_at - now)
                    continue
                self._wakes_at = now  # busy cancelling: it looks at the deadlines again next
            for conn in due:  # outside the lock: a cancel may take a round trip
                self._cancel(conn)


def _mysql_read_only(dbapi_connection: Any, *_pool_records: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION READ ONLY")


def _sqlite_read_only(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.set_authorizer(sqlite_authorizer)


def _drop_when_replaced(engine: Engine, path: str) -> None:
    """A kept SQLite connection reads the file it opened, even after a restore or a copy
    replaced it on disk: such a connection is discarded at checkout and a new one opened."""

    def identity() -> tuple[int, int] | None:
        try:
            found = os.stat(path)
        except OSError:
            return None
        return found.st_dev, found.st_ino

    def opened(_dbapi_connection: Any, record: Any) -> None:
        record.info["file"] = identity()

    def checkout(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("file") != identity():
            raise DisconnectionError(f"{path} was replaced")

    event.listen(engine, "connect", opened)
    event.listen(engine, "checkout", checkout)
