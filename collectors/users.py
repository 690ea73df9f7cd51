"""Accounts by status, and distinct users active within trailing windows."""

from __future__ import annotations

from sqlalchemy import ColumnElement, case, distinct, func, select

from collectors.base import REFRESH_NOTE, Collector, CollectorResult, Gauge, Source
from exporter.config import Option, choice, duration_label, duration_list

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
        by_status = dict(conn.execute(
            select(users.c.status, func.count()).group_by(users.c.status)).all())
        seen = conn.execute(select(func.count(users.c.last_login))).scalar_one()

        if self.config.options["active_by"] == "session_activity":
            sessions = source.relations["sessions"]
            user_id, last_active = sessions.c.user_id, sessions.c.last_activity
        else:
            activity = source.relations["activity"]
            user_id, last_active = activity.c.user_id, activity.c.last_active
        windows = self.config.options["windows"]

        def within(window: float) -> ColumnElement[bool]:
            since = source.now - window
            return last_active >= since if source.inclusive_windows else last_active > since

        active = conn.execute(select(*(
            func.count(distinct(case((within(window), user_id)))) for window in windows))).one()

        rows = conn.execute(select(users.c.user_id, *(users.c[c] for c in USER_COLUMNS)))
        columns: dict[str, dict[str, object]] = {c: {} for c in USER_COLUMNS}
        for row in rows:
            for column, value in zip(USER_COLUMNS, row[1:], strict=True):
                columns[column][row.user_id] = value

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
