"""Reference answers of the ownCloud ``metrics`` app, computed from its own SQL.

An independent transcription of the app's SQL as docs/platforms/owncloud.md describes it; the
comments name its sections: [API] "The API", [numbers] "The numbers" (system numbers), [per
user] its per-user part (CombinedUserMetrics + UserDataMetrics post-processing), [CSV] "CSV
bytes", [traps] "Traps". Cross-checked against the app sources, and against the real app 1.4.0
on its own database (tests/platforms/test_owncloud_reference.py).  The exporter is compared with
these functions where only the hand-built database has the case, so quirks are reproduced on
purpose; each quirk carries a comment naming its section.

``conn`` may be a ``sqlite3.Connection`` or a SQLAlchemy ``Connection``.  The app's SQL is
written with ``||`` (SQLite/PostgreSQL); on a MySQL/MariaDB SQLAlchemy connection ``CONCAT()``
is used instead, exactly as the app switches ([per user], [traps]).
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import text

TWO_WEEKS_AS_SECONDS = 14 * 24 * 60 * 60  # [numbers] UserActiveMetrics constant

SHARE_TYPE_USER = 0
SHARE_TYPE_GROUP = 1
SHARE_TYPE_LINK = 3
SHARE_TYPE_GUEST = 4
SHARE_TYPE_REMOTE = 6

# [per user]: IUserBackend::getBackendName() of the registered backends (user_ldap's User_Proxy
# forwards to User_LDAP::getBackendName() = 'LDAP'); unregistered classes keep the class name.
DEFAULT_BACKEND_NAMES: Mapping[str, str] = {
    "OC\\User\\Database": "Database",
    "OCA\\User_LDAP\\User_Proxy": "LDAP",
}

# [CSV] users CSV header (MetricsSerializer getter order)
USERS_CSV_HEADER: tuple[str, ...] = (
    "userId",
    "userDisplayName",
    "lastLogin",
    "quotaUsed",
    "quotaFree",
    "quotaTotal",
    "files",
    "sessions",
    "sharesUser",
    "sharesGroup",
    "sharesLink",
    "sharesGuest",
    "sharesFederated",
    "userBackend",  # 1.4.0: getUserBackend(), the last getter
)
# [CSV] system CSV header
SYSTEM_CSV_HEADER: tuple[str, ...] = (
    "freeStorage",
    "usedStorage",
    "totalFiles",
    "registeredUsers",
    "activeUsers",
    "concurrentUsers",
    "userShares",
    "groupShares",
    "linkShares",
    "guestShares",
    "federatedShares",
)


# --------------------------------------------------------------------------- DB plumbing


def _is_mysql(conn: Any) -> bool:
    if isinstance(conn, sqlite3.Connection):
        return False
    return conn.dialect.name in ("mysql", "mariadb")


def _rows(conn: Any, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
    if isinstance(conn, sqlite3.Connection):
        return [tuple(r) for r in conn.execute(sql, dict(params or {})).fetchall()]
    return [tuple(r) for r in conn.execute(text(sql), dict(params or {})).fetchall()]


def _scalar(conn: Any, sql: str, params: Mapping[str, Any] | None = None) -> Any:
    return _rows(conn, sql, params)[0][0]


def _concat(conn: Any, *parts: str) -> str:
    # [traps]: MySQL needs CONCAT(); '||' is logical OR there
    return f"CONCAT({', '.join(parts)})" if _is_mysql(conn) else "(" + " || ".join(parts) + ")"


# --------------------------------------------------------------------------- PHP helpers

_PHP_NUMERIC = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_PHP_FLOAT_PREFIX = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_BYTES = {
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "p": 1024**5,
    "pb": 1024**5,
}


def _php_floatval(s: str) -> float:
    m = _PHP_FLOAT_PREFIX.match(s)
    return float(m.group(0)) if m else 0.0


def _php_round(x: float) -> float:
    # PHP round() rounds half away from zero
    return float(int(x + 0.5)) if x >= 0 else -float(int(-x + 0.5))


def computer_file_size(spec: str) -> float | bool:
    """OC_Helper::computerFileSize ([per user]): float bytes, or False for an unknown suffix."""
    s = spec.lower()
    if _PHP_NUMERIC.match(s):
        return float(s)
    value = _php_floatval(s)
    # [per user] quirk: the suffix regex '([kmgtp]?b?)$' takes the leftmost match ('5 gib' -> 'b')
    m = re.search(r"([kmgtp]?b?)$", s)
    if not m or m.group(1) not in _BYTES:
        return False
    return _php_round(value * _BYTES[m.group(1)])


def _php_truthy(value: str | None) -> bool:
    return value not in (None, "", "0")


# --------------------------------------------------------------------------- system ([numbers])


def _directory_mimetype(conn: Any, prefix: str, literal: bool) -> str:
    if literal:
        return "2"  # [numbers] quirk: FilesMetrics compares with the literal id 2
    return f"(SELECT id FROM {prefix}mimetypes WHERE mimetype = 'httpd/unix-directory')"


def total_files_count(
    conn: Any, *, prefix: str = "oc_", literal_directory_mimetype: bool = False
) -> int:
    """files.totalFilesCount: FilesMetrics SQL ([numbers], [traps])."""
    p = prefix
    fs_pattern = _concat(conn, "'%::'", "mt.user_id")
    obj_pattern = _concat(conn, "'object::user:'", "mt.user_id")
    sql = (
        f"SELECT COUNT(*) AS totalFiles FROM {p}filecache f "
        f"INNER JOIN {p}storages st ON f.storage = st.numeric_id "
        f"INNER JOIN {p}mounts mt ON mt.storage_id = st.numeric_id "
        f"WHERE f.path LIKE 'files/%' "
        f"AND f.mimetype <> {_directory_mimetype(conn, p, literal_directory_mimetype)} "
        f"AND (st.id LIKE {fs_pattern} OR st.id LIKE {obj_pattern})"
    )
    return int(_scalar(conn, sql))


def _home_storage_sum(conn: Any, prefix: str, where: str) -> int:
    """QuotaMetrics (1.4.0): SUM(f.size) over the file cache rows of users' home storages, each
    joined with the mounts of its user (st.id LIKE '%::'||uid or 'object::user:'||uid)."""
    p = prefix
    fs_pattern = _concat(conn, "'%::'", "mt.user_id")
    obj_pattern = _concat(conn, "'object::user:'", "mt.user_id")
    total = _scalar(
        conn,
        f"SELECT SUM(f.size) AS totalSize FROM {p}filecache f "
        f"INNER JOIN {p}storages st ON f.storage = st.numeric_id "
        f"INNER JOIN {p}mounts mt ON mt.storage_id = st.numeric_id "
        f"WHERE {where} AND (st.id LIKE {fs_pattern} OR st.id LIKE {obj_pattern})",
    )
    return int(total or 0)  # (int) of NULL is 0


def used_space(conn: Any, *, prefix: str = "oc_") -> int:
    """QuotaMetrics::getUsedTotalSpace: the root entries (size > 0) of users' home storages."""
    return _home_storage_sum(conn, prefix, "f.parent = -1 AND f.size > 0")


def used_quota_space(conn: Any, *, prefix: str = "oc_") -> int:
    """QuotaMetrics::getUsedQuotaSpace: the files (literal mimetype <> 2) under files/."""
    return _home_storage_sum(conn, prefix, "f.path LIKE 'files/%' AND f.mimetype <> 2")


def storage_totals(
    conn: Any, free_bytes: int, *, prefix: str = "oc_", available_storage: int | None = None
) -> dict[str, int]:
    """files.storage in 1.4.0's key order ([numbers])."""
    used = used_space(conn, prefix=prefix)
    used_quota = used_quota_space(conn, prefix=prefix)
    # [numbers]: objectstore availableStorage overrides statvfs; free = availableStorage - used
    free = free_bytes if available_storage is None else available_storage - used
    free = max(free, 0)  # [numbers]: negative (SPACE_UNKNOWN etc.) clamped to 0
    return {"used": used, "usedQuota": used_quota, "usedOther": used - used_quota,
            "total": free + used, "free": free, "relative": 0}  # [numbers] relative 0


def share_counts(conn: Any, *, prefix: str = "oc_") -> dict[str, int]:
    """shares.* at system level ([numbers], SharesMetrics::getTotalShares)."""

    def by_type(t: int) -> int:
        return int(
            _scalar(conn, f"SELECT COUNT(*) AS count FROM {prefix}share WHERE share_type = {t}")
        )

    guest = int(
        _scalar(
            conn,
            f"SELECT COUNT(*) AS guest_share FROM {prefix}share s "
            f"INNER JOIN {prefix}preferences p ON p.userid = s.share_with "
            f"WHERE s.share_type = {SHARE_TYPE_USER} AND p.appid = 'owncloud' "
            f"AND p.configkey = 'isGuest' AND p.configvalue = '1'",
        )
    )
    user = by_type(SHARE_TYPE_USER)
    if guest > 0:  # [numbers]: guest shares are type 0 too and are subtracted
        user -= guest
    return {
        "userShareCount": user,
        "groupShareCount": by_type(SHARE_TYPE_GROUP),
        "linkShareCount": by_type(SHARE_TYPE_LINK),
        "guestShareCount": guest,
        "federatedShareCount": by_type(SHARE_TYPE_REMOTE),
    }  # [numbers]: types 2, 4, 5, 7 are not counted anywhere


def system_metrics(
    conn: Any,
    now: int,
    free_bytes: int,
    *,
    prefix: str = "oc_",
    available_storage: int | None = None,
    literal_directory_mimetype: bool = False,
) -> dict[str, Any]:
    """The OCS ``data`` of ``getMetrics(files=true, shares=true, users=true)`` ([API], [numbers]).

    ``literal_directory_mimetype=True`` reproduces the app's literal ``mimetype <> 2``; the
    default resolves 'httpd/unix-directory' by name ([traps]), identical on default installs.
    """
    p = prefix
    return {
        "timeStamp": now,
        "users": {
            # [numbers]: every oc_accounts row, any state
            "totalCount": int(_scalar(conn, f"SELECT COUNT(*) FROM {p}accounts")),
            # [numbers]: inclusive '>=' against now - 1209600
            "activeUsersCount": int(
                _scalar(
                    conn,
                    f"SELECT COUNT(*) FROM {p}accounts WHERE last_login >= :limit",
                    {"limit": now - TWO_WEEKS_AS_SECONDS},
                )
            ),
            # [numbers]: DISTINCT uid over all tokens, no type/age filter, orphans included
            "concurrentUsersCount": len(_rows(conn, f"SELECT DISTINCT uid FROM {p}authtoken")),
        },
        "files": {
            "totalFilesCount": total_files_count(
                conn, prefix=p, literal_directory_mimetype=literal_directory_mimetype
            ),
            "storage": storage_totals(
                conn, free_bytes, prefix=p, available_storage=available_storage
            ),
        },
        "shares": share_counts(conn, prefix=p),
    }


# --------------------------------------------------------------------------- per user ([per user])


def combined_user_sql(conn: Any, prefix: str = "oc_") -> str:
    """CombinedUserMetrics::getUsersSql ([per user]), written out in full."""
    p = prefix
    mountpoint = _concat(conn, "'/'", "a.user_id", "'/'")
    user_storage_fs = _concat(conn, "'%::'", "a.user_id")
    user_storage_obj = _concat(conn, "'object::user:'", "a.user_id")

    def shares(alias: str, share_type: int) -> str:
        return (
            f"LEFT JOIN (SELECT uid_owner, COUNT(id) AS count FROM {p}share "
            f"WHERE share_type = {share_type} GROUP BY uid_owner) {alias} "
            f"ON {alias}.uid_owner = a.user_id "
        )

    return (
        "SELECT a.user_id, a.display_name, a.quota, a.last_login, a.backend, "
        "f.size AS used_space, "
        "COALESCE(f1.files, 0) AS total_files, COALESCE(s.sessions, 0) AS sessions, "
        "COALESCE(shu.count, 0) AS user_share_count, "
        "COALESCE(shg.count, 0) AS group_share_count, "
        "COALESCE(shl.count, 0) AS link_share_count, "
        "COALESCE(shguest.count, 0) AS guest_share_count, "
        "COALESCE(shfed.count, 0) AS federated_share_count "
        f"FROM {p}accounts a "
        f"JOIN {p}mounts om ON a.user_id = om.user_id "
        f"JOIN {p}filecache f ON om.storage_id = f.storage "
        f"JOIN {p}storages st ON st.numeric_id = f.storage "
        f"LEFT JOIN (SELECT storage, COUNT(*) AS files FROM {p}filecache "
        f"WHERE path LIKE 'files/%' AND mimetype <> "
        f"(SELECT id FROM {p}mimetypes WHERE mimetype = 'httpd/unix-directory') "
        f"GROUP BY storage) f1 ON f.storage = f1.storage "
        f"LEFT JOIN (SELECT uid, COUNT(token) AS sessions FROM {p}authtoken "
        f"GROUP BY uid) s ON s.uid = a.user_id "
        + shares("shu", SHARE_TYPE_USER)
        + shares("shg", SHARE_TYPE_GROUP)
        + shares("shl", SHARE_TYPE_LINK)
        + shares("shguest", SHARE_TYPE_GUEST)  # [per user] quirk: "guest" = share_type 4
        + shares("shfed", SHARE_TYPE_REMOTE)
        + f"WHERE om.mount_point = {mountpoint} "
        f"AND (st.id LIKE {user_storage_fs} OR st.id LIKE {user_storage_obj}) "
        "AND f.path = 'files'"
    )


def _app_value(conn: Any, prefix: str, app: str, key: str, default: str) -> str:
    rows = _rows(
        conn,
        f"SELECT configvalue FROM {prefix}appconfig WHERE appid = :a AND configkey = :k",
        {"a": app, "k": key},
    )
    return default if not rows or rows[0][0] is None else str(rows[0][0])


def combined_user_metrics(
    conn: Any, free_bytes: int, *, prefix: str = "oc_", available_storage: int | None = None
) -> list[dict[str, Any]]:
    """CombinedUserMetrics::getCombinedData rows as MetricsSerializer values ([per user], [CSV]).

    Row order is the database's (the app has no ORDER BY).
    """
    # [per user]: 'none' quota = system total (free + used) of [numbers]
    system_total = storage_totals(
        conn, free_bytes, prefix=prefix, available_storage=available_storage
    )["total"]
    default_quota = _app_value(conn, prefix, "files", "default_quota", "none")
    out = []
    for row in _rows(conn, combined_user_sql(conn, prefix)):
        (
            uid,
            display,
            quota_spec,
            last_login,
            backend,
            used,
            files,
            sessions,
            n_user,
            n_group,
            n_link,
            n_guest,
            n_fed,
        ) = row
        if quota_spec is None or quota_spec == "default":  # [per user]: NULL/'default' -> appconfig
            quota_spec = default_quota
        if quota_spec == "none":
            quota = computer_file_size(f"{system_total} b")
        else:
            quota = computer_file_size(quota_spec)
        quota_f = 0.0 if quota is False else float(quota)  # PHP: false - x == -x
        used = int(used)
        out.append(
            {
                "userId": uid,
                "userDisplayName": display,  # [per user]: raw display_name, no uid fallback
                "lastLogin": int(last_login),
                "quotaUsed": used,  # [per user]: size of 'files' only
                "quotaFree": int(quota_f - used),  # [per user]: may be negative
                "quotaTotal": int(quota_f),
                "files": int(files),
                "sessions": int(sessions),  # [per user]: all tokens of the uid, any type/age
                "sharesUser": int(n_user),
                "sharesGroup": int(n_group),
                "sharesLink": int(n_link),
                "sharesGuest": int(n_guest),
                "sharesFederated": int(n_fed),
                "userBackend": backend,
            }
        )
    return out


def _guest_uids(conn: Any, prefix: str) -> set[str]:
    # [per user]: Helper::isGuestUser = PHP truthiness of preference owncloud/isGuest
    rows = _rows(
        conn,
        f"SELECT userid, configvalue FROM {prefix}preferences "
        f"WHERE appid = 'owncloud' AND configkey = 'isGuest'",
    )
    return {uid for uid, value in rows if _php_truthy(value)}


def user_data(
    conn: Any,
    free_bytes: int,
    *,
    prefix: str = "oc_",
    backend_names: Mapping[str, str] = DEFAULT_BACKEND_NAMES,
    available_storage: int | None = None,
    files: bool = True,
    shares: bool = True,
    quota: bool = True,
    users: bool = True,
) -> dict[str, dict[str, Any]]:
    """OCS ``data.userData`` ([per user], UserDataMetrics::getUserData), keyed by uid."""
    guests = _guest_uids(conn, prefix)
    result: dict[str, dict[str, Any]] = {}
    for d in combined_user_metrics(
        conn, free_bytes, prefix=prefix, available_storage=available_storage
    ):
        uid = d["userId"]
        backend = backend_names.get(d["userBackend"], d["userBackend"])
        if uid in guests:
            backend += " (Guest)"  # [per user]: guest suffix on the backend name
        entry: dict[str, Any] = {"displayName": d["userDisplayName"], "backend": backend}
        if files:
            entry["files"] = {"totalFiles": d["files"]}
        if shares:
            entry["shares"] = {
                # [per user] quirk: type-0 minus type-4 owned (can go negative), unlike [numbers]
                "userShareCount": d["sharesUser"] - d["sharesGuest"],
                "groupShareCount": d["sharesGroup"],
                "linkShareCount": d["sharesLink"],
                "guestShareCount": d["sharesGuest"],
                "federatedShareCount": d["sharesFederated"],
            }
        if quota:
            entry["quota"] = {
                "free": d["quotaFree"],
                "total": d["quotaTotal"],
                "used": d["quotaUsed"],
                "relative": 0,
            }  # [per user] relative 0
        if users:
            entry["activeSessions"] = d["sessions"]  # [per user]: newest = integer count
            entry["lastLogin"] = d["lastLogin"]
        result[uid] = entry  # a duplicate uid row would overwrite, as in PHP
    return result


# --------------------------------------------------------------------------- CSV ([CSV])


def users_csv_rows(
    conn: Any,
    free_bytes: int,
    *,
    prefix: str = "oc_",
    available_storage: int | None = None,
) -> list[dict[str, Any]]:
    """Rows of the users CSV ([CSV]), sorted by userId (the app's order is unspecified).

    Values straight from SQL: sharesUser is the raw type-0 count and sharesGuest the type-4
    count ([CSV]), and 1.4.0's last column userBackend the raw backend class.
    """
    header = USERS_CSV_HEADER
    rows = combined_user_metrics(
        conn, free_bytes, prefix=prefix, available_storage=available_storage
    )
    return [{k: d[k] for k in header} for d in sorted(rows, key=lambda d: d["userId"])]


def system_csv_row(
    conn: Any,
    now: int,
    free_bytes: int,
    *,
    prefix: str = "oc_",
    available_storage: int | None = None,
    literal_directory_mimetype: bool = False,
) -> dict[str, int]:
    """The single data row of the system CSV ([CSV]), keys in SYSTEM_CSV_HEADER order."""
    m = system_metrics(
        conn,
        now,
        free_bytes,
        prefix=prefix,
        available_storage=available_storage,
        literal_directory_mimetype=literal_directory_mimetype,
    )
    s, u, sh = m["files"]["storage"], m["users"], m["shares"]
    values = (
        s["free"],
        s["used"],
        m["files"]["totalFilesCount"],
        u["totalCount"],
        u["activeUsersCount"],
        u["concurrentUsersCount"],
        sh["userShareCount"],
        sh["groupShareCount"],
        sh["linkShareCount"],
        sh["guestShareCount"],
        sh["federatedShareCount"],
    )
    return dict(zip(SYSTEM_CSV_HEADER, values, strict=True))


def _fputcsv_field(value: Any) -> str:
    s = "" if value is None else str(value)
    # PHP fputcsv without an escape character encloses fields with , " \n \r \t or a space
    if any(c in s for c in ',"\n\r\t '):
        return '"' + s.replace('"', '""') + '"'
    return s


def render_csv(rows: Sequence[Mapping[str, Any]], header: Iterable[str] | None = None) -> str:
    """Symfony CsvEncoder output ([CSV]): header line, ',' separator, '\\n' line ends, no BOM."""
    cols = list(header) if header is not None else list(rows[0]) if rows else []
    lines = [",".join(_fputcsv_field(c) for c in cols)]
    lines += [",".join(_fputcsv_field(r.get(c)) for c in cols) for r in rows]
    return "\n".join(lines) + "\n"


def parse_csv(data: str) -> list[dict[str, str]]:
    """Parse a metrics CSV back into dicts of strings (for comparing downloads)."""
    return list(csv.DictReader(io.StringIO(data)))
