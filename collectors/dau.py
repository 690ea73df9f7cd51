"""Daily active users and users by status, per calendar day, into the history store.

Platforms that keep daily history (Synapse's user_daily_visits, a custom daily_activity) give exact
past days, recorded for the UTC zone, which is how they keep them. Otherwise the collector samples
each user's latest activity on every run and the history store accumulates the distinct users of
each day, in every configured time zone; a day is complete when the exporter ran through it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select

from collectors.base import Collector, CollectorResult, Source
from exporter.config import Option, positive_int, timezone
from exporter.history import HistoryRows, user_key

DELETED = "deleted"  # the status_changes status of a deleted account


def timezones(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty list of IANA time zones, e.g. [UTC, Europe/Berlin]")
    return tuple(dict.fromkeys(timezone(item) for item in value))


def local_midnight(day: date, zone: ZoneInfo) -> float:
    return datetime.combine(day, time(), tzinfo=zone).timestamp()


class DauCollector(Collector):
    name = "dau"
    relations = ("activity",)
    optional_relations = ("daily_activity", "users", "status_changes")
    options = {
        "timezones": Option(timezones, ("UTC",)),
        # How far back exact sources are read on the first run after start.
        "backfill_days": Option(positive_int, 61),
    }

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._backfilled = False

    def collect(self, source: Source) -> CollectorResult:
        zones = {name: ZoneInfo(name) for name in self.config.options["timezones"]}
        days_back = 1 if self._backfilled else self.config.options["backfill_days"]
        active = self._sampled(source, zones)
        if "daily_activity" in source.relations:
            active |= self._exact_days(source, days_back)
        if "status_changes" in source.relations:
            statuses = self._status_history(source, zones, days_back)
        elif "users" in source.relations:
            statuses = self._status_today(source, zones)
        else:
            statuses = set()
        return CollectorResult(metrics=(), history=HistoryRows(
            active=tuple(sorted(active)), statuses=tuple(sorted(statuses))))

    def recorded(self) -> None:
        # Only once the past days are in the history store: a failed write backfills again.
        self._backfilled = True

    @staticmethod
    def _sampled(source: Source, zones: dict[str, ZoneInfo]) -> set[tuple[str, date, int]]:
        """Users whose latest activity falls yesterday or today, by the day it fell on in each
        zone. Yesterday is re-read so a run missed around midnight loses nothing."""
        activity = source.relations["activity"]
        since = min(local_midnight(datetime.fromtimestamp(source.now, zone).date()
                                   - timedelta(days=1), zone) for zone in zones.values())
        query = select(activity.c.user_id, activity.c.last_active).where(
            activity.c.last_active >= since, activity.c.last_active <= source.now)
        # A last login is one row per user already; DISTINCT would make SQLite build every join.
        rows = source.conn.execute(
            query if source.activity_is_last_login else query.distinct()).all()
        found = set()
        for user_id, last_active in rows:
            key = user_key(user_id)
            for name, zone in zones.items():
                day = datetime.fromtimestamp(float(last_active), zone).date()
                found.add((name, day, key))
        return found

    @staticmethod
    def _exact_days(source: Source, days_back: int) -> set[tuple[str, date, int]]:
        daily = source.relations["daily_activity"]
        since = source.now - (days_back + 1) * 86400
        rows = source.conn.execute(select(daily.c.user_id, daily.c.day).distinct()
                                   .where(daily.c.day >= since))
        return {("UTC", datetime.fromtimestamp(float(day), UTC).date(), user_key(user_id))
                for user_id, day in rows}

    @staticmethod
    def _status_today(source: Source, zones: dict[str, ZoneInfo]) -> set[tuple]:
        users = source.relations["users"]
        counts = source.conn.execute(
            select(users.c.status, func.count()).group_by(users.c.status)).all()
        return {(name, datetime.fromtimestamp(source.now, zone).date(), status, count)
                for name, zone in zones.items() for status, count in counts}

    @staticmethod
    def _status_history(source: Source, zones: dict[str, ZoneInfo], days_back: int) -> set[tuple]:
        """Each user's status as of local midnight of each day: the latest change before it.
        Every status some change has named by now is counted each day, 0 where nobody held it,
        so that a count falling to 0 replaces the day's earlier one and a series of zeros is
        kept (as Coder answers one for a status it has seen)."""
        changes = source.relations["status_changes"]
        named = source.conn.execute(select(changes.c.status).distinct()
                                    .where(changes.c.changed_at <= source.now)).scalars().all()
        # A deletion recorded at the same instant as a change is the later of the two (Coder
        # dates a deletion with the user's last updated_at, often its last status change).
        deletion_first = case((changes.c.status == DELETED, 0), else_=1)
        found = set()
        for name, zone in zones.items():
            today = datetime.fromtimestamp(source.now, zone).date()
            for offset in range(days_back, -1, -1):
                day = today - timedelta(days=offset)
                latest = (select(changes.c.status, func.row_number().over(
                    partition_by=changes.c.user_id, order_by=(changes.c.changed_at.desc(),
                                                              deletion_first))
                    .label("rank"))
                    .where(changes.c.changed_at <= local_midnight(day, zone)).subquery())
                counts = source.conn.execute(select(latest.c.status, func.count())
                                             .where(latest.c.rank == 1)
                                             .group_by(latest.c.status))
                held = dict.fromkeys(named, 0) | dict(counts.all())
                found |= {(name, day, status, count) for status, count in held.items()}
        return found
