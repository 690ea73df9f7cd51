"""A custom SQL query as a collector: its result columns become metric values and labels.

One QueryCollector per configured query (exporter.custom_metrics.QuerySpec), run by the same
runner and scheduler as the built-in collectors: the same read-only connection, timeout, watchdog,
backoff and usage_collector_* series. It reads no canonical relation, so it applies everywhere.

A run fails, keeping the previous values, when the result does not fit its metrics: a missing or
(query-exporter files) unexpected column, a value that is not a number, two rows for one series,
or more series than the query's max_series. The message names the YAML path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from prometheus_client import Histogram as ClientHistogram
from prometheus_client.utils import floatToGoString
from sqlalchemy import Connection, TextClause, text

from collectors.base import Collector, CollectorResult, Family, Source
from exporter.custom_metrics import MetricSpec, QuerySpec
from exporter.platforms.custom import verbatim

Labels = tuple[tuple[str, str], ...]
DEFAULT_BUCKETS = tuple(ClientHistogram.DEFAULT_BUCKETS[:-1])  # query-exporter's default


class QueryResultError(Exception):
    """The query's result does not fit its metrics; the message names the YAML path."""


@dataclass
class Series:
    """One series of a query-exporter metric as it stands after the runs so far: a gauge's or
    counter's value, an enum's state, a histogram's or summary's observations."""

    value: float = 0.0
    state: str = ""
    buckets: list[int] = field(default_factory=list)
    count: int = 0
    sum: float = 0.0
    seen: float = 0.0

    def copy(self) -> Series:
        return replace(self, buckets=list(self.buckets))


class QueryCollector(Collector):
    name = "sql"
    relations = ()

    def __init__(self, spec: QuerySpec) -> None:
        super().__init__(spec.collector_config())
        self.spec = spec
        self.statement = self._statement(spec.sql)
        self._series: dict[tuple[str, Labels], Series] = {}  # query-exporter: the runs so far
        self._pending: dict[tuple[str, Labels], Series] | None = None

    def collect(self, source: Source) -> CollectorResult:
        rows = list(self._rows(source))
        if not self.spec.query_exporter:
            return CollectorResult(tuple(self._current(rows)))
        self._pending = self._accumulated(rows, source.now)
        return CollectorResult(tuple(self._families(self._pending)))

    def recorded(self) -> None:
        """A run's accumulated series count once its result is published, not when it failed."""
        if self._pending is not None:
            self._series, self._pending = self._pending, None

    def _statement(self, sql: str) -> TextClause:
        """query-exporter's text() takes :name as a parameter; ours sends the SQL as written."""
        return text(sql) if self.spec.query_exporter else verbatim(sql)

    def columns(self, conn: Connection) -> list[str]:
        """The result's columns, read without its rows (the start-up check): the query wrapped
        in LIMIT 0, sent as a run sends it, with its first parameter set bound."""
        wrapped = self._statement(f"SELECT * FROM ({self.spec.sql.rstrip().rstrip(';')}) "
                                  "AS custom_query LIMIT 0")
        return list(conn.execute(wrapped, dict(next(iter(self.spec.parameters), {}))).keys())

    def _rows(self, source: Source) -> Iterable[Mapping[str, Any]]:
        for parameters in self.spec.parameters or ({},):
            result = source.conn.execute(self.statement, dict(parameters))
            keys = list(result.keys())
            self.check_columns(keys)
            for row in result:
                yield dict(zip(keys, row, strict=True))

    def check_columns(self, keys: Sequence[str]) -> None:
        found = set(keys)
        for metric in self.spec.metrics:
            missing = [c for c in (metric.column, *metric.labels) if c not in found]
            if missing:
                raise QueryResultError(
                    f"{metric.path}: column {', '.join(missing)} not in the result of "
                    f"{self.spec.path} (columns: {', '.join(keys)})")
        if self.spec.query_exporter:  # as query-exporter: exactly the metrics and their labels
            expected = {c for m in self.spec.metrics for c in (m.column, *m.labels)}
            if extra := sorted(found - expected):
                raise QueryResultError(f"{self.spec.path}: unexpected column {', '.join(extra)} "
                                       f"(expected {', '.join(sorted(expected))})")

    def _labels(self, metric: MetricSpec, row: Mapping[str, Any]) -> Labels:
        own = ((label, _label_value(row[label], self.spec.query_exporter))
               for label in metric.labels)
        return tuple(sorted((*self.spec.constant_labels, *own)))

    def _value(self, metric: MetricSpec, row: Mapping[str, Any], labels: Labels) -> float:
        value = row[metric.column]
        if value is None and self.spec.query_exporter:
            return 0.0  # as query-exporter: a count over no rows may be NULL
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise QueryResultError(
                f"{metric.path}: column {metric.column} is not a number: {value!r}"
                f"{_where(labels)}") from None
        return number

    def _checked(self, count: int) -> None:
        if count > self.spec.max_series:
            raise QueryResultError(
                f"{self.spec.path}: {count} series, over the cap of {self.spec.max_series} "
                f"(max_series); none of this run's values are published")

    # --- our own section: each run's rows are the values ---

    def _current(self, rows: Sequence[Mapping[str, Any]]) -> Iterable[Family]:
        families = []
        total = 0
        for metric in self.spec.metrics:
            samples: dict[Labels, float] = {}
            for row in rows:
                if row[metric.column] is None:
                    continue  # NULL: no value, so no series
                labels = self._labels(metric, row)
                if labels in samples:
                    raise QueryResultError(f"{metric.path}: two rows for the series"
                                           f"{_where(labels)}; group by the labels")
                samples[labels] = self._value(metric, row, labels)
            total += len(samples)
            sample_name = _sample_name(metric)
            families.append(Family(_family_name(metric), metric.type, metric.help, metric.unit,
                                   tuple((sample_name, labels, value)
                                         for labels, value in samples.items())))
        self._checked(total)
        return families

    # --- query-exporter files: series persist, histograms and increments accumulate ---

    def _accumulated(self, rows: Sequence[Mapping[str, Any]],
                     now: float) -> dict[tuple[str, Labels], Series]:
        series = {key: entry.copy() for key, entry in self._series.items()}
        for row in rows:
            for metric in self.spec.metrics:
                labels = self._labels(metric, row)
                entry = series.setdefault((metric.name, labels), Series(
                    buckets=[0] * len(metric.buckets or DEFAULT_BUCKETS),
                    state=metric.states[0] if metric.states else ""))
                self._update(metric, entry, row, labels)
                entry.seen = now
        expirations = {m.name: m.expiration for m in self.spec.metrics if m.expiration}
        series = {key: entry for key, entry in series.items()
                  if key[0] not in expirations or entry.seen + expirations[key[0]] >= now}
        self._checked(len(series))
        return series

    def _update(self, metric: MetricSpec, entry: Series, row: Mapping[str, Any],
                labels: Labels) -> None:
        if metric.type == "enum":
            state = str(row[metric.column])
            if state not in metric.states:
                raise QueryResultError(f"{metric.path}: {state!r} is not one of the states "
                                       f"{', '.join(metric.states)}{_where(labels)}")
            entry.state = state
            return
        value = self._value(metric, row, labels)
        if metric.type == "counter" and metric.increment:
            if value < 0:
                raise QueryResultError(f"{metric.path}: a counter cannot decrease by {value:g}"
                                       f"{_where(labels)}")
            entry.value += value
        elif metric.type in ("gauge", "counter"):
            entry.value = value
        else:  # histogram, summary: one observation per row
            entry.count += 1
            entry.sum += value
            for index, bound in enumerate(metric.buckets or DEFAULT_BUCKETS):
                entry.buckets[index] += value <= bound

    def _families(self, series: Mapping[tuple[str, Labels], Series]) -> Iterable[Family]:
        for metric in self.spec.metrics:
            mine = [(labels, entry) for (name, labels), entry in series.items()
                    if name == metric.name]
            samples = [sample for labels, entry in mine
                       for sample in _samples(metric, labels, entry)]
            kind = "stateset" if metric.type == "enum" else metric.type
            yield Family(_family_name(metric), kind, metric.help, metric.unit, tuple(samples))


def _samples(metric: MetricSpec, labels: Labels,
             entry: Series) -> Iterable[tuple[str, Labels, float]]:
    name = _family_name(metric)
    if metric.type == "enum":
        for state in metric.states:
            yield name, tuple(sorted((*labels, (metric.name, state)))), float(state == entry.state)
    elif metric.type in ("histogram", "summary"):
        if metric.type == "histogram":
            bounds = (*(metric.buckets or DEFAULT_BUCKETS), math.inf)
            for bound, count in zip(bounds, (*entry.buckets, entry.count), strict=True):
                yield (f"{name}_bucket", tuple(sorted((*labels, ("le", floatToGoString(bound))))),
                       float(count))
        yield f"{name}_count", labels, float(entry.count)
        yield f"{name}_sum", labels, entry.sum
    else:
        yield _sample_name(metric), labels, entry.value


def _family_name(metric: MetricSpec) -> str:
    return metric.name.removesuffix("_total") if metric.type == "counter" else metric.name


def _sample_name(metric: MetricSpec) -> str:
    return f"{_family_name(metric)}_total" if metric.type == "counter" else metric.name


def _label_value(value: Any, query_exporter: bool) -> str:
    if value is None and not query_exporter:
        return ""
    return str(value)  # query-exporter (prometheus_client) takes str() of anything, None too


def _where(labels: Labels) -> str:
    return f" (row {', '.join(f'{k}={v}' for k, v in labels)})" if labels else ""
