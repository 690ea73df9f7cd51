"""Live sessions by client class, and users with at least one live session."""

from __future__ import annotations

from sqlalchemy import Subquery, case, distinct, func, or_, select

from collectors.base import REFRESH_NOTE, Collector, CollectorResult, Gauge, Source
from exporter.usercolumns import user_columns

# Checked in order against the lower-cased user agent or device name. Sync and mobile apps send
# browser-like agents, so they are recognised first; a browser on a phone is a web session.
CLIENT_CLASSES = (
    ("desktop", ("%mirall/%", "%electron/%", "%desktop%")),
    ("mobile", ("%nextcloud-android%", "%nextcloud-ios%", "%owncloud-android%",
                "%owncloud-ios%", "%owncloudapp%", "%davx5%", "%element/%")),
    ("web", ("%mozilla/%", "%opera%")),
    ("mobile", ("%android%", "%ios%", "%iphone%", "%ipad%")),
)
CLIENTS = ("desktop", "mobile", "web", "other")


def live_sessions(source: Source) -> Subquery:
    """The sessions not expired by the exporter's clock (so --as-of moves it too)."""
    sessions = source.relations["sessions"]
    expires_at = sessions.c.expires_at
    return (select(sessions).where(or_(expires_at.is_(None), expires_at > source.now))
            .subquery("live_sessions"))


class SessionsCollector(Collector):
    name = "sessions"
    relations = ("sessions",)

    def collect(self, source: Source) -> CollectorResult:
        sessions = live_sessions(source)
        client = func.lower(func.coalesce(sessions.c.client, ""))
        client_class = case(
            *((client.like(pattern), name) for name, patterns in CLIENT_CLASSES
              for pattern in patterns),
            else_="other",
        ).label("client_class")
        by_client = dict.fromkeys(CLIENTS, 0) | dict(source.conn.execute(
            select(client_class, func.count()).select_from(sessions)
            .group_by(client_class)).all())
        concurrent = source.conn.execute(
            select(func.count(distinct(sessions.c.user_id)))).scalar_one()
        per_user = user_columns(source.conn.execute(
            select(sessions.c.user_id, func.count()).group_by(sessions.c.user_id)),
            ("sessions",))
        return CollectorResult(
            metrics=(
                Gauge.single("usage_users_concurrent",
                             "Distinct users with at least one live session. " + REFRESH_NOTE,
                             concurrent),
                Gauge.by("usage_sessions", "Live sessions by client class. " + REFRESH_NOTE,
                         "client", by_client),
            ),
            users=per_user,
        )
