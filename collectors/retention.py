"""Retained users by Synapse's R30v2 (phone-home r30v2_users_*): users seen on days more than 30
days apart within the last 60 days, in all and by the client they used on those days.

A user counts for a client when the days seen with that client alone are more than 30 days
apart, so one user can count for several clients and for none; unknown clients count only in
the total.
"""

from __future__ import annotations

from sqlalchemy import and_, case, func, select

from collectors.base import REFRESH_NOTE, Collector, CollectorResult, Gauge, Source

DAY_MS = 86_400_000
CLIENTS = ("android", "ios", "electron", "web")
RETAINED_MS = 30 * DAY_MS
LOOKBACK_MS = 60 * DAY_MS


class RetentionCollector(Collector):
    name = "retention"
    relations = ("daily_visits",)

    def collect(self, source: Source) -> CollectorResult:
        visits = source.relations["daily_visits"]
        # Synapse's bounds: its clock in whole seconds, both ends exclusive.
        now_ms = int(source.now) * 1000
        # One scan: the first and last day per user and client, then per user.
        spans = (select(visits.c.user_id, visits.c.client,
                        func.min(visits.c.day_ms).label("first"),
                        func.max(visits.c.day_ms).label("last"))
                 .where(visits.c.day_ms > now_ms - LOOKBACK_MS, visits.c.day_ms < now_ms + DAY_MS)
                 .group_by(visits.c.user_id, visits.c.client).subquery("spans"))
        per_user = (select(
            case((func.max(spans.c.last) - func.min(spans.c.first) > RETAINED_MS, 1),
                 else_=0).label("retained"),
            *(func.sum(case((and_(spans.c.client == client,
                                  spans.c.last - spans.c.first > RETAINED_MS), 1), else_=0))
              .label(client) for client in CLIENTS))
            .group_by(spans.c.user_id).subquery("per_user"))
        retained, *by_client = source.conn.execute(select(
            *(func.coalesce(func.sum(per_user.c[name]), 0)
              for name in ("retained", *CLIENTS)))).one()
        return CollectorResult(metrics=(
            Gauge.single("usage_users_retained", "Users seen on days more than 30 days apart "
                         "within the last 60 days (Synapse's R30v2). " + REFRESH_NOTE, retained),
            Gauge.by("usage_users_retained_by_client", "Users seen with the same client on days "
                     "more than 30 days apart within the last 60 days; a user may count for "
                     "several clients. " + REFRESH_NOTE, "client",
                     dict(zip(CLIENTS, by_client, strict=True))),
        ))
