"""The history store: daily active users and users by status per calendar day, and the API
audit log, kept in the exporter's own database (a SQLite file by default, PostgreSQL for replicas
sharing it).

Writes are idempotent upserts keyed by (time zone, day, ...), so a restart, a retried run or two
replicas writing the same day never duplicate or lose a row. Active users are stored as 64-bit
keys derived from the user id, so the history holds no user names.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import structlog
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from exporter.config import HistoryConfig
from exporter.db import describe_error

SCHEMA_VERSION = 2
SQLITE_WRITE_WAIT_SECONDS = 30.0
CHECKPOINT_SECONDS = 1.0

log = structlog.get_logger()
metadata = MetaData()
schema = Table("usage_history_schema", metadata, Column("version", Integer, primary_key=True))
active_users = Table(
    "usage_daily_active_users", metadata,
    Column("timezone", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),  # ISO date: sorts and compares as text
    Column("user_key", BigInteger, primary_key=True, autoincrement=False),
)
status_counts = Table(
    "usage_daily_status_counts", metadata,
    Column("timezone", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("status", String(64), primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# Added in version 2: one row per authorized API request.
api_audits = Table(
    "usage_api_audits", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # ISO 8601 UTC with milliseconds, fixed width: sorts and compares as text.
    Column("logged_at", String(24), nullable=False),
    Column("key_name", String(128), nullable=False),
    Column("action", String(256), nullable=False),
    Column("details", Text, nullable=False),  # JSON
    Index("usage_api_audits_logged_at", "logged_at"),
    Index("usage_api_audits_action", "action", "logged_at"),
)
# Built once: every authorized API request runs it.
AUDIT_INSERT = insert(api_audits)


def _add_api_audits(conn: Connection) -> None:
    api_audits.create(conn, checkfirst=True)


# MIGRATIONS[v] upgrades a store from version v to v + 1.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _add_api_audits}


def user_key(user_id: str) -> int:
    """A stable 64-bit key for a user id (signed, to fit BIGINT)."""
    digest = hashlib.blake2b(user_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class AuditRow:
    logged_at: str
    key_name: str
    action: str
    details: str


@dataclass(frozen=True)
class HistoryRows:
    """What one collector run adds: (timezone, day, user_key) activity and
    (timezone, day, status, count) samples (the latest sample of a day wins)."""

    active: tuple[tuple[str, date, int], ...] = ()
    statuses: tuple[tuple[str, date, str, int], ...] = ()


class HistoryError(Exception):
    """The history store cannot be opened or written; the message says why."""


def _commit_without_fsync(dbapi_connection: Any, _record: Any) -> None:
    # Every authorized API request commits an audit row. With a write-ahead log and
    # synchronous=NORMAL a commit is an append to the log instead of an fsync (about 20 ms a
    # request on the benchmark machine): a crash of the process loses nothing, a power cut at
    # most the last commits.
    # A checkpoint (the log copied into the database, with an fsync) would run in whichever
    # commit filled the log: about 20 ms, every 300 or so audit rows, while the other writers
    # wait, the API's slowest percent. HistoryStore._checkpoint_regularly runs them instead.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class HistoryStore:
    def __init__(self, config: HistoryConfig) -> None:
        self.retention_days = config.retention_days
        # SQLite writers take turns: every authorized API call writes an audit row, and under
        # load a turn can take longer than sqlite3's default wait of 5 s, which would refuse it.
        on_sqlite = make_url(config.url).get_backend_name() == "sqlite"
        self.engine: Engine = create_engine(
            config.url, pool_pre_ping=not on_sqlite,  # a file needs no ping; a server may restart
            connect_args={"timeout": SQLITE_WRITE_WAIT_SECONDS} if on_sqlite else {})
        if on_sqlite:
            event.listen(self.engine, "connect", _commit_without_fsync)
        self._audits_pruned_on: str | None = None
        self._closed = threading.Event()
        self._written = threading.Event()
        self._write_turn: AbstractContextManager[Any] = (
            threading.Lock() if on_sqlite else nullcontext())
        self._migrate()
        if on_sqlite:
            threading.Thread(target=self._checkpoint_regularly, name="history-checkpoint",
                             daemon=True).start()

    def _checkpoint_regularly(self) -> None:
        """Each CHECKPOINT_SECONDS after a write: a checkpoint that waits for no reader or
        writer (PASSIVE), so the log stays short without a commit ever running one."""
        while not self._closed.wait(CHECKPOINT_SECONDS):
            if not self._written.is_set():
                continue
            self._written.clear()
            try:
                with self.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
            except SQLAlchemyError as error:  # the writes that follow report the store's state
                log.warning("history_checkpoint_failed", error=describe_error(error))

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """engine.begin(), the write noted for the next checkpoint. On SQLite our writers take
        turns on a lock: one that found the database locked would sleep in SQLite's busy
        handler (1, 2, 5, 10 ms and longer) instead of starting as soon as it is free."""
        with self._write_turn, self.engine.begin() as conn:
            yield conn
        self._written.set()

    def _migrate(self) -> None:
        """Create the tables, or upgrade an older store step by step, or refuse a newer one."""
        schema.create(self.engine, checkfirst=True)
        with self._transaction() as conn:
            if self.engine.dialect.name == "postgresql":
                # Replicas starting together: one migrates, the others then find it done.
                conn.execute(text(f"LOCK TABLE {schema.name} IN EXCLUSIVE MODE"))
            version = conn.execute(select(func.max(schema.c.version))).scalar()
            if version is None:
                metadata.create_all(conn)
            elif version > SCHEMA_VERSION:
                raise HistoryError(f"the history store has schema version {version}, newer than "
                                   f"this exporter's {SCHEMA_VERSION}; upgrade the exporter")
            else:
                for step in range(version, SCHEMA_VERSION):
                    MIGRATIONS[step](conn)
            if version != SCHEMA_VERSION:
                conn.execute(insert(schema).values(version=SCHEMA_VERSION))

    def write(self, rows: HistoryRows, today: date) -> None:
        with self._transaction() as conn:
            if rows.active:
                self._insert_ignoring_duplicates(conn, [
                    {"timezone": tz, "day": day.isoformat(), "user_key": key}
                    for tz, day, key in rows.active])
            if rows.statuses:
                self._upsert_counts(conn, [
                    {"timezone": tz, "day": day.isoformat(), "status": status, "count": count}
                    for tz, day, status, count in rows.statuses])
            oldest = (today - timedelta(days=self.retention_days)).isoformat()
            for table in (active_users, status_counts):
                conn.execute(delete(table).where(table.c.day < oldest))

    def _dialect_insert(self, table: Table) -> sqlite.Insert | postgresql.Insert:
        module = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return module.insert(table)

    def _insert_ignoring_duplicates(self, conn: object, values: list[dict]) -> None:
        conn.execute(self._dialect_insert(active_users).on_conflict_do_nothing(), values)

    def _upsert_counts(self, conn: object, values: list[dict]) -> None:
        statement = self._dialect_insert(status_counts)
        conn.execute(statement.on_conflict_do_update(
            index_elements=["timezone", "day", "status"],
            set_={"count": statement.excluded["count"]}), values)

    # --- reading ---

    def timezones(self) -> list[str]:
        """Zones with any history: a zone may have status counts and no active users yet."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(active_users.c.timezone).union(
                select(status_counts.c.timezone))).scalars())

    def daily_active(self, timezone: str, since: date) -> list[tuple[date, int]]:
        """Distinct active users per day from `since` on, days without activity left out."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(active_users.c.day, func.count())
                .where(active_users.c.timezone == timezone, active_users.c.day >= since.isoformat())
                .group_by(active_users.c.day).order_by(active_users.c.day)).all()
        return [(date.fromisoformat(day), count) for day, count in rows]

    def status_counts(self, timezone: str, since: date) -> dict[str, list[tuple[date, int]]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(status_counts.c.status, status_counts.c.day, status_counts.c.count)
                .where(status_counts.c.timezone == timezone,
                       status_counts.c.day >= since.isoformat())
                .order_by(status_counts.c.status, status_counts.c.day)).all()
        series: dict[str, list[tuple[date, int]]] = {}
        for status, day, count in rows:
            series.setdefault(status, []).append((date.fromisoformat(day), count))
        return series

    # --- the API audit log ---

    def record_audit(self, row: AuditRow) -> None:
        """Add one entry, and drop entries past retention once a day."""
        day = row.logged_at[:10]
        with self._transaction() as conn:
            conn.execute(AUDIT_INSERT, {"logged_at": row.logged_at, "key_name": row.key_name,
                                        "action": row.action, "details": row.details})
            if day != self._audits_pruned_on:
                oldest = date.fromisoformat(day) - timedelta(days=self.retention_days)
                conn.execute(delete(api_audits).where(api_audits.c.logged_at < oldest.isoformat()))
        self._audits_pruned_on = day

    def audits(self, *, action: str | None, start: str | None, end: str | None, limit: int,
               offset: int) -> list[AuditRow]:
        """Entries newest first; start and end are inclusive bounds in the logged_at format."""
        query = select(api_audits.c.logged_at, api_audits.c.key_name, api_audits.c.action,
                       api_audits.c.details)
        if action is not None:
            query = query.where(api_audits.c.action == action)
        if start is not None:
            query = query.where(api_audits.c.logged_at >= start)
        if end is not None:
            query = query.where(api_audits.c.logged_at <= end)
        query = query.order_by(api_audits.c.logged_at.desc(), api_audits.c.id.desc())
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit).offset(offset)).all()
        return [AuditRow(*row) for row in rows]

    def close(self) -> None:
        self._closed.set()
        self.engine.dispose()
