"""Matrix Synapse: numbers as Synapse's admin API and phone-home stats define them.

Sources: docs/platforms/synapse.md (read from the matrix-synapse 1.163.2 source and checked
against a live server). Units differ by table: users.creation_ts is seconds, every other
timestamp here is milliseconds. Synapse has no table prefix, so database.table_prefix is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Integer,
    Select,
    SmallInteger,
    String,
    TableClause,
    case,
    column,
    false,
    func,
    or_,
    select,
    table,
    true,
)

from exporter.config import DatabaseConfig
from exporter.platforms.base import Profile, never_expires

# Synapse's booleans are SMALLINT (0/1) in older columns and BOOLEAN in newer ones (real booleans
# on PostgreSQL), so each column is typed as declared and compared in a way both accept.
_USERS = table("users", column("name", String), column("creation_ts", BigInteger),
               column("admin", SmallInteger), column("is_guest", SmallInteger),
               column("deactivated", SmallInteger), column("appservice_id", String),
               column("user_type", String), column("shadow_banned", Boolean),
               column("locked", Boolean), column("suspended", Boolean),
               column("approved", Boolean))
_PROFILES = table("profiles", column("full_user_id", String), column("displayname", String))
_USER_IPS = table("user_ips", column("user_id", String), column("last_seen", BigInteger))
_DEVICES = table("devices", column("user_id", String), column("display_name", String),
                 column("user_agent", String), column("last_seen", BigInteger),
                 column("hidden", Boolean))
_DAILY_VISITS = table("user_daily_visits", column("user_id", String),
                      column("timestamp", BigInteger), column("user_agent", String))
_ROOMS = table("rooms", column("room_id", String))
_EVENTS = table("events", column("stream_ordering", BigInteger), column("received_ts", BigInteger),
                column("type", String), column("room_id", String), column("sender", String))
# Phone-home counts these two event types as messages (metrics.py count_daily_*messages).
_MESSAGE_TYPES = ("m.room.message", "m.room.encrypted")
# r30v2's client classes, tried on the lower-cased user agent in this order (metrics.py
# count_r30v2_users): Element and Riot apps by platform, then any browser; the rest is unknown.
_ELEMENT_APPS = ("%riot%", "%element%")
_ELEMENT_PLATFORMS = (("electron", "%electron%"), ("android", "%android%"), ("ios", "%ios%"))
_BROWSERS = ("%mozilla%", "%gecko%")
_MEDIA = table("local_media_repository", column("user_id", String),
               column("media_length", Integer), column("created_ts", BigInteger))
_SCHEMA_VERSION = table("schema_version", column("version", Integer))


@dataclass(frozen=True)
class SynapseEngine:
    """Where the database Synapse runs on answers Synapse's SQL its own way
    (docs/platforms/synapse.md, "On PostgreSQL", seen on Synapse 1.163 on SQLite 3.40 and on
    PostgreSQL 15): how the media statistics' search term, a LIKE pattern without ESCAPE,
    matches, and where NULL sorts. Text sorts by code point on both (BINARY collation; the C
    collation Synapse requires of PostgreSQL). Rows with equal sort keys have no order on either."""

    name: str
    # SQLite's LIKE takes an ASCII letter in either case; PostgreSQL's is case-sensitive.
    like_folds_ascii_case: bool
    # PostgreSQL's LIKE takes a backslash as its default escape; SQLite's has none.
    like_escape: str | None
    # SQLite sorts NULL as the smallest value; PostgreSQL as the largest (last ascending).
    null_sorts_first: bool


SYNAPSE_ON_SQLITE = SynapseEngine("sqlite", like_folds_ascii_case=True, like_escape=None,
                                  null_sorts_first=True)
SYNAPSE_ON_POSTGRESQL = SynapseEngine("postgresql", like_folds_ascii_case=False,
                                      like_escape="\\", null_sorts_first=False)


def synapse_engine(database: DatabaseConfig) -> SynapseEngine:
    """The engine of the homeserver whose database we read. Synapse runs on SQLite or
    PostgreSQL only, so a PostgreSQL database is one Synapse runs on and a database of any other
    kind (MariaDB, say) is a copy of a SQLite one, answered as SQLite answers."""
    if database.sqlalchemy_url().get_backend_name() == "postgresql":
        return SYNAPSE_ON_POSTGRESQL
    return SYNAPSE_ON_SQLITE


def _seconds(ms: Any) -> Any:
    """Milliseconds to fractional seconds, keeping window edges exact: SQLAlchemy's true
    division of integers gives an exact decimal on PostgreSQL and MariaDB and the nearest double
    on SQLite. Doubles near today's timestamps are ~1e-7 s apart, far finer than 1 ms, and a
    request exactly at now - window maps to the same double as the bound, so strict edges hold
    (tests check every recorded request as an edge)."""
    return ms / 1000


def _whole_seconds(ms: Any) -> Any:
    """Milliseconds to whole seconds, rounded down (integer division on every backend)."""
    return ms // 1000


class SynapseProfile(Profile):
    name = "synapse"
    # Phone-home DAU/MAU count user_ips rows with last_seen > now - window (strict).
    activity_window_inclusive = False
    # A schema version spans several releases (1.163.2 has 94); no table names the release.
    version_kind = "database schema"

    def __init__(self, database: DatabaseConfig) -> None:
        super().__init__(database)
        self.engine = synapse_engine(database)

    # --- relations ---

    def users(self, conn: Connection) -> Select:
        """One row per account. last_login is the admin API's last_seen_ts: the latest device
        activity, else the latest client IP record (ms there, whole seconds here)."""
        users, profiles = _USERS, _PROFILES
        appservice = func.nullif(users.c.appservice_id, "")
        device_seen = (select(_DEVICES.c.user_id, func.max(_DEVICES.c.last_seen).label("seen"))
                       .group_by(_DEVICES.c.user_id).subquery("device_seen"))
        ip_seen = (select(_USER_IPS.c.user_id, func.max(_USER_IPS.c.last_seen).label("seen"))
                   .group_by(_USER_IPS.c.user_id).subquery("ip_seen"))
        last_seen_ms = func.coalesce(device_seen.c.seen, ip_seen.c.seen, type_=BigInteger)
        return (
            select(users.c.name.label("user_id"),
                   profiles.c.displayname.label("display_name"),
                   func.coalesce(appservice, "native").label("backend"),
                   self._status(users, appservice).label("status"),
                   case((users.c.admin != 0, 1), else_=0).label("is_admin"),
                   users.c.creation_ts.label("created_at"),
                   _whole_seconds(last_seen_ms).label("last_login"))
            .select_from(users)
            .outerjoin(profiles, profiles.c.full_user_id == users.c.name)
            .outerjoin(device_seen, device_seen.c.user_id == users.c.name)
            .outerjoin(ip_seen, ip_seen.c.user_id == users.c.name)
        )

    def activity(self, conn: Connection) -> Select:
        # Every recorded request, of every account (phone-home applies no user filter).
        ips = _USER_IPS
        return select(ips.c.user_id.label("user_id"),
                      _seconds(ips.c.last_seen).label("last_active"))

    def daily_activity(self, conn: Connection) -> Select:
        # timestamp is 00:00 UTC of the day in ms, so the division is exact.
        visits = _DAILY_VISITS
        return select(visits.c.user_id.label("user_id"),
                      _whole_seconds(visits.c.timestamp).label("day"))

    def sessions(self, conn: Connection) -> Select:
        """Logged-in devices, as the admin devices API lists them. Hidden rows are not devices:
        Synapse stores each cross-signing public key as a hidden device so that signature ids
        cannot collide with device ids, and its device APIs skip them."""
        devices = _DEVICES
        return (select(devices.c.user_id.label("user_id"),
                       func.coalesce(devices.c.user_agent, devices.c.display_name)
                       .label("client"),
                       _seconds(devices.c.last_seen).label("last_activity"),
                       never_expires())
                .where(devices.c.hidden.is_not(true())))

    def media(self, conn: Connection) -> Select:
        """Every local media row, as the media statistics API counts them: quarantined, pending
        (no length yet) and URL-preview rows included; thumbnails and remote media are other
        tables."""
        media, profiles = _MEDIA, _PROFILES
        return (select(media.c.user_id.label("user_id"),
                       profiles.c.displayname.label("display_name"),
                       media.c.media_length.label("bytes"),
                       media.c.created_ts.label("created_ms"))
                .select_from(media)
                .outerjoin(profiles, profiles.c.full_user_id == media.c.user_id))

    def registrations(self, conn: Connection) -> Select:
        """Phone-home's user types (registration.py count_daily_user_type): bridged when an
        appservice registered the account (appservice_id set, even ''), else guest or native.
        Synapse's CASE gives a guest registered by an appservice no type, and its phone-home
        would then fail adding 'daily_user_type_' to None; here such an account is bridged."""
        users = _USERS
        kind = case((users.c.appservice_id.is_not(None), "bridged"),
                    (users.c.is_guest != 0, "guest"), else_="native")
        return select(kind.label("type"), users.c.creation_ts.label("created_at"))

    def rooms(self, conn: Connection) -> Select:
        return select(_ROOMS.c.room_id.label("room_id"))

    def event_stream(self, conn: Connection) -> Select:
        """Every row of events, outliers and backfilled events (negative positions) included, as
        Synapse searches them for the position a day ago."""
        events = _EVENTS
        return select(events.c.stream_ordering.label("position"),
                      events.c.received_ts.label("received_ms"))

    def messages(self, conn: Connection) -> Select:
        """Sent by a local account means, as Synapse checks it, a sender ending in
        ':<server name>' by the engine's own LIKE (case-insensitive for ASCII on SQLite,
        case-sensitive on PostgreSQL)."""
        events = _EVENTS
        server_name = self._server_name(conn)
        local = (events.c.sender.like(f"%:{server_name}") if server_name is not None
                 else false())
        return (select(events.c.stream_ordering.label("position"),
                       events.c.room_id.label("room_id"),
                       case((events.c.type == "m.room.encrypted", 1), else_=0).label("encrypted"),
                       case((local, 1), else_=0).label("local"))
                .where(events.c.type.in_(_MESSAGE_TYPES)))

    def daily_visits(self, conn: Connection) -> Select:
        visits = _DAILY_VISITS
        agent = func.lower(visits.c.user_agent)

        def matches(patterns: tuple[str, ...]) -> Any:
            return or_(*(agent.like(pattern) for pattern in patterns))

        client = case(
            (matches(_ELEMENT_APPS), case(*((agent.like(pattern), name)
                                            for name, pattern in _ELEMENT_PLATFORMS))),
            (matches(_BROWSERS), "web"))
        return select(visits.c.user_id.label("user_id"), visits.c.timestamp.label("day_ms"),
                      client.label("client"))

    def version(self, conn: Connection) -> str:
        """The database schema version (94 for Synapse 1.163); the release is not recorded."""
        found = conn.execute(select(_SCHEMA_VERSION.c.version)).scalar()
        return "" if found is None else str(found)

    # --- shared pieces ---

    @staticmethod
    def _server_name(conn: Connection) -> str | None:
        """The homeserver's name (Synapse's hostname), which no table records by itself: every
        account in users is local, and a user id is @localpart:server_name, the localpart
        without ':'. None on a server with no account."""
        name = conn.execute(select(_USERS.c.name).limit(1)).scalar()
        return None if name is None else name.partition(":")[2]

    @staticmethod
    def _status(users: TableClause, appservice: Any) -> Any:
        """One status per account, the first that applies: deactivated, locked, suspended,
        awaiting_approval, shadow_banned, guest, the user_type (support, bot, or an extra
        type), bridged (registered by an appservice), else enabled."""
        return case(
            (users.c.deactivated != 0, "deactivated"),
            (users.c.locked.is_(true()), "locked"),
            (users.c.suspended.is_(true()), "suspended"),
            # NULL = accounts from before approval existed; they are approved.
            (users.c.approved.is_not(None) & users.c.approved.is_not(true()),
             "awaiting_approval"),
            (users.c.shadow_banned.is_(true()), "shadow_banned"),
            (users.c.is_guest != 0, "guest"),
            (users.c.user_type.is_not(None) & (users.c.user_type != ""), users.c.user_type),
            (appservice.is_not(None), "bridged"),
            else_="enabled",
        )
