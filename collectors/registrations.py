"""Accounts by how they were registered (native, guest, bridged), and registrations within
trailing windows: Synapse's phone-home total_nonbridged_users and daily_user_type_*."""

from __future__ import annotations

from sqlalchemy import case, func, select

from collectors.base import REFRESH_NOTE, Collector, CollectorResult, Gauge, Source
from exporter.config import Option, duration_label, duration_list

TYPES = ("native", "guest", "bridged")


class RegistrationsCollector(Collector):
    name = "registrations"
    relations = ("registrations",)
    # Phone-home reports the last day.
    options = {"windows": Option(duration_list, (86400.0,))}

    def collect(self, source: Source) -> CollectorResult:
        registrations = source.relations["registrations"]
        windows = self.config.options["windows"]
        # One pass: every account by type, and those created within each window (strictly
        # after its start, as Synapse's creation_ts > now - 86400).
        rows = source.conn.execute(select(
            registrations.c.type, func.count(),
            *(func.sum(case((registrations.c.created_at > source.now - window, 1), else_=0))
              for window in windows)).group_by(registrations.c.type)).all()
        found = {kind: (count, *within) for kind, count, *within in rows}
        counts = {kind: found.get(kind, (0,) * (1 + len(windows))) for kind in TYPES}
        return CollectorResult(metrics=(
            Gauge.by("usage_users_by_type", "Accounts by how they were registered: native, "
                     "guest, or bridged (by an application service); of any status, "
                     "deactivated included. " + REFRESH_NOTE, "type",
                     {kind: count for kind, (count, *_) in counts.items()}),
            Gauge("usage_users_registered", "Accounts registered within the trailing window, "
                  "by type. " + REFRESH_NOTE, ("window", "type"),
                  tuple(((duration_label(window), kind), float(values[1 + n]))
                        for n, window in enumerate(windows) for kind, values in counts.items())),
        ))
