"""Installed apps: how many are enabled and disabled, and each app's version and state."""

from __future__ import annotations

from sqlalchemy import select

from collectors.base import REFRESH_NOTE, Collector, CollectorResult, Gauge, Source

STATES = ("enabled", "disabled")


class AppsCollector(Collector):
    name = "apps"
    relations = ("apps",)

    def collect(self, source: Source) -> CollectorResult:
        apps = source.relations["apps"]
        rows = source.conn.execute(
            select(apps.c.app_id, apps.c.version, apps.c.enabled).order_by(apps.c.app_id)).all()
        state = {app_id: STATES[0] if enabled else STATES[1] for app_id, _, enabled in rows}
        return CollectorResult(metrics=(
            Gauge.by("usage_apps", "Installed apps by state. " + REFRESH_NOTE, "state",
                     {name: sum(s == name for s in state.values()) for name in STATES}),
            Gauge("usage_app_info", "Each installed app, its version and state; always 1. "
                  + REFRESH_NOTE, ("app", "version", "state"),
                  tuple(((app_id, version or "", state[app_id]), 1.0)
                        for app_id, version, _ in rows)),
        ))
