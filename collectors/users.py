"""Accounts by status, and distinct users active within trailing windows."""

from __future__ import annotations

from sqlalchemy import case, distinct, func, select

from collectors.base import REFRESH_NOTE, Collector, CollectorResult, Gauge, Source
from exporter.config import Option, choice, duration_label, duration_list

# Nextcloud's serverinfo windows plus ownCloud's 14 days (its activeUsersCount).
DEFAULT_WINDOWS = (300.0, 3600.0, 86400.0, 604800.0, 1209600.0, 2592000.0, 7776000.0,
                   15552000.0, 31536000.0)
USER_COLUMNS = ("display_name", "backend", "status", "is_admin", "created_at", "last_login")


class UsersCollector(Collector):
    name = "users"
    relations = ("users",)
    optional_relations = ("sessions",)
    options = {
        "windows": Option(duration_list, DEFAULT_WINDOWS),
        # last_login: the platform's last-login time (Nextcloud serverinfo since 2025, ownCloud);
        # session_activity: last use of a session token (serverinfo up to Nextcloud 29).
        "active_by": Option(choice("last_login", "session_activity"), "last_login"),
    }

    def collect(self, source: Source) -> CollectorResult:
        users = source.relations["users"]
        conn = source.conn
        by_status = dict(conn.execute(
            select(users.c.status, func.count()).group_by(users.c.status)).all())
        seen = conn.execute(select(func.count(users.c.last_login))).scalar_one()

        if self.config.options["active_by"] == "session_activity":
            activity = source.relations["sessions"]
            user_id, last_active = activity.c.user_id, activity.c.last_activity
        else:
            user_id, last_active = users.c.user_id, users.c.last_login
        windows = self.config.options["windows"]
        active = conn.execute(select(*(
            func.count(distinct(case((last_active >= source.now - window, user_id))))
            for window in windows))).one()

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
