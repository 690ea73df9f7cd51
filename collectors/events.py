"""Events per kind over windows: the last hour, today, the last 7 and 31 days, the recent days and
all time; in each, the events, the distinct users and the distinct subjects. With them, the named
totals the platform keeps (the counts its stats report beside the events: switches, VLANs, ...).

Days are calendar days of the configured zone: today runs from its local midnight, and "the last N
days" are N whole days plus today, which is how OpenL2M's stats and ODK Central's usage report
count them (Central's "recent" is current_date - 45). Undated events (at NULL) count in the total
only, so a recipe gives every admin or form one undated row to make the total count them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, Subquery, and_, case, distinct, func, select, true

from collectors.base import REFRESH_NOTE, Collector, CollectorResult, Gauge, Source
from collectors.dau import local_midnight
from exporter.config import Option, positive_int, timezone

# A window's [start, end) in Unix seconds; None = open. A window without a start is all time.
Window = tuple[float | None, float | None]
ALL_TIME: Window = (None, None)


@dataclass(frozen=True)
class EventCounts:
    events: int
    users: int
    subjects: int


def day_windows(now: float, zone: ZoneInfo, days: Mapping[str, int]) -> dict[str, Window]:
    """The last hour, today, and for each name N whole local days plus today."""
    today = datetime.fromtimestamp(now, zone).date()
    return {"1h": (now - 3600, None),
            "today": (local_midnight(today, zone), local_midnight(today + timedelta(days=1), zone)),
            **{name: (local_midnight(today - timedelta(days=n), zone), None)
               for name, n in days.items()}}


def count_events(conn: Connection, events: Subquery,
                 windows: Mapping[str, Window]) -> dict[str, dict[str, EventCounts]]:
    """Each kind's events, distinct users and distinct subjects in each window, in one
    statement. NULL users and subjects are not counted; kinds without events are absent."""
    at = events.c.at

    def within(start: float | None, end: float | None) -> ColumnElement[bool]:
        if start is None:
            return true()
        return at >= start if end is None else and_(at >= start, at < end)

    columns = []
    for start, end in windows.values():
        inside = within(start, end)
        columns += [func.count(case((inside, 1))),
                    func.count(distinct(case((inside, events.c.user_id)))),
                    func.count(distinct(case((inside, events.c.subject))))]
    rows = conn.execute(select(events.c.kind, *columns).group_by(events.c.kind)).all()
    return {kind: {name: EventCounts(*counts[3 * i:3 * i + 3])
                   for i, name in enumerate(windows)}
            for kind, *counts in rows}


class EventsCollector(Collector):
    name = "events"
    relations = ("events",)
    optional_relations = ("totals",)
    options = {
        "timezone": Option(timezone, "UTC"),  # whose calendar days "today" and "Nd" are
        "recent_days": Option(positive_int, 45),  # ODK Central's usage report: 45
    }

    def collect(self, source: Source) -> CollectorResult:
        windows = day_windows(source.now, ZoneInfo(self.config.options["timezone"]),
                              {"7d": 7, "31d": 31, "recent": self.config.options["recent_days"]})
        counts = count_events(source.conn, source.relations["events"],
                              windows | {"total": ALL_TIME})

        def gauge(name: str, help: str, measure: str) -> Gauge:
            return Gauge(name, help + " " + REFRESH_NOTE, ("kind", "window"), tuple(
                ((kind, window), float(getattr(value, measure)))
                for kind, by_window in counts.items() for window, value in by_window.items()))

        metrics = [
            gauge("usage_events", "Events by kind in each window (1h, today, 7d and 31d from "
                  "local midnight, recent, total).", "events"),
            gauge("usage_event_users", "Distinct users with events of the kind in each window.",
                  "users"),
            gauge("usage_event_subjects", "Distinct subjects (devices, forms, ...) of events of "
                  "the kind in each window.", "subjects")]
        if "totals" in source.relations:
            totals = source.relations["totals"]
            metrics.append(Gauge.by("usage_total", "Totals the platform keeps, by name. "
                                    + REFRESH_NOTE, "name", dict(source.conn.execute(
                                        select(totals.c.name, func.sum(totals.c.value))
                                        .group_by(totals.c.name)).all())))
        return CollectorResult(metrics=tuple(metrics))
