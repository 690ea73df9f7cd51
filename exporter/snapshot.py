"""The snapshot store: the latest result of every collector, swapped in atomically.

Each change builds a new immutable Snapshot, renders its exposition bodies once, and publishes it
by assigning one attribute. Readers (scrapes, API calls) take that reference and never lock.
A failed run keeps the collector's previous result; only its status changes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from collectors.base import CollectorResult
from exporter.usercolumns import batched, user_ids, user_rows

if TYPE_CHECKING:
    from exporter.runtime import RuntimeMetrics  # it renders into this module's Bodies

State = Literal["pending", "ok", "failed", "not_applicable"]


@dataclass(frozen=True)
class CollectorStatus:
    name: str
    state: State = "pending"
    result: CollectorResult | None = None  # the last good result, kept through failures
    duration_seconds: float = 0.0
    last_success: float | None = None
    last_error: str | None = None
    runs: int = 0
    failures: int = 0
    consecutive_failures: int = 0


@dataclass(frozen=True)
class Bodies:
    """The /metrics body in each format, plain and gzipped."""

    text: bytes = b""
    text_gzip: bytes = b""
    openmetrics: bytes = b""
    openmetrics_gzip: bytes = b""


@dataclass(frozen=True)
class Snapshot:
    platform: str
    collectors: Mapping[str, CollectorStatus]
    platform_version: str = ""
    database_up: bool | None = None
    bodies: Bodies = field(default_factory=Bodies)
    # Values derived from this snapshot on first use (user orders for paging): see memo.
    _memo: dict[Any, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def memo(self, key: Any, build: Callable[[], Any]) -> Any:
        """build() once per snapshot and key; a new snapshot starts empty, so nothing is stale.
        Two threads may both build at first; either result is the same."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    @property
    def failures(self) -> dict[str, str | None]:
        """Collectors whose last run failed, with their error."""
        return {s.name: s.last_error for s in self.collectors.values() if s.state == "failed"}

    @property
    def ready(self) -> bool:
        """Every collector has a first result (a run that wrote history counts once written)."""
        return all(s.state != "pending" for s in self.collectors.values())

    def has_succeeded(self, name: str) -> bool:
        """Whether collector `name` has had a successful run; for one that writes history, the
        runner records the success only once the history is written."""
        status = self.collectors.get(name)
        return status is not None and status.last_success is not None

    def results(self) -> Iterator[CollectorResult]:
        for status in self.collectors.values():
            if status.result is not None:
                yield status.result

    def user_columns(self) -> dict[str, Mapping[str, Any]]:
        columns: dict[str, Mapping[str, Any]] = {}
        for result in self.results():
            columns.update(result.users)
        return columns

    def user_rows(self) -> Iterator[dict[str, Any]]:
        """One row per user id known to any collector, every column present (None if unknown)."""
        columns = self.user_columns()
        for ids in batched(user_ids(columns.values())):
            yield from user_rows(ids, columns)


class SnapshotStore:
    """`served` is what /metrics sends: the current snapshot's bodies, with `runtime`'s metrics
    (the process's own, see exporter.runtime) appended when given."""

    def __init__(self, platform: str, collector_names: list[str],
                 render: Callable[[Snapshot], Bodies],
                 runtime: RuntimeMetrics | None = None,
                 prepare: Callable[[Snapshot], None] | None = None) -> None:
        """`prepare`: called with each snapshot before it is published, to fill its memo with
        what the API would otherwise build at its first call."""
        self._lock = threading.Lock()
        self._render = render
        self._prepare = prepare
        self._runtime = runtime
        self.current = self._publish(Snapshot(
            platform=platform,
            collectors={name: CollectorStatus(name) for name in collector_names}))

    def _publish(self, snapshot: Snapshot) -> Snapshot:
        snapshot = replace(snapshot, bodies=self._render(snapshot))
        if self._prepare is not None:
            self._prepare(snapshot)
        self.current = snapshot
        self.served = snapshot.bodies if self._runtime is None else \
            self._runtime.appended(snapshot.bodies)
        return snapshot

    def refresh_runtime(self) -> None:
        """Read the runtime metrics again and serve them with the current snapshot."""
        if self._runtime is not None:
            self._runtime.refresh()
            with self._lock:
                self.served = self._runtime.appended(self.current.bodies)

    def _update(self, name: str, **changes: Any) -> Snapshot:
        database_up = changes.pop("database_up", None)
        version = changes.pop("platform_version", None)
        with self._lock:
            snapshot = self.current
            status = replace(snapshot.collectors[name], **changes)
            snapshot = replace(
                snapshot, collectors={**snapshot.collectors, name: status},
                database_up=snapshot.database_up if database_up is None else database_up,
                platform_version=version or snapshot.platform_version)
            return self._publish(snapshot)

    def record_success(self, name: str, result: CollectorResult, duration: float,
                       platform_version: str | None = None) -> Snapshot:
        status = self.current.collectors[name]
        return self._update(name, state="ok", result=result, duration_seconds=duration,
                            last_success=time.time(), last_error=None, runs=status.runs + 1,
                            consecutive_failures=0, database_up=True,
                            platform_version=platform_version)

    def record_failure(self, name: str, error: str, duration: float,
                       database_up: bool) -> Snapshot:
        status = self.current.collectors[name]
        return self._update(name, state="failed", duration_seconds=duration, last_error=error,
                            runs=status.runs + 1, failures=status.failures + 1,
                            consecutive_failures=status.consecutive_failures + 1,
                            database_up=database_up)

    def mark_not_applicable(self, name: str, reason: str) -> Snapshot:
        return self._update(name, state="not_applicable", last_error=reason)

    def carry_over(self, previous: Snapshot) -> Snapshot:
        """Take over the results and counters of `previous`, the snapshot before a config reload,
        for every collector run before and after it, so /metrics and readiness go on."""
        with self._lock:
            current = self.current
            kept = {name: previous.collectors[name] for name, status in current.collectors.items()
                    if status.state != "not_applicable" and name in previous.collectors
                    and previous.collectors[name].state != "not_applicable"}
            return self._publish(replace(
                current, collectors={**current.collectors, **kept},
                platform_version=previous.platform_version, database_up=previous.database_up))
