"""Snapshot -> Prometheus exposition bodies and JSON, rendered once per refresh."""

from __future__ import annotations

import gzip
import heapq
import math
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from collectors.base import REFRESH_NOTE, Family, Gauge, Histogram
from exporter import __version__
from exporter.build import python_version, revision
from exporter.platforms import PROFILES
from exporter.snapshot import Bodies, Snapshot

PER_USER_GAUGES = (
    ("usage_user_used_bytes", "used_bytes", "Bytes used in the user's home storage."),
    ("usage_user_quota_bytes", "quota_bytes", "The user's quota in bytes (absent if unlimited)."),
    ("usage_user_files", "files", "Files in the user's home storage."),
    ("usage_user_sessions", "sessions", "The user's live sessions."),
    ("usage_user_last_login_timestamp_seconds", "last_login", "When the user last logged in."),
)


def _family(metric: Gauge | Histogram) -> Metric:
    if isinstance(metric, Histogram):
        family = GaugeHistogramMetricFamily(metric.name, metric.help)
        family.add_metric([], [(_le(bound), count) for bound, count in metric.buckets],
                          metric.sum)
        return family
    family = GaugeMetricFamily(metric.name, metric.help, labels=list(metric.labels))
    for labels, value in metric.samples:
        family.add_metric(list(labels), value)
    return family


def _merged(families: list[Family]) -> Metric:
    """Families of one name (query-exporter queries may share a metric) as one."""
    first = families[0]
    merged = Metric(first.name, first.help, first.type, first.unit)
    for family in families:
        for name, labels, value in family.samples:
            merged.add_sample(name, dict(labels), value)
    return merged


def _le(bound: float) -> str:
    """The exposition's le: a float's canonical form (1048576.0), as series are already named."""
    return "+Inf" if math.isinf(bound) else repr(bound)


def _bucket_key(bound: float) -> str:
    """A bound as JSON and CSV show it: 1048576, 0.5, +Inf."""
    return "+Inf" if math.isinf(bound) else str(_number(bound))


class SnapshotCollector:
    """A prometheus_client collector over one immutable snapshot."""

    def __init__(self, snapshot: Snapshot, per_user_limit: int = 0) -> None:
        self.snapshot = snapshot
        self.per_user_limit = per_user_limit

    def collect(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        custom: dict[str, list[Family]] = {}
        for result in snapshot.results():
            for metric in result.metrics:
                if isinstance(metric, Family):
                    custom.setdefault(metric.name, []).append(metric)
                else:
                    yield _family(metric)
        yield from (_merged(families) for families in custom.values())
        if self.per_user_limit:
            yield from self._per_user()
        yield from self._self_metrics()

    def _self_metrics(self) -> Iterator[Metric]:
        snapshot = self.snapshot
        ran = [s for s in snapshot.collectors.values() if s.runs]
        success = GaugeMetricFamily("usage_collector_success", "1 if the collector's last run "
                                    "succeeded.", labels=["collector"])
        duration = GaugeMetricFamily("usage_collector_duration_seconds",
                                     "Duration of the collector's last run.", labels=["collector"])
        last = GaugeMetricFamily("usage_collector_last_success_timestamp_seconds",
                                 "When the collector last succeeded.", labels=["collector"])
        runs = CounterMetricFamily("usage_collector_runs", "Runs of the collector.",
                                   labels=["collector"])
        failures = CounterMetricFamily("usage_collector_failures", "Failed runs of the collector.",
                                       labels=["collector"])
        for status in ran:
            labels = [status.name]
            success.add_metric(labels, 1 if status.state == "ok" else 0)
            duration.add_metric(labels, status.duration_seconds)
            if status.last_success is not None:
                last.add_metric(labels, status.last_success)
            runs.add_metric(labels, status.runs)
            failures.add_metric(labels, status.failures)
        yield from (success, duration, last, runs, failures)
        if snapshot.database_up is not None:
            yield GaugeMetricFamily("usage_database_up",
                                    "1 if the last connection to the platform database succeeded.",
                                    value=1 if snapshot.database_up else 0)
        build = GaugeMetricFamily("usage_exporter_build_info", "The exporter's version, git "
                                  "revision and Python version; always 1.",
                                  labels=["version", "revision", "python_version"])
        build.add_metric([__version__, revision(), python_version()], 1)
        platform = GaugeMetricFamily("usage_platform_info",
                                     "The platform and the version it records; always 1.",
                                     labels=["platform", "version"])
        platform.add_metric([snapshot.platform, snapshot.platform_version], 1)
        yield from (build, platform)

    def _per_user(self) -> Iterator[Metric]:
        columns = self.snapshot.user_columns()
        # Users are ranked by home storage, or by media on platforms without file storage.
        used = columns.get("used_bytes") or columns.get("media_bytes") or {}
        top = [user for user, _ in heapq.nlargest(self.per_user_limit, used.items(),
                                                  key=lambda item: item[1] or 0)]
        for name, column, help_text in PER_USER_GAUGES:
            family = GaugeMetricFamily(name, help_text + " Top users by storage only.",
                                       labels=["user"])
            values = columns.get(column, {})
            for user in top:
                if values.get(user) is not None:
                    family.add_metric([user], values[user])
            yield family


def render(snapshot: Snapshot, per_user_limit: int = 0) -> Bodies:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, per_user_limit))  # type: ignore[arg-type]
    text, openmetrics = generate_latest(registry), generate_openmetrics(registry)
    return Bodies(text=text, text_gzip=gzip.compress(text, 6), openmetrics=openmetrics,
                  openmetrics_gzip=gzip.compress(openmetrics, 6))


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _metric_json(metric: Gauge | Histogram | Family) -> Any:
    if isinstance(metric, Family):  # every sample, with its own name (a histogram's _sum ...)
        return [{"sample": name, "labels": dict(labels), "value": _number(value)}
                for name, labels, value in metric.samples]
    if isinstance(metric, Histogram):
        return {"buckets": {_bucket_key(b): c for b, c in metric.buckets}, "count": metric.count,
                "sum": _number(metric.sum)}
    if not metric.labels:
        return _number(metric.samples[0][1]) if metric.samples else None
    if len(metric.labels) == 1:
        return {labels[0]: _number(value) for labels, value in metric.samples}
    return [{"labels": dict(zip(metric.labels, labels, strict=True)), "value": _number(value)}
            for labels, value in metric.samples]


def _metrics_json(snapshot: Snapshot) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for result in snapshot.results():
        for metric in result.metrics:
            if isinstance(metric, Family) and metric.name in metrics:  # a shared metric
                metrics[metric.name] = [*metrics[metric.name], *_metric_json(metric)]
            else:
                metrics[metric.name] = _metric_json(metric)
    return metrics


def snapshot_json(snapshot: Snapshot, *, users: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "platform": snapshot.platform,
        "platform_version": snapshot.platform_version,
        "platform_version_kind": PROFILES[snapshot.platform].version_kind,
        "database_up": snapshot.database_up,
        "ready": snapshot.ready,
        "collectors": {
            s.name: {"state": s.state, "duration_seconds": round(s.duration_seconds, 6),
                     "last_success": s.last_success, "last_error": s.last_error,
                     "runs": s.runs, "failures": s.failures}
            for s in snapshot.collectors.values()},
        "metrics": _metrics_json(snapshot),
        # What each metric counts, in words (its HELP without the note every metric shares).
        "metric_help": {m.name: m.help.removesuffix(REFRESH_NOTE).strip()
                        for r in snapshot.results() for m in r.metrics},
    }
    if users:
        body["users"] = list(snapshot.user_rows())
    return body


def metric_rows(snapshot: Snapshot) -> Iterator[tuple[str, str, int | float]]:
    """(metric, label, value) per sample of the snapshot's metrics: labels as name=value pairs
    in name order, as /metrics writes them, joined by commas ('' for none); histograms as their
    buckets (le=...), count and sum; a custom metric's samples by their own names."""
    for result in snapshot.results():
        for metric in result.metrics:
            if isinstance(metric, Family):
                yield from ((sample, ",".join(f"{k}={v}" for k, v in sorted(labels)),
                             _number(value)) for sample, labels, value in metric.samples)
            elif isinstance(metric, Histogram):
                yield from ((metric.name, f"le={_bucket_key(bound)}", count)
                            for bound, count in metric.buckets)
                yield from ((metric.name, "count", metric.count),
                            (metric.name, "sum", _number(metric.sum)))
            else:
                for labels, value in metric.samples:
                    pairs = sorted(zip(metric.labels, labels, strict=True))
                    yield metric.name, ",".join(f"{k}={v}" for k, v in pairs), _number(value)
