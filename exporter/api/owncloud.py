"""The ownCloud metrics app's API, drop-in: the OCS metrics route and the CSV downloads.

Parameters, shapes, headers and errors as the app and ownCloud 10 core serve them
(docs/platforms/owncloud.md, "The API" and "CSV bytes"; core's OCSController, OC_API and
OCSResponse); every number comes from the snapshot, where the collectors compute it with the
app's definitions, so a call costs no database work. Served on platform owncloud only.

Checked against a real ownCloud 10.15.2 and its metrics app 1.4.0 (docs/platforms/owncloud.md):
the JSON field by field, the XML and both CSVs byte for byte. 1.4.0's shape is the default;
database.metrics_app_version: legacy serves the older one of the app's README.

Where the app's output is broken we serve something well-formed instead: XML element names that
are not XML names (most user ids with `@`) become `<element key="...">`, characters XML cannot
carry become U+FFFD, and CSV cells follow exporter.api.csvout (PHP's quoting, formula-like text
quoted out).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Subquery, select
from sqlalchemy.exc import SQLAlchemyError

from collectors.base import Gauge
from exporter.api.csvout import PHP_ENCLOSED, stream_csv
from exporter.db import DatabaseUnavailable
from exporter.http import Context, Handler, HttpError, Request, Response, retry_after_header
from exporter.platforms.owncloud import BACKEND_NAMES
from exporter.snapshot import Snapshot
from exporter.usercolumns import batched, user_rows

OCS_PATH = "/ocs/v{}.php/apps/metrics/api/v1/metrics"
DOWNLOAD = "/index.php/apps/metrics/download-api"
# SharedSecretMiddleware's ForbiddenException, for a missing or wrong OC-MetricsApiKey alike.
FORBIDDEN = ("You do not have sufficient permissions to access this endpoint. Please consult the "
             "System Administrator for access.")
OCS_OK, OCS_SERVER_ERROR = 100, 996
TWO_WEEKS = 14 * 24 * 60 * 60  # UserActiveMetrics: last login at most this long ago, inclusive
FLAGS = ("users", "files", "shares", "quota", "userData")
# Per-user columns read as counts: missing or None is 0, as the app's COALESCE(..., 0).
COUNTED = ("used_bytes", "quota_bytes", "last_login", "files", "sessions", "shares_user",
           "shares_guest", "shares_group", "shares_link", "shares_email", "shares_federated")
USERS_CSV_HEADER = ("userId", "userDisplayName", "lastLogin", "quotaUsed", "quotaFree",
                    "quotaTotal", "files", "sessions", "sharesUser", "sharesGroup", "sharesLink",
                    "sharesGuest", "sharesFederated", "userBackend")
# The app generations whose answer shape we serve: 1.4.0's, and the older one its README shows.
APP_VERSIONS = ("1.4.0", "legacy")
BACKEND_CLASSES = {name: backend_class for backend_class, name in BACKEND_NAMES.items()}
SYSTEM_CSV_HEADER = ("freeStorage", "usedStorage", "totalFiles", "registeredUsers",
                     "activeUsers", "concurrentUsers", "userShares", "groupShares", "linkShares",
                     "guestShares", "federatedShares")
# ownCloud's exception page (core/templates/exception.php) as it reads without debug mode.
ERROR_PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>ownCloud</title></head><body>
<div class="error error-wide">
<h2>Internal Server Error</h2>
<p>The server encountered an internal error and was unable to complete your request.</p>
<p>Please contact the server administrator if this error reappears multiple times, please \
include the technical details below in your report.</p>
<p>More details can be found in the server log.</p>
</div></body></html>
"""
CSV_FAILED = b'["Could not get csv data."]'
XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
XML_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                                  "\r": "&#13;"})
XML_ATTRIBUTE_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", '"': "&quot;",
                                       "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"})
# XML 1.0 names without ':', which namespace-aware parsers would take for a prefix.
_START = ("A-Z_a-z\xc0-\xd6\xd8-\xf6\xf8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c\u200d"
          "\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff")
XML_NAME = re.compile(f"[{_START}][{_START}\\-.0-9\xb7\u0300-\u036f\u203f\u2040]*")


class Unavailable(Exception):
    """A collector the answer needs has no result (yet)."""


@dataclass(frozen=True)
class Account:
    """A row of the app's CombinedUserMetrics query: an account with a home storage."""

    user_id: str
    display_name: str | None
    backend: str  # IUserBackend::getBackendName(), or the class where none is registered
    guest: bool
    last_login: int
    used: int
    free: int
    quota: int
    files: int
    sessions: int
    type0_shares: int  # user shares, to guests or not
    group_shares: int
    link_shares: int
    type4_shares: int  # the app's per-user "guest" shares: share_type 4, our email shares
    federated_shares: int

    @property
    def backend_class(self) -> str:
        """oc_accounts.backend as stored, which the users CSV shows."""
        return BACKEND_CLASSES.get(self.backend, self.backend)


class Numbers:
    """The app's numbers, read from one snapshot."""

    def __init__(self, snapshot: Snapshot, now: int, needs: set[str]) -> None:
        for name in sorted(needs):
            status = snapshot.collectors.get(name)
            if status is None:
                raise Unavailable(f"The {name} collector is disabled.")
            if status.result is None:
                raise Unavailable(f"The {name} collector has not produced data yet.")
        self.snapshot, self.now = snapshot, now
        self.gauges = {metric.name: dict(metric.samples) for result in snapshot.results()
                       for metric in result.metrics if isinstance(metric, Gauge)}

    def gauge(self, name: str, *labels: str) -> int:
        return int(self.gauges.get(name, {}).get(labels, 0))

    def storage(self, version: str = APP_VERSIONS[0]) -> dict[str, int]:
        """QuotaMetrics::getTotalQuotaUsage. Without data_directory or available_storage_bytes
        free space is unknown: the app clamps unknown free space to 0 too."""
        free, used = self.gauge("usage_storage_free_bytes"), self.gauge("usage_storage_used_bytes")
        if version == "legacy":
            return {"used": used, "total": free + used, "free": free, "relative": 0}
        used_quota = self.gauge("usage_storage_files_bytes")
        return {"used": used, "usedQuota": used_quota, "usedOther": used - used_quota,
                "total": free + used, "free": free, "relative": 0}

    def users(self) -> dict[str, int]:
        last_logins = self.snapshot.user_columns().get("last_login", {}).values()
        return {
            "totalCount": int(sum(self.gauges["usage_users"].values())),
            "activeUsersCount": sum(1 for t in last_logins
                                    if t is not None and t >= self.now - TWO_WEEKS),
            "concurrentUsersCount": self.gauge("usage_users_concurrent"),
        }

    def shares(self) -> dict[str, int]:
        return {"userShareCount": self.gauge("usage_shares", "user"),
                "groupShareCount": self.gauge("usage_shares", "group"),
                "linkShareCount": self.gauge("usage_shares", "link"),
                "guestShareCount": self.gauge("usage_shares", "guest"),
                "federatedShareCount": self.gauge("usage_shares", "federated")}

    def home_rows(self) -> Iterator[dict[str, Any]]:
        """Per-user rows of the users with a home storage, in the home storages' order (the
        order the app's query hands its rows back in on SQLite)."""
        columns = self.snapshot.user_columns()
        for ids in batched(columns.get("used_bytes", {})):
            yield from user_rows(ids, columns)

    def accounts(self) -> Iterator[Account]:
        system_total = self.storage()["total"]
        for row in self.home_rows():
            # The app's inner joins: an account with a home storage and its files folder.
            if row.get("used_bytes") is None or row.get("status") is None:
                continue

            counts = {column: int(row.get(column) or 0) for column in COUNTED}
            used = counts["used_bytes"]
            # 'none' (unlimited) is shown as the system's total space, as the app does.
            quota = system_total if row.get("quota_bytes") is None else counts["quota_bytes"]
            yield Account(
                user_id=row["user_id"], display_name=row.get("display_name"),
                backend=str(row.get("backend") or ""), guest=row["status"] == "guest",
                last_login=counts["last_login"], used=used, free=quota - used, quota=quota,
                files=counts["files"], sessions=counts["sessions"],
                type0_shares=counts["shares_user"] + counts["shares_guest"],
                group_shares=counts["shares_group"], link_shares=counts["shares_link"],
                type4_shares=counts["shares_email"], federated_shares=counts["shares_federated"])

    def user_data(self, flags: dict[str, bool], version: str = APP_VERSIONS[0],
                  clients: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
        """UserDataMetrics::getUserData; the legacy shape lists each session's client name
        (`clients`), gives quota as {limit, usage}, and has no backend or last login."""
        legacy = version == "legacy"
        data = {}
        for account in self.accounts():
            entry: dict[str, Any] = {"displayName": account.display_name}
            if not legacy:
                entry["backend"] = account.backend + (" (Guest)" if account.guest else "")
            if flags["files"]:
                entry["files"] = {"totalFiles": account.files}
            if flags["shares"]:
                entry["shares"] = {
                    # The app subtracts type 4 here (it may go negative), not at system level.
                    "userShareCount": account.type0_shares - account.type4_shares,
                    "groupShareCount": account.group_shares,
                    "linkShareCount": account.link_shares,
                    "guestShareCount": account.type4_shares,
                    "federatedShareCount": account.federated_shares}
            if flags["quota"]:
                entry["quota"] = ({"limit": account.quota, "usage": account.used} if legacy else
                                  {"free": account.free, "total": account.quota,
                                   "used": account.used, "relative": 0})
            if flags["users"] and legacy:
                entry["activeSessions"] = [{"agentName": name}
                                           for name in (clients or {}).get(account.user_id, [])]
            elif flags["users"]:
                entry["activeSessions"] = account.sessions
                entry["lastLogin"] = account.last_login
            data[account.user_id] = entry
        return data


def metrics_data(snapshot: Snapshot, now: int, flags: dict[str, bool],
                 version: str = APP_VERSIONS[0],
                 clients: Mapping[str, list[str]] | None = None) -> dict[str, Any]:
    """The OCS `data` of UserMetricsController::getMetrics, keys in the app's order."""
    needs = ({"users", "sessions"} if flags["users"] else set()) \
        | ({"storage"} if flags["files"] or flags["userData"] else set()) \
        | ({"shares"} if flags["shares"] else set()) \
        | ({"users"} if flags["userData"] else set())
    numbers = Numbers(snapshot, now, needs)
    data: dict[str, Any] = {"timeStamp": now}
    if flags["users"]:
        data["users"] = numbers.users()
    if flags["files"]:
        data["files"] = {"totalFilesCount": numbers.gauge("usage_files"),
                         "storage": numbers.storage(version)}
    if flags["shares"]:
        data["shares"] = numbers.shares()
    if flags["userData"]:
        data["userData"] = numbers.user_data(flags, version, clients)
    return data


def session_clients(conn: Connection, relations: Mapping[str, Subquery]) -> dict[str, list[str]]:
    """Each user's session client names (oc_authtoken.name), oldest activity first."""
    sessions = relations["sessions"]
    clients: dict[str, list[str]] = {}
    for user_id, client in conn.execute(
            select(sessions.c.user_id, sessions.c.client)
            .order_by(sessions.c.user_id, sessions.c.last_activity, sessions.c.client)):
        clients.setdefault(user_id, []).append(client)
    return clients


# --- OCS rendering ---


def _php(value: Any) -> Any:
    """PHP arrays as json_encode writes them: an empty one is `[]`."""
    if isinstance(value, dict):
        return {key: _php(item) for key, item in value.items()} if value else []
    return value


def ocs_json(body: dict[str, Any]) -> bytes:
    # OC_JSON::encode: compact, non-ASCII as \u escapes, < and > hex-escaped (JSON_HEX_TAG).
    text = json.dumps(_php(body), separators=(",", ":"))
    return text.replace("<", "\\u003C").replace(">", "\\u003E").encode()


def _xml_element(key: str, value: Any, depth: int, out: list[str]) -> None:
    """OC_API::toXML through XMLWriter with indenting, one space a level."""
    pad = " " * depth
    name, start = key, key
    if not XML_NAME.fullmatch(key):
        name = "element"
        start = f'element key="{_xml_clean(key).translate(XML_ATTRIBUTE_ESCAPES)}"'
    if isinstance(value, dict) and value:
        out.append(f"{pad}<{start}>\n")
        for child_key, child in value.items():
            _xml_element(child_key, child, depth + 1, out)
        out.append(f"{pad}</{name}>\n")
    elif value is None or value == {}:
        out.append(f"{pad}<{start}/>\n")
    else:
        out.append(f"{pad}<{start}>{_xml_clean(str(value)).translate(XML_TEXT_ESCAPES)}"
                   f"</{name}>\n")


def _xml_clean(text: str) -> str:
    return XML_INVALID.sub("\ufffd", text)


def ocs_xml(body: dict[str, Any]) -> bytes:
    out = ['<?xml version="1.0"?>\n']
    for key, value in body.items():
        _xml_element(key, value, 0, out)
    return "".join(out).encode()


def ocs_response(version: int, fmt: str, statuscode: int, message: str,
                 data: dict[str, Any]) -> Response:
    """OCSController::buildResponse: on v2 the OCS code is mapped to an HTTP status (100 -> 200,
    996 -> 500) that is both the response's status and its meta statuscode; v1 answers 200."""
    status = 200
    if version == 2:
        status = statuscode = 200 if statuscode == OCS_OK else 500
    meta = {"status": "ok" if statuscode in (OCS_OK, 200) else "failure",
            "statuscode": statuscode, "message": message, "totalitems": "", "itemsperpage": ""}
    body = {"ocs": {"meta": meta, "data": data}}
    if fmt == "json":
        return Response(status, ocs_json(body), "application/json; charset=utf-8")
    return Response(status, ocs_xml(body), "application/xml; charset=utf-8")


def download_name(now: float, kind: str) -> str:
    """DataMetrics-<formatDateTime(now, 'short')>-<kind>.csv, in English and UTC, as ownCloud
    formats it for a request without a user (short date, medium time)."""
    t = datetime.fromtimestamp(now, UTC)
    stamp = (f"{t.month}/{t.day}/{t:%y}, {(t.hour + 11) % 12 + 1}:{t:%M:%S} "
             f"{'AM' if t.hour < 12 else 'PM'}")
    return f"DataMetrics-{stamp}-{kind}.csv"


def response_format(request: Request) -> str:
    """The format as core's Dispatcher picks it: the `format` parameter as given (even empty),
    else the first Accept item naming a responder exactly (application/json or /xml), else xml."""
    fmt = request.param("format")
    if fmt is not None:
        return fmt
    for item in (request.header("Accept") or "").split(","):
        responder = item.strip().lower().replace("application/", "")
        if responder in ("json", "xml"):
            return responder
    return "xml"


# --- routes ---


def routes(context: Context, version: str = APP_VERSIONS[0]) -> dict[str, Handler]:
    """The app's routes, answering in the shape of app generation `version`."""
    def require_owncloud() -> None:
        if context.snapshot().platform != "owncloud":
            raise HttpError(404.1, "The ownCloud metrics app routes are served for platform "
                            "owncloud only.")

    def metrics(ocs_version: int) -> Handler:
        def handler(request: Request) -> Response:
            require_owncloud()
            fmt = response_format(request)
            if fmt not in ("json", "xml"):
                # Core finds no responder for the format and PHP dies: 500, empty body.
                return Response(500, b"", "text/html; charset=UTF-8")
            try:
                context.authorize(request)
            except HttpError as error:
                if error.status == 429:
                    # The app has no rate limit; an OCS failure with HTTP 429 tells any
                    # client to wait.
                    return replace(ocs_response(1, fmt, 429, error.message, {}), status=429,
                                   headers=retry_after_header(error))
                return ocs_response(ocs_version, fmt, OCS_SERVER_ERROR, FORBIDDEN, {})
            flags = {name: request.param(name) == "true" for name in FLAGS}
            now = int(context.clock())
            try:
                clients = (legacy_clients() if version == "legacy"
                           and flags["users"] and flags["userData"] else None)
                data = metrics_data(context.snapshot(), now, flags, version, clients)
            except Unavailable as error:
                return ocs_response(ocs_version, fmt, OCS_SERVER_ERROR, str(error), {})
            return ocs_response(ocs_version, fmt, OCS_OK, "OK", data)
        return handler

    def legacy_clients() -> dict[str, list[str]]:
        """The older shape names each session's client: not in a snapshot, so read now."""
        if context.read is None:
            raise Unavailable("The sessions cannot be read from this API.")
        try:
            return context.read(["sessions"], session_clients)
        except (DatabaseUnavailable, SQLAlchemyError) as error:
            raise Unavailable("The sessions could not be read.") from error

    def download(kind: str) -> Handler:
        def handler(request: Request) -> Response:
            require_owncloud()
            try:
                context.authorize(request)
            except HttpError as error:
                if error.status == 429:
                    return Response(429, error.message.encode(), "text/plain; charset=utf-8",
                                    retry_after_header(error))
                # The ForbiddenException escapes the app and index.php shows its error page.
                return Response(500, ERROR_PAGE, "text/html; charset=UTF-8")
            now = context.clock()
            try:
                rows = CSVS[kind](context.snapshot(), int(now))
            except Unavailable:
                return Response(500, CSV_FAILED, "application/json; charset=utf-8")
            return Response(200, rows, "text/csv", [
                ("Content-Disposition", f'attachment; filename="{download_name(now, kind)}"')])
        return handler

    users = download("users")
    return {
        OCS_PATH.format(1): metrics(1),
        OCS_PATH.format(2): metrics(2),
        DOWNLOAD + "/users": users,
        DOWNLOAD: users,  # deprecated by the app, still routed to the users CSV
        DOWNLOAD + "/system": download("system"),
    }


def users_csv(snapshot: Snapshot, now: int) -> Iterator[bytes]:
    """WriteToCSV::getUsersCSVData: values straight from the query (sharesUser is every type-0
    share, sharesGuest the type-4 ones, userBackend the stored class), enclosed as PHP's
    fputcsv encloses them."""
    numbers = Numbers(snapshot, now, {"users", "sessions", "shares", "storage"})
    return stream_csv(USERS_CSV_HEADER, (
        (a.user_id, a.display_name, a.last_login, a.used, a.free, a.quota, a.files, a.sessions,
         a.type0_shares, a.group_shares, a.link_shares, a.type4_shares, a.federated_shares,
         a.backend_class)
        for a in numbers.accounts()), enclose=PHP_ENCLOSED)


def system_csv(snapshot: Snapshot, now: int) -> Iterator[bytes]:
    numbers = Numbers(snapshot, now, {"users", "sessions", "shares", "storage"})
    storage, users, shares = numbers.storage(), numbers.users(), numbers.shares()
    return stream_csv(SYSTEM_CSV_HEADER, [(
        storage["free"], storage["used"], numbers.gauge("usage_files"), users["totalCount"],
        users["activeUsersCount"], users["concurrentUsersCount"], *shares.values())])


CSVS = {"users": users_csv, "system": system_csv}
