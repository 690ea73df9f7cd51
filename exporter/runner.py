"""Runs collectors against the platform database and records their results in the store."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import partial
from typing import TypeVar

import structlog
from sqlalchemy import Connection, Subquery, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

from collectors import available
from collectors.base import Collector, Source
from collectors.sql import QueryCollector, QueryResultError
from exporter.api.paging import prepare_first_page
from exporter.config import Config
from exporter.db import Database, DatabaseUnavailable, describe_error, shown_url
from exporter.exposition import render
from exporter.history import HistoryError, HistoryRows, HistoryStore
from exporter.log import debug_enabled
from exporter.memory import cycle_collection_paused, release_free_memory
from exporter.platforms import Profile, profile_for
from exporter.relations import RELATIONS
from exporter.runtime import RuntimeMetrics
from exporter.snapshot import Snapshot, SnapshotStore

log = structlog.get_logger()
T = TypeVar("T")


class StartupError(Exception):
    """The exporter cannot start: the message says why, in one line."""


def inapplicable(profile: Profile,
                 collectors: Mapping[str, Collector | type[Collector]]) -> dict[str, str]:
    """The collectors (by name) that `profile` lacks a relation for, with the reason."""
    provided = profile.provides()
    reasons = {}
    for name, collector in collectors.items():
        missing = set(collector.relations) - provided
        if missing:
            reasons[name] = f"{profile.name} has no {', '.join(sorted(missing))}"
    return reasons


class Runner:
    def __init__(self, config: Config, clock: Callable[[], float] = time.time, *,
                 keep_history: bool = True, runtime: RuntimeMetrics | None = None) -> None:
        """`runtime`: the process metrics to serve with the snapshot (the daemon's)."""
        self.config = config
        self.clock = clock
        self.keep_history = keep_history
        self.profile = profile_for(config.database)
        self.database = Database(config.database)
        self._history: HistoryStore | None = None
        # The relations API reads use: the last run's, and others built at the first read.
        self._read_relations: dict[str, Subquery] = {}
        classes = available()
        self.collectors: dict[str, Collector] = {
            c.name: classes[c.name](c) for c in config.enabled_collectors}
        # Custom SQL metrics are collectors too, named sql:<query>.
        self.collectors.update((q.collector, QueryCollector(q)) for q in config.custom_metrics)
        limit = config.per_user_metrics.limit if config.per_user_metrics.enabled else 0
        self.store = SnapshotStore(self.profile.name, list(self.collectors),
                                   partial(render, per_user_limit=limit), runtime,
                                   prepare=prepare_first_page)
        for name, reason in inapplicable(self.profile, self.collectors).items():
            self.store.mark_not_applicable(name, reason)

    @property
    def snapshot(self) -> Snapshot:
        return self.store.current

    def applicable(self) -> list[str]:
        return [name for name, status in self.snapshot.collectors.items()
                if status.state != "not_applicable"]

    def preflight(self) -> None:
        """Connect once and check that every relation the collectors need can be read, so a
        wrong URL or a missing table stops the daemon at start-up with one clear message."""
        needed = {r for name in self.applicable() for r in self._relations(self.collectors[name])}
        prefix = (f" (table prefix {self.config.database.table_prefix!r})"
                  if self.profile.uses_table_prefix else "")
        try:
            with self.database.connect(self.config.database.connect_timeout * 3) as conn:
                for relation in sorted(needed):
                    self._check_relation(conn, relation, prefix)
            for name in self.applicable():
                collector = self.collectors[name]
                if isinstance(collector, QueryCollector):
                    self._check_query(collector)
        except DatabaseUnavailable as error:
            where = shown_url(self.config.database.sqlalchemy_url())
            raise StartupError(f"cannot connect to the {self.profile.name} database {where}: "
                               f"{error}") from None

    def _check_relation(self, conn: Connection, relation: str, prefix: str) -> None:
        try:
            query = self.profile.relation(relation, conn).subquery()
            found = conn.execute(select(text("*")).select_from(query).limit(0)).keys()
        except DBAPIError as error:
            raise StartupError(f"the database does not look like {self.profile.name}{prefix}: "
                               f"relation {relation}: {describe_error(error)}") from None
        missing = [c for c in RELATIONS[relation] if c not in found]
        if missing:
            raise StartupError(f"relation {relation} has no column {', '.join(missing)}")

    def _check_query(self, collector: QueryCollector) -> None:
        """Read a custom query's columns (LIMIT 0, under its own timeout), ours or a
        query-exporter file's alike: a typo stops the daemon at start-up with the YAML path, not
        at the first scheduled run."""
        spec = collector.spec
        try:
            with self.database.connect(spec.timeout) as conn:
                keys = collector.columns(conn)
            collector.check_columns(keys)
        except StatementError as error:  # the database's refusal, or a parameter left unbound
            raise StartupError(f"{spec.path}.sql: {describe_error(error)}") from None
        except QueryResultError as error:
            raise StartupError(str(error)) from None

    def run(self, name: str) -> Snapshot:
        """One run of one collector: record the result, or the failure with the old values kept."""
        collector = self.collectors[name]
        timeout = collector.config.timeout
        started = time.monotonic()
        now = self.clock()
        try:
            with self.database.connect(timeout) as conn:
                relations = {r: self._relation(r, conn) for r in self._relations(collector)}
                with cycle_collection_paused():
                    result = collector.collect(Source(
                        conn, relations, now, self.config.database,
                        inclusive_windows=self.profile.activity_window_inclusive,
                        activity_is_last_login=self.profile.activity_is_last_login))
                version = self.profile.version(conn)
            if time.monotonic() - started >= timeout:
                # The watchdog cancelled a statement, which may still have answered (MariaDB's
                # SLEEP() and BENCHMARK() return a value when killed): nothing of it is used.
                raise TimeoutError("the run outlived its timeout; its result is discarded")
            if result.history is not None and self.keep_history:
                self._write_history(result.history, datetime.fromtimestamp(now, UTC).date())
        except DatabaseUnavailable as error:
            return self._failed(name, str(error), started, database_up=False, error=error)
        except HistoryError as error:
            return self._failed(name, str(error), started, database_up=True, error=error)
        except Exception as error:
            return self._failed(name, describe_error(error), started, database_up=True,
                                error=error)
        collector.recorded()
        duration = time.monotonic() - started
        log.debug("collector_succeeded", collector=name, duration_seconds=round(duration, 4))
        snapshot = self.store.record_success(name, result, duration, platform_version=version)
        # API reads use this run's relations (as fresh as the snapshot); others are built anew.
        self._read_relations = relations
        release_free_memory()  # what the run read and the result it replaced
        return snapshot

    def read(self, relations: Sequence[str],
             query: Callable[[Connection, Mapping[str, Subquery]], T],
             timeout: float = 30.0) -> T:
        """Run `query` on a read-only connection with the named relations, for API questions a
        snapshot cannot answer. The relations are the same objects from one collector run to
        the next, so statements built on them can be kept. Raises DatabaseUnavailable or the
        driver's error."""
        with self.database.connect(timeout) as conn:
            built = self._read_relations
            for name in relations:
                if name not in built:  # racing readers may both build it: either one will do
                    built[name] = self._relation(name, conn)
            return query(conn, {name: built[name] for name in relations})

    def _relation(self, name: str, conn: Connection) -> Subquery:
        return self.profile.relation(name, conn).subquery(name)

    def history(self) -> HistoryStore:
        """The history store, opened on first use and again after it failed."""
        if self._history is None:
            try:
                self._history = HistoryStore(self.config.history)
            except (HistoryError, SQLAlchemyError) as error:
                raise self._history_error(error) from None
        return self._history

    def _write_history(self, rows: HistoryRows, today: date) -> None:
        store = self.history()
        try:
            store.write(rows, today)
        except SQLAlchemyError as error:
            # Reopen on the next run: a connection that saw the failure is not reused.
            store.close()
            self._history = None
            raise self._history_error(error) from None

    def _history_error(self, error: Exception) -> HistoryError:
        """The failure with the store's location, so it is not taken for the platform's."""
        where = shown_url(make_url(self.config.history.url))
        return HistoryError(f"history store {where}: {describe_error(error)}")

    def run_all(self) -> Snapshot:
        for name in self.applicable():
            self.run(name)
        return self.snapshot

    def close(self) -> None:
        """Cancel the queries still running and release every connection; a run started after
        this ends at once."""
        self.database.close()
        if self._history is not None:
            self._history.close()

    def _relations(self, collector: Collector) -> list[str]:
        provided = self.profile.provides()
        return [r for r in (*collector.relations, *collector.optional_relations) if r in provided]

    def _failed(self, name: str, message: str, started: float, *, database_up: bool,
                error: Exception) -> Snapshot:
        if self.database.closed:
            # Cancelled by close(): nothing failed, and this runner's results are done with.
            log.info("collector_cancelled", collector=name)
            return self.snapshot
        duration = time.monotonic() - started
        if duration >= self.collectors[name].config.timeout:
            message = f"timed out after {self.collectors[name].config.timeout:g}s: {message}"
        log.error("collector_failed", collector=name, error=message,
                  duration_seconds=round(duration, 4),
                  exc_info=error if debug_enabled() else None)
        return self.store.record_failure(name, message, duration, database_up=database_up)
