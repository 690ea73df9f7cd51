"""Accounts by status, and distinct users active within trailing windows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, case, distinct, func, select

from collectors.base import (
    REFRESH_NOTE,
    Collector,
    CollectorResult,
    Gauge,
    Source,
)
from collectors.sessions import live_sessions
from exporter.config import Option, choice, duration_label, duration_list
from exporter.usercolumns import user_columns

# Nextcloud's serverinfo windows plus ownCloud's 14 days (its activeUsersCount).
DEFAULT_WINDOWS = (300.0, 3600.0, 86400.0, 604800.0, 1209600.0, 2592000.0, 7776000.0,
                   15552000.0, 31536000.0)
USER_COLUMNS = ("display_name", "backend", "status", "is_admin", "created_at", "last_login")


class UsersCollector(Collector):
    name = "users"
    relations = ("users", "activity")
    optional_relations = ("sessions",)
    options = {
        "windows": Option(duration_list, DEFAULT_WINDOWS),
        # activity: the platform's own notion (last login on ownCloud and Nextcloud, as
        # serverinfo counts since 2025; client requests on Synapse); session_activity: last use
        # of a session token (Nextcloud serverinfo up to version 29).
        "active_by": Option(choice("activity", "session_activity"), "activity"),
    }

    def collect(self, source: Source) -> CollectorResult:
        users = source.relations["users"]
        conn = source.conn
        windows = self.config.options["windows"]
        by_session = self.config.options["active_by"] == "session_activity"

        def within(last_active: ColumnElement[Any], window: float) -> ColumnElement[bool]:
            since = source.now - window
            return last_active >= since if source.inclusive_windows else last_active > since

        # One pass over the users relation answers status, seen and, where activity is the last
        # login itself (one row per user, so no DISTINCT), the windows too.
        windows_here = source.activity_is_last_login and not by_session
        window_sums = [func.sum(case((within(users.c.last_login, window), 1), else_=0))
                       for window in windows] if windows_here else []
        groups = conn.execute(select(users.c.status, func.count(), func.count(users.c.last_login),
                                     *window_sums).group_by(users.c.status)).all()
        by_status = {status: count for status, count, *_ in groups}
        seen = sum(group[2] for group in groups)
        if windows_here:
            active = [sum(group[3 + n] for group in groups) for n in range(len(windows))]
        else:
            relation = live_sessions(source) if by_session else source.relations["activity"]
            user_id = relation.c.user_id
            last_active = relation.c.last_activity if by_session else relation.c.last_active
            active = list(conn.execute(select(*(
                func.count(distinct(case((within(last_active, window), user_id))))
                for window in windows))).one())

        columns = user_columns(conn.execute(
            select(users.c.user_id, *(users.c[c] for c in USER_COLUMNS))), USER_COLUMNS)

        return CollectorResult(
            metrics=(
                Gauge.by("usage_users", "Registered accounts by status; the sum is all accounts. "
                         + REFRESH_NOTE, "status", by_status),
                Gauge.single("usage_users_seen", "Accounts that have logged in at least once. "
                             + REFRESH_NOTE, seen),
                Gauge.by("usage_users_active", "Distinct users active within the trailing window. "
                         + REFRESH_NOTE, "window",
                         {duration_label(w): n for w, n in zip(windows, active, strict=True)}),
            ),
            users=columns,
        )
