"""Rooms the server knows of."""

from __future__ import annotations

from sqlalchemy import func, select

from collectors.base import REFRESH_NOTE, Collector, CollectorResult, Gauge, Source


class RoomsCollector(Collector):
    name = "rooms"
    relations = ("rooms",)

    def collect(self, source: Source) -> CollectorResult:
        rooms = source.relations["rooms"]
        count = source.conn.execute(select(func.count()).select_from(rooms)).scalar_one()
        return CollectorResult(metrics=(
            Gauge.single("usage_rooms", "Rooms the server knows of, whether or not any local "
                         "user is in them. " + REFRESH_NOTE, count),
        ))
