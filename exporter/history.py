"""The history store: daily active users and users by status per calendar day, kept in the
exporter's own database (a SQLite file by default, PostgreSQL for replicas sharing it).

Writes are idempotent upserts keyed by (time zone, day, ...), so a restart, a retried run or two
replicas writing the same day never duplicate or lose a row. Active users are stored as 64-bit
keys derived from the user id, so the history holds no user names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from exporter.config import HistoryConfig

SCHEMA_VERSION = 1
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


def user_key(user_id: str) -> int:
    """A stable 64-bit key for a user id (signed, to fit BIGINT)."""
    digest = hashlib.blake2b(user_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class HistoryRows:
    """What one collector run adds: (timezone, day, user_key) activity and
    (timezone, day, status, count) samples (the latest sample of a day wins)."""

    active: tuple[tuple[str, date, int], ...] = ()
    statuses: tuple[tuple[str, date, str, int], ...] = ()


class HistoryError(Exception):
    """The history store cannot be opened or written; the message says why."""


class HistoryStore:
    def __init__(self, config: HistoryConfig) -> None:
        self.retention_days = config.retention_days
        self.engine: Engine = create_engine(config.url, pool_pre_ping=True)
        self._migrate()

    def _migrate(self) -> None:
        """Create the tables, or check that an existing store is one this version can use."""
        metadata.create_all(self.engine)
        with self.engine.begin() as conn:
            version = conn.execute(select(func.max(schema.c.version))).scalar()
            if version is None:
                conn.execute(insert(schema).values(version=SCHEMA_VERSION))
            elif version > SCHEMA_VERSION:
                raise HistoryError(f"the history store has schema version {version}, newer than "
                                   f"this exporter's {SCHEMA_VERSION}; upgrade the exporter")

    def write(self, rows: HistoryRows, today: date) -> None:
        with self.engine.begin() as conn:
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
        with self.engine.connect() as conn:
            return list(conn.execute(select(active_users.c.timezone).distinct()).scalars())

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

    def close(self) -> None:
        self.engine.dispose()
