"""The collector contract: what a collector reads, what it returns.

A collector aggregates canonical relations (see exporter.platforms.base) in the database and returns
an immutable result. It never names a platform table. The per-user rows it reads anyway it may
summarize itself (a histogram of them) rather than have the database compute the same join twice.
"""

from __future__ import annotations

import bisect
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import Connection, Subquery

from exporter.config import CollectorConfig, DatabaseConfig, Option
from exporter.history import HistoryRows

REFRESH_NOTE = "Refreshed on a schedule, not at scrape time."
INF = float("inf")
# Bucket bounds for per-user byte distributions: 1 MiB, 4 MiB, ... 1 TiB.
BYTE_BOUNDS = tuple(float(1024**2 * 4**k) for k in range(11))


@dataclass(frozen=True)
class Gauge:
    name: str
    help: str
    labels: tuple[str, ...] = ()
    samples: tuple[tuple[tuple[str, ...], float], ...] = ()

    @classmethod
    def single(cls, name: str, help: str, value: float) -> Gauge:
        return cls(name, help, (), (((), float(value)),))

    @classmethod
    def by(cls, name: str, help: str, label: str, values: Mapping[str, float]) -> Gauge:
        return cls(name, help, (label,),
                   tuple(((key,), float(v)) for key, v in values.items()))


@dataclass(frozen=True)
class Histogram:
    """A gauge histogram: how a population is distributed right now (cumulative buckets)."""

    name: str
    help: str
    buckets: tuple[tuple[float, int], ...]
    sum: float

    @property
    def count(self) -> int:
        return self.buckets[-1][1]


@dataclass(frozen=True)
class Family:
    """A metric of any Prometheus type given as the samples it exposes (a histogram's buckets,
    count and sum; a counter's _total): what custom SQL metrics produce. Families of one name
    from several results are exposed as one (query-exporter lets queries share a metric)."""

    name: str
    type: str  # gauge, counter, histogram, summary, stateset
    help: str
    unit: str = ""
    # (sample name, labels as sorted (name, value) pairs, value)
    samples: tuple[tuple[str, tuple[tuple[str, str], ...], float], ...] = ()


Metric = Gauge | Histogram | Family


@dataclass(frozen=True)
class CollectorResult:
    metrics: tuple[Metric, ...]
    # Per-user columns: column name -> {user_id: value}. Merged across collectors by user id.
    users: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Daily rollups for the history store, written by the runner after a successful run.
    history: HistoryRows | None = None


@dataclass(frozen=True)
class Source:
    """What a collector run may read: one read-only connection, the platform's relations, the
    instant the time windows are measured from, and the database settings."""

    conn: Connection
    relations: Mapping[str, Subquery]
    now: float
    database: DatabaseConfig
    # Whether activity exactly one window ago counts as within it (a platform convention).
    inclusive_windows: bool = True
    # Whether activity is the users relation's last_login: then each user has at most one row.
    activity_is_last_login: bool = False


class Collector(ABC):
    name: ClassVar[str]
    # Canonical relations the collector needs; without them it is not applicable.
    relations: ClassVar[tuple[str, ...]]
    # Relations it uses when the platform has them.
    optional_relations: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[Mapping[str, Option]] = {}

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config

    @abstractmethod
    def collect(self, source: Source) -> CollectorResult: ...

    def recorded(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Called after a successful run, once its history is written. A collector that reads
        less after its first run moves on here, so that a run whose result was lost is redone."""


def histogram_of(name: str, help: str, bounds: Sequence[float],
                 values: Sequence[float | None]) -> Histogram:
    """The histogram of per-user values already read, counted as SQL would count them: every
    value in the count, NULLs in no bucket and not in the sum (COUNT(*), SUM, SUM(CASE value <=
    bound)). The sum is exact (fsum), as a database's float sum need not be."""
    present = sorted(v for v in values if v is not None)
    buckets = (*((bound, bisect.bisect_right(present, bound)) for bound in bounds),
               (INF, len(values)))
    return Histogram(name, help, buckets, math.fsum(present))
