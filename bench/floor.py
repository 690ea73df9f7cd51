"""The floor of each collector: the same numbers as the best hand-written SQL, run straight on a
DBAPI connection (sqlite3 or psycopg), every row fetched.

Written as a database engineer who knows the schema would write it, independently of the
exporter (nothing here imports its code): each join is asked for once, and what the per-user
rows already hold (sums, histograms, counts by status) is summed from them on the client
rather than asked of the database again. Unique keys are used where they make DISTINCT
needless, and timestamps are compared in their stored unit so that indexes apply.

Each function returns an Answer: every gauge and histogram the collector exposes, its per-user
rows as fetched, and the daily history it records, so that the benchmark can check that the
floor and the exporter give the same values before comparing their times.
"""

from __future__ import annotations

import bisect
import math
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from bench.generate import SERVER_NAME

# Bucket bounds of the per-user byte histograms (1 MiB, 4 MiB, ... 1 TiB) and of quota use.
BYTE_BOUNDS = tuple(float(1024**2 * 4**k) for k in range(11))
QUOTA_BOUNDS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)
# The users collector's default trailing windows, by their label.
WINDOWS = {"5m": 300, "1h": 3600, "1d": 86400, "7d": 604800, "14d": 1209600, "30d": 2592000,
           "90d": 7776000, "180d": 15552000, "365d": 31536000}
SHARE_TYPES = ("user", "group", "guest", "link", "email", "federated", "federated_group", "team",
               "room", "deck")
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
CLIENTS = ("desktop", "mobile", "web", "other")
# Quota units: the power of 1024 each stands for (none: bytes).
SIZE_POWERS = {"": 0, "b": 0, "k": 1, "kb": 1, "m": 2, "mb": 2, "g": 3, "gb": 3, "t": 4, "tb": 4,
               "p": 5, "pb": 5}


@dataclass
class Answer:
    """What one collector gives. metrics: a gauge as its value, or {label: value} with labels
    written name=value,... in name order; a histogram as {"le=<bound>": cumulative count, ...,
    "count": n, "sum": x}. users: (column names, rows of (user_id, *values)) per query, as
    fetched. history: (zone, day, user_id) activity and (zone, day, status, count) samples."""

    metrics: dict[str, Any] = field(default_factory=dict)
    users: list[tuple[tuple[str, ...], list[Sequence[Any]]]] = field(default_factory=list)
    history: dict[str, set[tuple[Any, ...]]] = field(default_factory=dict)


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

        conn = psycopg.connect(re.sub(r"^postgresql\+\w+://", "postgresql://", url),
                               autocommit=True, options="-c default_transaction_read_only=on")
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


def histogram(values: Iterable[float | None], bounds: Sequence[float]) -> dict[str, Any]:
    """Cumulative buckets of the values; a NULL counts in the count only."""
    values = list(values)
    present = sorted(v for v in values if v is not None)
    buckets = {f"le={float(b)!r}": bisect.bisect_right(present, b) for b in bounds}
    return buckets | {f"le={math.inf!r}": len(values), "count": len(values),
                      "sum": math.fsum(present)}


def counted(keys: Iterable[str], values: Iterable[Any], label: str) -> dict[str, int]:
    """{label=key: how many of `values` are key} for every key, 0 where none is."""
    counts = dict.fromkeys(keys, 0)
    for value in values:
        counts[value] += 1
    return {f"{label}={key}": n for key, n in counts.items()}


def windows_active(last_active: Iterable[float | None], now: float,
                   inclusive: bool = True) -> dict[str, int]:
    """Users per trailing window, from each user's one latest activity."""
    times = sorted(t for t in last_active if t is not None)
    find = bisect.bisect_left if inclusive else bisect.bisect_right
    return {f"window={label}": len(times) - find(times, now - seconds)
            for label, seconds in WINDOWS.items()}


def php_file_size(spec: str) -> int | None:
    """A quota as ownCloud's OC_Helper::computerFileSize reads it: '5 GB' is 5 * 1024**3
    (rounded half up, as PHP's round()); 'none' and anything unreadable are no limit."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", spec.strip().lower())
    if not match or match[2] not in SIZE_POWERS:
        return None
    return math.floor(float(match[1]) * 1024 ** SIZE_POWERS[match[2]] + 0.5)


# --- Nextcloud ------------------------------------------------------------------------------

NC_STATUS = "CASE WHEN e.configvalue = 'false' THEN 'disabled' ELSE 'enabled' END"
NC_ENABLED = ("LEFT JOIN oc_preferences e ON e.userid = u.uid AND e.appid = 'core' "
              "AND e.configkey = 'enabled'")
NC_LAST_LOGIN = "appid = 'login' AND configkey = 'lastLogin'"
NC_SHARE_TYPES = {0: "user", 1: "group", 3: "link", 4: "email", 6: "federated", 7: "team",
                  8: "guest", 9: "federated_group", 10: "room", 12: "deck"}
NC_IS_HOME = "(s.id LIKE '%::' || m.user_id OR s.id LIKE 'object::user:' || m.user_id)"


def nextcloud_users(db: Floor, now: float) -> Answer:
    """One pass over the accounts; statuses, seen and the windows are summed from its rows."""
    rows = db.all(f"""
        SELECT u.uid, u.displayname, 'Database', {NC_STATUS},
               CASE WHEN a.uid IS NULL THEN 0 ELSE 1 END, NULL, CAST(l.configvalue AS BIGINT)
        FROM oc_users u {NC_ENABLED}
        LEFT JOIN oc_preferences l ON l.userid = u.uid AND l.appid = 'login'
          AND l.configkey = 'lastLogin'
        LEFT JOIN oc_group_user a ON a.uid = u.uid AND a.gid = 'admin'""")
    last_login = [row[6] for row in rows]
    return Answer(
        {"usage_users": counted(("enabled", "disabled"), (row[3] for row in rows), "status"),
         "usage_users_seen": sum(t is not None for t in last_login),
         "usage_users_active": windows_active(last_login, now)},
        [(("display_name", "backend", "status", "is_admin", "created_at", "last_login"),
          rows)])


def nextcloud_sessions(db: Floor, now: float) -> Answer:
    # Type 2 tokens mark a pending remote wipe, not a session.
    by_client = db.all(f"SELECT {CLIENT_CASE}, COUNT(*) FROM (SELECT LOWER(name) AS c "
                       "FROM oc_authtoken WHERE type <> 2) t GROUP BY 1")
    per_user = db.all("SELECT uid, COUNT(*) FROM oc_authtoken WHERE type <> 2 GROUP BY uid")
    return Answer({"usage_sessions": {f"client={c}": 0 for c in CLIENTS}
                   | {f"client={c}": n for c, n in by_client},
                   "usage_users_concurrent": len(per_user)},
                  [(("sessions",), per_user)])


def nextcloud_shares(db: Floor, now: float) -> Answer:
    """Counted per owner and type once; the totals are the sums of those counts."""
    types = ", ".join(map(str, NC_SHARE_TYPES))
    counts = db.all("SELECT uid_owner, share_type, COUNT(*), SUM(CASE WHEN password IS NULL "
                    f"THEN 1 ELSE 0 END) FROM oc_share WHERE share_type IN ({types}) "
                    "GROUP BY uid_owner, share_type")
    received = db.one("SELECT COUNT(*) FROM oc_share_external")[0]
    totals = dict.fromkeys(SHARE_TYPES, 0)
    owners: dict[str, list[Any]] = {}
    for owner, share_type, count, _ in counts:
        kind = NC_SHARE_TYPES[share_type]
        totals[kind] += count
        owners.setdefault(owner, [owner, *(0,) * len(SHARE_TYPES)])[
            1 + SHARE_TYPES.index(kind)] = count
    return Answer({"usage_shares": {f"type={k}": n for k, n in totals.items()},
                   "usage_link_shares_without_password": sum(
                       free for _, share_type, _, free in counts if share_type == 3),
                   "usage_federated_shares_received": received},
                  [(tuple(f"shares_{kind}" for kind in SHARE_TYPES), list(owners.values()))])


def nextcloud_storage(db: Floor, now: float) -> Answer:
    """The home storage join once (each user's 'files' folder and the files under it); quotas as
    stored, read once and turned into bytes here; storages counted by kind with their entries
    in one pass."""
    home = db.all(f"""
        SELECT m.user_id, r.size, COALESCE(f.files, 0)
        FROM oc_mounts m
        JOIN oc_storages s ON s.numeric_id = m.storage_id
        JOIN oc_filecache r ON r.storage = s.numeric_id AND r.path = 'files'
        LEFT JOIN (SELECT storage, COUNT(*) AS files FROM oc_filecache
                   WHERE path LIKE 'files/%' AND mimetype <> (SELECT id FROM oc_mimetypes
                                                    WHERE mimetype = 'httpd/unix-directory')
                   GROUP BY storage) f ON f.storage = s.numeric_id
        WHERE m.mount_point = '/' || m.user_id || '/' AND {NC_IS_HOME}
        ORDER BY m.id""")
    used = db.one(f"""
        SELECT COALESCE(SUM(r.size), 0) FROM oc_filecache r
        JOIN oc_storages s ON s.numeric_id = r.storage
        JOIN oc_mounts m ON m.storage_id = s.numeric_id
        WHERE r.parent = -1 AND r.size > 0 AND {NC_IS_HOME}""")[0]
    kinds = db.all("""
        SELECT CASE WHEN s.id LIKE 'home::%' THEN 'home' WHEN s.id LIKE 'local::%' THEN 'local'
               ELSE 'other' END, COUNT(*), COALESCE(SUM(e.entries), 0)
        FROM oc_storages s
        LEFT JOIN (SELECT storage, COUNT(*) AS entries FROM oc_filecache GROUP BY storage) e
          ON e.storage = s.numeric_id
        GROUP BY 1""")
    default = (db.all("SELECT configvalue FROM oc_appconfig WHERE appid = 'files' "
                      "AND configkey = 'default_quota'") or [("none",)])[0][0]
    specs = db.all("SELECT u.uid, q.configvalue FROM oc_users u LEFT JOIN oc_preferences q "
                   "ON q.userid = u.uid AND q.appid = 'files' AND q.configkey = 'quota'")
    in_bytes: dict[Any, int | None] = {}  # a few distinct specs among all the users
    quotas = []
    for user, spec in specs:
        spec = default if spec is None or spec == "default" else spec
        if spec not in in_bytes:
            in_bytes[spec] = php_file_size(spec)
        quotas.append((user, in_bytes[spec]))
    home_used = {user: size for user, size, _ in home}
    limited = [((home_used.get(user) or 0), quota) for user, quota in quotas if quota and quota > 0]
    return Answer(
        {"usage_files": sum(files for _, _, files in home),
         "usage_storage_used_bytes": used,
         "usage_storage_files_bytes": sum(size for _, size, _ in home if size is not None),
         "usage_user_storage_used_bytes": histogram((size for _, size, _ in home), BYTE_BOUNDS),
         "usage_storages": {"kind=home": 0, "kind=local": 0, "kind=other": 0}
         | {f"kind={kind}": n for kind, n, _ in kinds},
         "usage_file_cache_entries": sum(entries for _, _, entries in kinds),
         "usage_user_quota_utilization_ratio": histogram(
             (u / q for u, q in limited), QUOTA_BOUNDS),
         "usage_users_over_quota": sum(u > q for u, q in limited)},
        [(("used_bytes", "files"), home), (("quota_bytes",), quotas)])


def nextcloud_dau(db: Floor, now: float) -> Answer:
    """Users whose last login fell yesterday or today (UTC), and today's accounts by status."""
    since = int(now // 86400 * 86400 - 86400)
    active = db.all(f"SELECT userid, CAST(configvalue AS BIGINT) FROM oc_preferences WHERE "
                    f"{NC_LAST_LOGIN} AND CAST(configvalue AS BIGINT) BETWEEN :since AND :now",
                    since=since, now=int(now))
    statuses = db.all(f"SELECT {NC_STATUS}, COUNT(*) FROM oc_users u {NC_ENABLED} GROUP BY 1")
    today = datetime.fromtimestamp(now, UTC).date()
    return Answer(history={
        "active": {("UTC", datetime.fromtimestamp(t, UTC).date(), user) for user, t in active},
        "statuses": {("UTC", today, status, n) for status, n in statuses}})


def nextcloud_apps(db: Floor, now: float) -> Answer:
    """Apps with an installed version; enabled unless 'enabled' is 'no' or missing."""
    rows = db.all("""
        SELECT i.appid, i.configvalue, CASE WHEN COALESCE(e.configvalue, 'no') = 'no'
               THEN 'disabled' ELSE 'enabled' END
        FROM oc_appconfig i LEFT JOIN oc_appconfig e
          ON e.appid = i.appid AND e.configkey = 'enabled'
        WHERE i.configkey = 'installed_version'""")
    return Answer({"usage_apps": counted(("enabled", "disabled"), (r[2] for r in rows), "state"),
                   "usage_app_info": {f"app={app},state={state},version={version or ''}": 1
                                      for app, version, state in rows}})


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


def synapse_users(db: Floor, now: float) -> Answer:
    rows = db.all(f"""
        SELECT u.name, p.displayname, COALESCE(NULLIF(u.appservice_id, ''), 'native'),
               {SY_STATUS}, CASE WHEN u.admin <> 0 THEN 1 ELSE 0 END, u.creation_ts,
               COALESCE(d.seen, i.seen) / 1000
        FROM users u LEFT JOIN profiles p ON p.full_user_id = u.name {SY_LAST_SEEN}""")
    # Phone-home counts every request of every account, strictly within the window.
    since = {label: int((now - seconds) * 1000) for label, seconds in WINDOWS.items()}
    columns = ", ".join(f"COUNT(DISTINCT CASE WHEN last_seen > :s{n} THEN user_id END)"
                        for n in range(len(since)))
    active = db.one(f"SELECT {columns} FROM user_ips",
                    **{f"s{n}": s for n, s in enumerate(since.values())})
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row[3]] = statuses.get(row[3], 0) + 1
    return Answer(
        {"usage_users": {f"status={s}": n for s, n in statuses.items()},
         "usage_users_seen": sum(row[6] is not None for row in rows),
         "usage_users_active": {f"window={label}": n
                                for label, n in zip(since, active, strict=True)}},
        [(("display_name", "backend", "status", "is_admin", "created_at", "last_login"),
          rows)])


def synapse_sessions(db: Floor, now: float) -> Answer:
    live = "FROM devices WHERE hidden IS NOT TRUE"
    by_client = db.all(f"SELECT {CLIENT_CASE}, COUNT(*) FROM (SELECT "
                       f"LOWER(COALESCE(user_agent, display_name, '')) AS c {live}) t GROUP BY 1")
    per_user = db.all(f"SELECT user_id, COUNT(*) {live} GROUP BY user_id")
    return Answer({"usage_sessions": {f"client={c}": 0 for c in CLIENTS}
                   | {f"client={c}": n for c, n in by_client},
                   "usage_users_concurrent": len(per_user)},
                  [(("sessions",), per_user)])


def synapse_media(db: Floor, now: float) -> Answer:
    files, total, sized = db.one("SELECT COUNT(*), COALESCE(SUM(media_length), 0), "
                                 "COUNT(media_length) FROM local_media_repository")
    per_user = db.all("SELECT user_id, COUNT(*), SUM(media_length) FROM local_media_repository "
                      "WHERE user_id IS NOT NULL GROUP BY user_id")
    return Answer({"usage_media_files": files, "usage_media_bytes": total,
                   "usage_media_pending_uploads": files - sized,
                   "usage_user_media_bytes": histogram((b or 0 for _, _, b in per_user),
                                                       BYTE_BOUNDS)},
                  [(("media_count", "media_bytes"), per_user)])


def synapse_dau(db: Floor, now: float, backfill_days: int = 61) -> Answer:
    """Requests since yesterday 00:00 UTC, the exact days Synapse keeps (the first run reads
    the backfill; the benchmark measures later runs, which read the last two days), and today's
    accounts by status."""
    since = now // 86400 * 86400 - 86400
    seen = db.all("SELECT DISTINCT user_id, last_seen FROM user_ips WHERE last_seen >= :since "
                  "AND last_seen <= :now", since=int(since * 1000), now=int(now * 1000))
    days = db.all("SELECT DISTINCT user_id, timestamp FROM user_daily_visits "
                  "WHERE timestamp >= :since", since=int((now - 2 * 86400) * 1000))
    statuses = db.all(f"SELECT {SY_STATUS}, COUNT(*) FROM users u GROUP BY 1")
    today = datetime.fromtimestamp(now, UTC).date()

    def day(ms: int) -> date:
        return datetime.fromtimestamp(ms / 1000, UTC).date()

    return Answer(history={
        "active": {("UTC", day(t), user) for user, t in (*seen, *days)},
        "statuses": {("UTC", today, status, n) for status, n in statuses}})


def synapse_rooms(db: Floor, now: float) -> Answer:
    return Answer({"usage_rooms": db.one("SELECT COUNT(*) FROM rooms")[0]})


def synapse_messages(db: Floor, now: float) -> Answer:
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
    messages = {f"encrypted={e},origin={o},window=1d": 0
                for e in ("false", "true") for o in ("local", "remote")}
    rooms = {f"encrypted={e},window=1d": 0 for e in ("false", "true")}
    for kind, total, local, active in rows:
        encrypted = str(kind == "m.room.encrypted").lower()
        messages[f"encrypted={encrypted},origin=local,window=1d"] = local
        messages[f"encrypted={encrypted},origin=remote,window=1d"] = total - local
        rooms[f"encrypted={encrypted},window=1d"] = active
    return Answer({"usage_messages": messages, "usage_rooms_active": rooms})


SY_R30_CLIENT = """CASE
    WHEN LOWER(user_agent) LIKE '%riot%' OR LOWER(user_agent) LIKE '%element%' THEN CASE
        WHEN LOWER(user_agent) LIKE '%electron%' THEN 'electron'
        WHEN LOWER(user_agent) LIKE '%android%' THEN 'android'
        WHEN LOWER(user_agent) LIKE '%ios%' THEN 'ios' END
    WHEN LOWER(user_agent) LIKE '%mozilla%' OR LOWER(user_agent) LIKE '%gecko%' THEN 'web'
    END"""
R30_CLIENTS = ("android", "ios", "electron", "web")


def synapse_retention(db: Floor, now: float) -> Answer:
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
    return Answer({"usage_users_retained": retained or 0,
                   "usage_users_retained_by_client": {
                       f"client={c}": n or 0 for c, n in zip(R30_CLIENTS, by_client, strict=True)}})


def synapse_registrations(db: Floor, now: float) -> Answer:
    rows = db.all("SELECT CASE WHEN appservice_id IS NOT NULL THEN 'bridged' WHEN is_guest <> 0 "
                  "THEN 'guest' ELSE 'native' END, COUNT(*), SUM(CASE WHEN creation_ts > "
                  ":since THEN 1 ELSE 0 END) FROM users GROUP BY 1", since=int(now) - 86400)
    found = {kind: (count, new) for kind, count, new in rows}
    kinds = ("native", "guest", "bridged")
    return Answer({"usage_users_by_type": {f"type={k}": found.get(k, (0, 0))[0] for k in kinds},
                   "usage_users_registered": {f"type={k},window=1d": found.get(k, (0, 0))[1]
                                              for k in kinds}})


FloorFunction = Callable[[Floor, float], Answer]
FLOORS: dict[str, dict[str, FloorFunction]] = {
    "nextcloud": {"apps": nextcloud_apps, "users": nextcloud_users,
                  "sessions": nextcloud_sessions, "shares": nextcloud_shares,
                  "storage": nextcloud_storage, "dau": nextcloud_dau},
    "synapse": {"users": synapse_users, "sessions": synapse_sessions, "media": synapse_media,
                "dau": synapse_dau, "rooms": synapse_rooms, "messages": synapse_messages,
                "retention": synapse_retention, "registrations": synapse_registrations},
}
