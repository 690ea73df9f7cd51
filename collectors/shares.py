"""Shares by canonical type, links without a password, federated shares received."""

from __future__ import annotations

from sqlalchemy import func, select

from collectors.base import REFRESH_NOTE, Collector, CollectorResult, Gauge, Source
from exporter.usercolumns import user_columns

SHARE_TYPES = ("user", "group", "guest", "link", "email", "federated", "federated_group", "team",
               "room", "deck")
TYPE_COLUMN = {kind: n for n, kind in enumerate(SHARE_TYPES)}
EMPTY_COUNTS = (0,) * len(SHARE_TYPES)


class SharesCollector(Collector):
    name = "shares"
    relations = ("shares",)
    optional_relations = ("incoming_federated_shares",)

    def collect(self, source: Source) -> CollectorResult:
        shares = source.relations["shares"]
        conn = source.conn
        totals = conn.execute(
            select(shares.c.type, func.count(), func.sum(1 - shares.c.password_protected))
            .group_by(shares.c.type)).all()
        by_type = dict.fromkeys(SHARE_TYPES, 0) | {kind: count for kind, count, _ in totals}
        links_without_password = sum(int(free) for kind, _, free in totals if kind == "link")
        # Counted per (owner, type) by the database, then one row per owner: the owner and a
        # count per type, 0 where the owner has none of it (and for users who own no share).
        rows: dict[str, list[str | int | None]] = {}
        for owner, kind, count in conn.execute(
                select(shares.c.owner, shares.c.type, func.count())
                .group_by(shares.c.owner, shares.c.type)).all():
            rows.setdefault(owner, [owner, *EMPTY_COUNTS])[1 + TYPE_COLUMN[kind]] = count
        per_user = user_columns(list(rows.values()), [f"shares_{kind}" for kind in SHARE_TYPES],
                                absent=0)
        metrics = [
            Gauge.by("usage_shares", "Shares by type (internal per-recipient rows excluded). "
                     + REFRESH_NOTE, "type", by_type),
            Gauge.single("usage_link_shares_without_password",
                         "Public link shares not protected by a password. " + REFRESH_NOTE,
                         links_without_password),
        ]
        if "incoming_federated_shares" in source.relations:
            received = source.relations["incoming_federated_shares"]
            metrics.append(Gauge.single(
                "usage_federated_shares_received",
                "Shares received from other servers. " + REFRESH_NOTE,
                conn.execute(select(func.count()).select_from(received)).scalar_one()))
        return CollectorResult(metrics=tuple(metrics), users=per_user)
