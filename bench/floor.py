"""The floor of each collector: the same aggregates as hand-written SQL, run straight on a DBAPI
connection (sqlite3 or psycopg), every row fetched.

One statement per query the collector runs, written as someone who knows the schema would write
it (unique keys known, timestamps compared in their stored unit so indexes apply). Each function
returns the headline numbers it computed, named as snapshot_json names them, so the benchmark can
check that the floor and the exporter answer the same question before comparing their times.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from bench.generate import SERVER_NAME
from collectors.base import BYTE_BOUNDS
from collectors.storage import QUOTA_RATIO_BOUNDS
from collectors.users import DEFAULT_WINDOWS
from exporter.config import duration_label
from exporter.platforms.owncloud import quota_bytes

FLOOR_SHARE_TYPES = {0: "user", 1: "group", 3: "link", 4: "email", 6: "federated", 7: "team",
                     8: "guest", 9: "federated_group", 10: "room", 12: "deck"}
# The sessions collector's client classes, as one CASE over the lower-cased client name.
CLIENT_CASE = """CASE
    WHEN c LIKE '%mirall/%' OR c LIKE '%electron/%' OR c LIKE '%desktop%' THEN 'desktop'
    WHEN c LIKE '%nextcloud-android%' OR c LIKE '%nextcloud-ios%' OR c LIKE '%owncloud-android%'
      OR c LIKE '%owncloud-ios%' OR c LIKE '%owncloudapp%' OR c LIKE '%davx5%'
      OR c LIKE '%element/%' THEN 'mobile'
    WHEN c LIKE '%mozilla/%' OR c LIKE '%opera%' THEN 'web'
    WHEN c LIKE '%android%' OR c LIKE '%ios%' OR c LIKE '%iphone%' OR c LIKE '%ipad%'
      THEN 'mobile'
    ELSE 'other' END"""


class Floor:
    """A DBAPI connection with the statement placeholders of its driver."""

    def __init__(self, conn: Any, backend: str) -> None:
        self.conn = conn
        self.backend = backend

    @classmethod
    def connect(cls, url: str) -> Floor:
        """Opened as the exporter opens it: SQLite read-only, PostgreSQL read-only sessions."""
        if url.startswith("sqlite:///"):
            path = url.removeprefix("sqlite:///")
            return cls(sqlite3.connect(f"file:{path}?mode=ro", uri=True), "sqlite")
        import psycopg

        from bench.generate import postgres_conninfo

        conn = psycopg.connect(postgres_conninfo(url), autocommit=True,
                               options="-c default_transaction_read_only=on")
        return cls(conn, "postgresql")

    def all(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        if self.backend == "postgresql":
            # psycopg: %(name)s placeholders, literal % doubled. 'object::user:' is no placeholder.
            sql = re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql.replace("%", "%%"))
        cursor = self.conn.execute(sql, params)
        return list(cursor.fetchall())

    def one(self, sql: str, **params: Any) -> tuple[Any, ...]:
        return self.all(sql, **params)[0]

    def close(self) -> None:
        self.conn.close()


def buckets_sql(value: str, bounds: Sequence[float]) -> str:
    return ", ".join(f"SUM(CASE WHEN {value} <= {bound!r} THEN 1 ELSE 0 END)" for bound in bounds)


def window_counts(db: Floor, count: str, source: str, now: float,
                  windows: Sequence[float] = DEFAULT_WINDOWS, scale: int = 1) -> dict[str, int]:
    """Users per trailing window, every window in one pass: `count` is an aggregate with a
    {since} slot, `source` the FROM clause; `scale` turns seconds into the stored unit."""
    columns = ", ".join(count.format(since=f":since{n}") for n in range(len(windows)))
    params = {f"since{n}": int((now - w) * scale) for n, w in enumerate(windows)}
    row = db.one(f"SELECT {columns} {source}", **params)
    return {duration_label(w): int(v or 0) for w, v in zip(windows, row, strict=True)}


# --- Nextcloud ------------------------------------------------------------------------------

NC_STATUS = "CASE WHEN e.configvalue = 'false' THEN 'disabled' ELSE 'enabled' END"
NC_ENABLED = ("LEFT JOIN oc_preferences e ON e.userid = u.uid AND e.appid = 'core' "
              "AND e.configkey = 'enabled'")
NC_LAST_LOGIN = "appid = 'login' AND configkey = 'lastLogin'"
NC_FOLDER = "(SELECT id FROM oc_mimetypes WHERE mimetype = 'httpd/unix-directory')"
# Each user's home storage: its 'files' folder and the files (not folders) under it.
NC_HOME = f"""
SELECT m.user_id, r.size AS used_bytes, COALESCE(f.files, 0) AS files
FROM oc_mounts m
JOIN oc_storages s ON s.numeric_id = m.storage_id
JOIN oc_filecache r ON r.storage = s.numeric_id AND r.path = 'files'
LEFT JOIN (SELECT storage, COUNT(*) AS files FROM oc_filecache
           WHERE path LIKE 'files/%' AND mimetype <> {NC_FOLDER}
           GROUP BY storage) f ON f.storage = s.numeric_id
WHERE m.mount_point = '/' || m.user_id || '/'
  AND (s.id LIKE '%::' || m.user_id OR s.id LIKE 'object::user:' || m.user_id)"""


def nextcloud_users(db: Floor, now: float) -> dict[str, Any]:
    by_status = dict(db.all(f"SELECT {NC_STATUS}, COUNT(*) FROM oc_users u {NC_ENABLED} "
                            "GROUP BY 1"))
    seen = db.one("SELECT COUNT(*) FROM oc_users u JOIN oc_preferences l ON l.userid = u.uid "
                  "AND l.appid = 'login' AND l.configkey = 'lastLogin'")[0]
    # (userid, appid, configkey) is the primary key: one lastLogin per user, no DISTINCT.
    active = window_counts(db, "SUM(CASE WHEN CAST(configvalue AS BIGINT) >= {since} THEN 1 "
                           "ELSE 0 END)", f"FROM oc_preferences WHERE {NC_LAST_LOGIN}", now)
    db.all(f"""
        SELECT u.uid, u.displayname, 'Database', {NC_STATUS},
               CASE WHEN a.uid IS NULL THEN 0 ELSE 1 END, NULL, CAST(l.configvalue AS BIGINT)
        FROM oc_users u {NC_ENABLED}
        LEFT JOIN oc_preferences l ON l.userid = u.uid AND l.appid = 'login'
          AND l.configkey = 'lastLogin'
        LEFT JOIN oc_group_user a ON a.uid = u.uid AND a.gid = 'admin'""")
    return {"usage_users": by_status, "usage_users_seen": seen, "usage_users_active": active}


def nextcloud_sessions(db: Floor, now: float) -> dict[str, Any]:
    # Type 2 tokens mark a pending remote wipe, not a session.
    by_client = dict(db.all(f"SELECT {CLIENT_CASE}, COUNT(*) FROM (SELECT LOWER(name) AS c "
                            "FROM oc_authtoken WHERE type <> 2) t GROUP BY 1"))
    concurrent = db.one("SELECT COUNT(DISTINCT uid) FROM oc_authtoken WHERE type <> 2")[0]
    db.all("SELECT uid, COUNT(*) FROM oc_authtoken WHERE type <> 2 GROUP BY uid")
    return {"usage_sessions": by_client, "usage_users_concurrent": concurrent}


def nextcloud_shares(db: Floor, now: float) -> dict[str, Any]:
    types = ", ".join(map(str, FLOOR_SHARE_TYPES))
    totals = db.all("SELECT share_type, COUNT(*), SUM(CASE WHEN password IS NULL THEN 1 ELSE 0 "
                    f"END) FROM oc_share WHERE share_type IN ({types}) GROUP BY share_type")
    db.all(f"SELECT uid_owner, share_type, COUNT(*) FROM oc_share WHERE share_type IN ({types}) "
           "GROUP BY uid_owner, share_type")
    received = db.one("SELECT COUNT(*) FROM oc_share_external")[0]
    return {"usage_shares": {FLOOR_SHARE_TYPES[t]: n for t, n, _ in totals},
            "usage_link_shares_without_password": sum(free for t, _, free in totals if t == 3),
            "usage_federated_shares_received": received}


def nextcloud_storage(db: Floor, now: float) -> dict[str, Any]:
    count, used_sum, files, *_ = db.one(
        f"SELECT COUNT(*), COALESCE(SUM(used_bytes), 0), COALESCE(SUM(files), 0), "
        f"{buckets_sql('used_bytes', BYTE_BOUNDS)} FROM ({NC_HOME}) h")
    used = db.one("SELECT COALESCE(SUM(size), 0) FROM oc_filecache WHERE parent = -1 "
                  "AND size > 0")[0]
    kinds = dict(db.all("""
        SELECT CASE WHEN id LIKE 'home::%' THEN 'home' WHEN id LIKE 'local::%' THEN 'local'
               ELSE 'other' END, COUNT(*) FROM oc_storages GROUP BY 1"""))
    entries = db.one("SELECT COUNT(*) FROM oc_filecache f "
                     "JOIN oc_storages s ON s.numeric_id = f.storage")[0]
    db.all(NC_HOME)
    # The quota relation: the specs as stored and the default, then one CASE to bytes.
    default = (db.all("SELECT configvalue FROM oc_appconfig WHERE appid = 'files' "
                      "AND configkey = 'default_quota'") or [("none",)])[0][0]
    quota = ("LEFT JOIN oc_preferences q ON q.userid = u.uid AND q.appid = 'files' "
             "AND q.configkey = 'quota'")
    specs = {spec for spec, in db.all(f"SELECT DISTINCT q.configvalue FROM oc_users u {quota}")}
    spec = (f"CASE WHEN q.configvalue IS NULL OR q.configvalue = 'default' THEN '{default}' "
            "ELSE q.configvalue END")
    whens = " ".join(f"WHEN {spec} = '{s}' THEN {quota_bytes(s)}"
                     for s in sorted(filter(None, specs | {default}))
                     if quota_bytes(s) is not None)
    quotas = f"SELECT u.uid AS user_id, CASE {whens} END AS quota_bytes FROM oc_users u {quota}"
    ratio = "CAST(COALESCE(h.used_bytes, 0) AS DOUBLE PRECISION) / q.quota_bytes"
    over = db.one(f"""
        SELECT COUNT(*), SUM(CASE WHEN COALESCE(h.used_bytes, 0) > q.quota_bytes THEN 1 ELSE 0
               END), {buckets_sql(ratio, QUOTA_RATIO_BOUNDS)}
        FROM ({quotas}) q LEFT JOIN ({NC_HOME}) h ON h.user_id = q.user_id
        WHERE q.quota_bytes > 0""")[1]
    db.all(quotas)
    return {"usage_files": files, "usage_storage_used_bytes": used,
            "usage_storages": kinds, "usage_file_cache_entries": entries,
            "usage_users_over_quota": over or 0,
            "usage_user_storage_used_bytes": {"count": count, "sum": used_sum}}


def nextcloud_dau(db: Floor, now: float) -> dict[str, Any]:
    # Users active since yesterday 00:00 in the collector's one time zone (UTC).
    since = int(now // 86400 * 86400 - 86400)
    db.all(f"SELECT userid, CAST(configvalue AS BIGINT) FROM oc_preferences WHERE "
           f"{NC_LAST_LOGIN} AND CAST(configvalue AS BIGINT) BETWEEN :since AND :now",
           since=since, now=int(now))
    db.all(f"SELECT {NC_STATUS}, COUNT(*) FROM oc_users u {NC_ENABLED} GROUP BY 1")
    return {}


# --- Synapse --------------------------------------------------------------------------------

SY_STATUS = """CASE
    WHEN u.deactivated <> 0 THEN 'deactivated'
    WHEN u.locked IS TRUE THEN 'locked'
    WHEN u.suspended IS TRUE THEN 'suspended'
    WHEN u.approved IS NOT NULL AND u.approved IS NOT TRUE THEN 'awaiting_approval'
    WHEN u.shadow_banned IS TRUE THEN 'shadow_banned'
    WHEN u.is_guest <> 0 THEN 'guest'
    WHEN u.user_type IS NOT NULL AND u.user_type <> '' THEN u.user_type
    WHEN NULLIF(u.appservice_id, '') IS NOT NULL THEN 'bridged'
    ELSE 'enabled' END"""
SY_LAST_SEEN = """
LEFT JOIN (SELECT user_id, MAX(last_seen) AS seen FROM devices GROUP BY user_id) d
  ON d.user_id = u.name
LEFT JOIN (SELECT user_id, MAX(last_seen) AS seen FROM user_ips GROUP BY user_id) i
  ON i.user_id = u.name"""


def synapse_users(db: Floor, now: float) -> dict[str, Any]:
    by_status = dict(db.all(f"SELECT {SY_STATUS}, COUNT(*) FROM users u GROUP BY 1"))
    seen = db.one(f"SELECT COUNT(COALESCE(d.seen, i.seen)) FROM users u {SY_LAST_SEEN}")[0]
    # Phone-home counts every request of every account, strictly within the window.
    active = window_counts(db, "COUNT(DISTINCT CASE WHEN last_seen > {since} THEN user_id END)",
                           "FROM user_ips", now, scale=1000)
    db.all(f"""
        SELECT u.name, p.displayname, COALESCE(NULLIF(u.appservice_id, ''), 'native'),
               {SY_STATUS}, CASE WHEN u.admin <> 0 THEN 1 ELSE 0 END, u.creation_ts,
               COALESCE(d.seen, i.seen) / 1000
        FROM users u LEFT JOIN profiles p ON p.full_user_id = u.name {SY_LAST_SEEN}""")
    return {"usage_users": by_status, "usage_users_seen": seen, "usage_users_active": active}


def synapse_sessions(db: Floor, now: float) -> dict[str, Any]:
    live = "FROM devices WHERE hidden IS NOT TRUE"
    by_client = dict(db.all(f"SELECT {CLIENT_CASE}, COUNT(*) FROM (SELECT "
                            f"LOWER(COALESCE(user_agent, display_name, '')) AS c {live}) t "
                            "GROUP BY 1"))
    concurrent = db.one(f"SELECT COUNT(DISTINCT user_id) {live}")[0]
    db.all(f"SELECT user_id, COUNT(*) {live} GROUP BY user_id")
    return {"usage_sessions": by_client, "usage_users_concurrent": concurrent}


def synapse_media(db: Floor, now: float) -> dict[str, Any]:
    files, total, sized = db.one("SELECT COUNT(*), COALESCE(SUM(media_length), 0), "
                                 "COUNT(media_length) FROM local_media_repository")
    per_user = ("SELECT user_id, COUNT(*) AS n, SUM(media_length) AS b FROM "
                "local_media_repository WHERE user_id IS NOT NULL GROUP BY user_id")
    users = db.one(f"SELECT COUNT(*), COALESCE(SUM(COALESCE(b, 0)), 0), "
                   f"{buckets_sql('COALESCE(b, 0)', BYTE_BOUNDS)} FROM ({per_user}) p")[0]
    db.all(per_user)
    return {"usage_media_files": files, "usage_media_bytes": total,
            "usage_media_pending_uploads": files - sized,
            "usage_user_media_bytes": {"count": users}}


def synapse_dau(db: Floor, now: float, backfill_days: int = 61) -> dict[str, Any]:
    since = now // 86400 * 86400 - 86400
    db.all("SELECT DISTINCT user_id, last_seen FROM user_ips WHERE last_seen >= :since "
           "AND last_seen <= :now", since=int(since * 1000), now=int(now * 1000))
    db.all("SELECT DISTINCT user_id, timestamp FROM user_daily_visits WHERE timestamp >= :since",
           since=int((now - (backfill_days + 1) * 86400) * 1000))
    db.all(f"SELECT {SY_STATUS}, COUNT(*) FROM users u GROUP BY 1")
    return {}


def synapse_rooms(db: Floor, now: float) -> dict[str, Any]:
    return {"usage_rooms": db.one("SELECT COUNT(*) FROM rooms")[0]}


def synapse_messages(db: Floor, now: float) -> dict[str, Any]:
    """Phone-home's day: after the first stream position received at or after a day ago, found
    by Synapse's binary search (received_ts has no index), then one pass over the day."""
    high = (db.one("SELECT MAX(stream_ordering) FROM events")[0] or -1) + 1
    low, since_ms = 0, int(now * 1000) - 86_400_000
    while low < high:
        middle = (low + high) // 2
        row = db.all("SELECT received_ts FROM events WHERE stream_ordering <= :p "
                     "ORDER BY stream_ordering DESC LIMIT 1", p=middle)
        if not row or row[0][0] < since_ms:
            low = middle + 1
        else:
            high = middle
    # Per room, then per type: a hash aggregate, where COUNT(DISTINCT room_id) would sort.
    rows = db.all("SELECT type, SUM(n), SUM(l), COUNT(*) FROM (SELECT type, room_id, COUNT(*) "
                  "AS n, SUM(CASE WHEN sender LIKE :local THEN 1 ELSE 0 END) AS l FROM events "
                  "WHERE type IN ('m.room.message', 'm.room.encrypted') AND stream_ordering > "
                  ":since GROUP BY type, room_id) r GROUP BY type",
                  local=f"%:{SERVER_NAME}", since=high)
    messages, rooms = {}, {}
    for kind, total, local, active in rows:
        encrypted = str(kind == "m.room.encrypted").lower()
        messages[f"window=1d,encrypted={encrypted},origin=local"] = local
        messages[f"window=1d,encrypted={encrypted},origin=remote"] = total - local
        rooms[f"window=1d,encrypted={encrypted}"] = active
    return {"usage_messages": messages, "usage_rooms_active": rooms}


SY_R30_CLIENT = """CASE
    WHEN LOWER(user_agent) LIKE '%riot%' OR LOWER(user_agent) LIKE '%element%' THEN CASE
        WHEN LOWER(user_agent) LIKE '%electron%' THEN 'electron'
        WHEN LOWER(user_agent) LIKE '%android%' THEN 'android'
        WHEN LOWER(user_agent) LIKE '%ios%' THEN 'ios' END
    WHEN LOWER(user_agent) LIKE '%mozilla%' OR LOWER(user_agent) LIKE '%gecko%' THEN 'web'
    END"""
R30_CLIENTS = ("android", "ios", "electron", "web")


def synapse_retention(db: Floor, now: float) -> dict[str, Any]:
    """R30v2 in one scan of the 60 days: first and last day per user and client, then per
    user."""
    flags = ", ".join(f"MAX(CASE WHEN client = '{c}' AND last - first > :span THEN 1 ELSE 0 END)"
                      f" AS {c}" for c in R30_CLIENTS)
    retained, *by_client = db.one(f"""
        SELECT SUM(retained), {", ".join(f"SUM({c})" for c in R30_CLIENTS)} FROM (
          SELECT CASE WHEN MAX(last) - MIN(first) > :span THEN 1 ELSE 0 END AS retained, {flags}
          FROM (SELECT user_id, {SY_R30_CLIENT} AS client, MIN(timestamp) AS first,
                       MAX(timestamp) AS last
                FROM user_daily_visits WHERE timestamp > :since AND timestamp < :until
                GROUP BY user_id, 2) spans
          GROUP BY user_id) per_user""",
        span=30 * 86_400_000, since=(int(now) - 60 * 86400) * 1000,
        until=(int(now) + 86400) * 1000)
    return {"usage_users_retained": retained or 0,
            "usage_users_retained_by_client": dict(zip(R30_CLIENTS, by_client, strict=True))}


def synapse_registrations(db: Floor, now: float) -> dict[str, Any]:
    rows = db.all("SELECT CASE WHEN appservice_id IS NOT NULL THEN 'bridged' WHEN is_guest <> 0 "
                  "THEN 'guest' ELSE 'native' END, COUNT(*), SUM(CASE WHEN creation_ts > "
                  ":since THEN 1 ELSE 0 END) FROM users GROUP BY 1", since=int(now) - 86400)
    return {"usage_users_by_type": {kind: count for kind, count, _ in rows},
            "usage_users_registered": {f"window=1d,type={kind}": new for kind, _, new in rows}}


FloorFunction = Callable[[Floor, float], dict[str, Any]]
FLOORS: dict[str, dict[str, FloorFunction]] = {
    "nextcloud": {"users": nextcloud_users, "sessions": nextcloud_sessions,
                  "shares": nextcloud_shares, "storage": nextcloud_storage,
                  "dau": nextcloud_dau},
    "synapse": {"users": synapse_users, "sessions": synapse_sessions, "media": synapse_media,
                "dau": synapse_dau, "rooms": synapse_rooms, "messages": synapse_messages,
                "retention": synapse_retention, "registrations": synapse_registrations},
}
