"""The OpenAPI 3.1 description of every route the exporter serves (a test checks it against the
App's route table, and schemathesis checks the answers against it). The native API's integer
parameters come from their declarations in exporter.api.parameters, which the routes read them
with; the drop-in routes' shapes are described here by hand."""

from __future__ import annotations

from typing import Any

from exporter import __version__
from exporter.api.parameters import DAYS, LIMIT, OFFSET, TZ_OFFSET, query

JSON = "application/json"
NATIVE_ERROR = {"$ref": "#/components/schemas/Error"}
NATIVE_SECURITY = [{"bearer": []}]


def json_body(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def text_body(description: str, *media_types: str) -> dict[str, Any]:
    return {"description": description,
            "content": {media: {"schema": {"type": "string"}} for media in media_types}}


def errors(*statuses: str) -> dict[str, Any]:
    """Native error responses; every API route may answer 401, 403, 429 (wrong keys) and 503
    (audit log)."""
    names = {"400": "BadRequest", "401": "Unauthorized", "403": "Forbidden",
             "404": "NotFound", "429": "TooManyRequests", "503": "Unavailable"}
    return {status: {"$ref": f"#/components/responses/{names[status]}"}
            for status in sorted({*statuses, "401", "403", "429", "503"})}


def native(summary: str, description: str, ok: dict[str, Any], *error_statuses: str,
           parameters: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary, "description": description, "tags": ["native"],
        "security": NATIVE_SECURITY, "responses": {"200": ok, **errors(*error_statuses)}}
    if parameters:
        operation["parameters"] = list(parameters)
    return {"get": operation}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


NUMBER_OR_NULL = {"type": ["number", "null"]}
HISTORY_PARAMETERS = (
    query("tz", "An IANA time zone listed in collectors.dau.timezones (default UTC).",
          {"type": "string"}),
    TZ_OFFSET.openapi,
    DAYS.openapi,
)
CSV = "text/csv; charset=utf-8; header=present"
CSV_NOTE = ("RFC 4180 quoting, UTF-8, streamed (constant memory whatever the number of users). "
            "Text cells starting with = + - @ tab or carriage return get a leading single quote "
            "so spreadsheets do not run them as formulas.")
STATS_DESCRIPTION = """OpenL2M-style (`/api/stats/`) usage windows, each `{label, value}`.

Where each value comes from:
- `users_last_hour`, `users_today`, `users_last_7_days`, `users_last_31_days`: distinct users
  active in OpenL2M's own windows (switches/stats.py), whatever `collectors.users.windows` says,
  placed at the time of asking: the last hour; today, the calendar day in the first zone of
  `collectors.dau.timezones` (named in `timezone`, OpenL2M's TIME_ZONE); the last 7 and 31 days
  from local midnight of the UTC date 7 or 31 days back, so that many whole days plus today. The
  platform's activity is read at the first ask after each refresh and each new day, so it is as
  old as the snapshot. null where the platform has no activity; 503.4 when the database cannot
  be read.
- `sessions_now`: live sessions now (the sum of `usage_sessions`); `shares_now`: shares now (the
  sum of `usage_shares`). These are current totals only: the platforms keep no history of ended
  sessions or of when shares were created, so there are no sessions or shares windows. null
  where the collector does not apply.
- `<kind>_events_last_hour`, `_today`, `_last_7_days`, `_last_31_days`, `_total`: for each kind
  of the platform's `events` relation, its events in the same windows and in all time, read when
  asked; absent where the platform has no events."""
AUDITS_DESCRIPTION = """Who used the API: one entry per authorized request, newest first, in the
shape of ODK Central's `GET /v1/audits`. Mapping: `actorId` is the API key's name (ODK: an
integer actor id), `action` the route path (ODK: a verb such as `user.create`), `acteeId` is
always null (no per-object permissions), `details` the query parameters (a list when repeated;
values of parameters named like credentials, or containing a configured key, are null;
at most 32 parameters of 256 characters), `loggedAt` ISO 8601 UTC with milliseconds. Entries
older than `history.retention_days` are dropped. A request that cannot be recorded is refused
with 503.2."""
USERS_DESCRIPTION = """Per-user rows of the snapshot, a page at a time.

Order: numbers, then text (case-insensitive), then other values; null last in both directions;
ties by user id in the same direction. `next_token` is present only when more rows follow; pass
it as `from` with the same `order_by`, `dir` and `search_term` (keyset paging: rows that appear
or disappear between calls are neither repeated nor skipped). `total` counts every row matching
`search_term`."""

# --- the drop-in routes: each answers in its platform's own shapes ---

OCS_SECURITY = [{"ocMetricsApiKey": []}, {"bearer": []}]
CODER_SECURITY = [{"coderSessionToken": []}, {"bearer": []}]
UTF8_JSON = "application/json; charset=utf-8"
UTF8_XML = "application/xml; charset=utf-8"
HTML = "text/html; charset=UTF-8"
EMPTY = {"type": "string", "maxLength": 0}
RETRY_AFTER = {"Retry-After": {"description": "Seconds until this address may try a key again.",
                               "schema": {"type": "integer", "minimum": 0}}}
HISTORY_RETRY = {"Retry-After": {"description": "Seconds until the history may be written.",
                                 "schema": {"type": "integer", "minimum": 0}}}
NOT_OWNCLOUD = json_body("Not an ownCloud database: the native error 404.1.", NATIVE_ERROR)
INT64 = {"type": "integer", "format": "int64", "minimum": -(2**63), "maximum": 2**63 - 1}
OCS_DESCRIPTION = """As the ownCloud metrics app's
`GET /ocs/v{1,2}.php/apps/metrics/api/v1/metrics`: the OCS envelope `{"ocs": {"meta", "data"}}`,
`data` holding `timeStamp` and the sections asked for (`userData` by user id, each with the
sections asked for), every number from the snapshot with the app's definitions. Key in
`OC-MetricsApiKey`. Served on platform owncloud; elsewhere the native 404.1."""
DOWNLOAD_NOTE = """The app's CSV (WriteToCSV): its header and column order, values from the
snapshot. Key in `OC-MetricsApiKey`. Served on platform owncloud; elsewhere the native 404.1."""
CODER_NOTE = """Key in `Coder-Session-Token` (or Authorization: Bearer). Errors are
codersdk.Response: `{"message", "detail"?, "validations"?: [{"field", "detail"}]}`; the JSON is
encoding/json's (`<`, `>` and `&` escaped) with a trailing newline."""
DAUS_DESCRIPTION = """As coderd's `GET /api/v2/insights/daus`: distinct users per day for the 60
days before the next full hour's UTC day and that day (61 entries; 60 in the hour before a UTC
midnight), 0 on days nobody was active. Days are UTC days, as Coder's are whatever `tz_offset`
says (Go's Truncate ignores the zone): `tz_offset` only changes the date printed on each, a
negative one printing the date before. Read from the UTC days of the history (exact where the
platform keeps daily activity, as Coder's template_usage_stats)."""
OPENL2M_DESCRIPTION = """As OpenL2M's `GET /api/stats/` (APIStatsView): `database` and `usage`,
each item `{label, value}` under OpenL2M's keys (switches/stats.py), from the platform's `events`
and `totals` relations (docs/custom-sql.md#openl2m). Key in `Authorization: Token <key>` (or
Bearer). Errors are Django REST framework's `{"detail": "..."}`: 401 with `WWW-Authenticate:
Token` for a missing or wrong key, 404 where the platform has no events."""
STATUS_COUNTS_DESCRIPTION = """As coderd's `GET /api/v2/insights/user-status-counts`: for each
status, the users holding it at each local midnight of the zone, from 60 days before the next
full hour's day to that day; deleted accounts are left out from their deletion on. `date` is the
midnight's instant in UTC (RFC 3339). Read from the days the dau collector recorded for that zone
(exact from a `status_changes` relation): the zone must be in collectors.dau.timezones. A status
some change has named and nobody held is a series of zeros, as in Coder. In the part of an hour
before a local midnight, Coder already answers that coming midnight, which appears here once the
collector has run after it; Coder leaves out a status only users deleted before the 60 days ever
held, which this answers as zeros."""


def ocs_content(*statuses: str) -> dict[str, Any]:
    """The OCS envelope, in JSON or in XML (the same elements)."""
    meta = {"allOf": [ref("OcsEnvelope"), {"properties": {"ocs": {"properties": {"meta": {
        "properties": {"statuscode": {"enum": [int(status) for status in statuses]}}}}}}}]}
    return {UTF8_JSON: {"schema": meta},
            UTF8_XML: {"schema": {"type": "string", "description": "<ocs><meta>…</meta>"
                                                                   "<data>…</data></ocs>"}}}


def ocs_metrics(version: int) -> dict[str, Any]:
    """OCS v1 answers failures with HTTP 200 (meta.statuscode 996); v2 maps the OCS code to the
    HTTP status, which becomes meta.statuscode too (100 -> 200, 996 -> 500)."""
    flag = "true includes the section; any other value, or none, leaves it out."
    failure = ("a missing or wrong key (SharedSecretMiddleware's message), or a collector "
               "without data")
    bad_format = {HTML: {"schema": EMPTY}}
    if version == 1:
        ok = {"description": "The metrics (meta.statuscode 100); or, as OCS v1 answers "
                             f"failures, meta.statuscode 996: {failure}.",
              "content": ocs_content("100", "996")}
        server_error = {"description": "A format other than json or xml: an empty page, as "
                                       "core finds no responder.", "content": bad_format}
    else:
        ok = {"description": "The metrics (meta.statuscode 200).", "content": ocs_content("200")}
        server_error = {"description": f"meta.statuscode 500: {failure}; or, for a format "
                                       "other than json or xml, an empty page.",
                        "content": ocs_content("500") | bad_format}
    return {"get": {
        "summary": f"ownCloud metrics app, OCS v{version}", "tags": ["owncloud"],
        "description": OCS_DESCRIPTION, "security": OCS_SECURITY,
        "parameters": [
            *(query(name, f"{name}: {flag}", {"type": "string"})
              for name in ("users", "files", "shares", "quota", "userData")),
            query("format", "The envelope's format; without it, the first Accept item naming "
                  "application/json or application/xml, else XML.",
                  {"type": "string", "enum": ["json", "xml"]})],
        "responses": {
            "200": ok,
            "404": NOT_OWNCLOUD,
            "429": {"description": "Too many wrong keys from this address: meta.statuscode "
                                   "429, HTTP 429, on v1 and v2.",
                    "headers": RETRY_AFTER, "content": ocs_content("429")},
            "500": server_error}}}


def metrics_download(summary: str, description: str) -> dict[str, Any]:
    return {"get": {
        "summary": summary, "tags": ["owncloud"], "security": OCS_SECURITY,
        "description": description + " " + DOWNLOAD_NOTE,
        "responses": {
            "200": {"description": "The CSV file.",
                    "headers": {"Content-Disposition": {
                        "description": 'attachment; filename="DataMetrics-<date, time>-<kind>'
                                       '.csv", the date and time as ownCloud formats them.',
                        "schema": {"type": "string"}}},
                    "content": {"text/csv": {"schema": {"type": "string"}}}},
            "404": NOT_OWNCLOUD,
            "429": {"description": "Too many wrong keys from this address.",
                    "headers": RETRY_AFTER,
                    "content": {"text/plain; charset=utf-8": {"schema": {"type": "string"}}}},
            "500": {"description": "A missing or wrong key: ownCloud's error page, as index.php "
                                   "shows the app's ForbiddenException; or a collector without "
                                   "data: the app's JSON [\"Could not get csv data.\"].",
                    "content": {HTML: {"schema": {"type": "string"}},
                                UTF8_JSON: {"schema": {
                                    "type": "array", "items": {"const": "Could not get csv data."},
                                    "minItems": 1, "maxItems": 1}}}}}}}


def coder_body(description: str, schema: dict[str, Any],
               headers: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"description": description, "content": {UTF8_JSON: {"schema": schema}}}
    return body | ({"headers": headers} if headers else {})


def coder(summary: str, description: str, ok: str,
          parameters: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    error = ref("CoderResponse")
    return {"get": {
        "summary": summary, "tags": ["coder"], "security": CODER_SECURITY,
        "description": description + " " + CODER_NOTE, "parameters": list(parameters),
        "responses": {
            "200": coder_body("The answer, one line of JSON.", ref(ok)),
            "400": coder_body("Query parameters have invalid values (`validations` names each, "
                              "unknown ones too, with Go's messages), or coderd's own errors.",
                              error),
            "401": coder_body("A missing or wrong key, with coderd's message and `detail`.",
                              error),
            "404": coder_body("History is not kept (the dau collector is disabled), or no UTC "
                              "days are (DAUs).", error),
            "429": coder_body("Too many wrong keys from this address.", error, RETRY_AFTER),
            "500": coder_body("The history store cannot be read; `detail` says why.", error),
            "503": coder_body("The history is not written yet (the dau collector's first run "
                              "has not finished); Retry-After says when to ask again.", error,
                              HISTORY_RETRY)}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "usage-exporter",
        "version": __version__,
        "description": "Usage metrics of self-hosted platforms, read from their SQL databases "
                       "on a schedule. Native routes answer errors as "
                       "`{\"code\": 404.1, \"message\": \"…\"}` with the HTTP status the "
                       "integer part of the code; compatibility routes answer as the platform "
                       "they imitate.",
    },
    "tags": [
        {"name": "native", "description": "The exporter's own API (key required)."},
        {"name": "prometheus", "description": "Metrics and health (no key)."},
        {"name": "synapse", "description": "Drop-in for Synapse's admin API."},
        {"name": "owncloud", "description": "Drop-in for the ownCloud metrics app's API."},
        {"name": "coder", "description": "Drop-in for Coder's insights API."},
        {"name": "openl2m", "description": "Drop-in for OpenL2M's stats API."},
    ],
    "paths": {
        "/": {"get": {
            "summary": "Admin page", "tags": ["prometheus"],
            "description": "A static page that asks for an API key and shows the snapshot.",
            "responses": {"200": text_body("The page.", "text/html; charset=utf-8")}}},
        "/metrics": {"get": {
            "summary": "Prometheus metrics", "tags": ["prometheus"],
            "description": "Rendered once per refresh. Text format 0.0.4, or OpenMetrics when "
                           "Accept asks for it; gzip when Accept-Encoding allows it.",
            "responses": {"200": text_body(
                "The exposition.", "text/plain; version=0.0.4; charset=utf-8",
                "application/openmetrics-text; version=1.0.0; charset=utf-8")}}},
        "/-/healthy": {"get": {
            "summary": "Liveness", "tags": ["prometheus"],
            "responses": {"200": text_body("The process serves.", "text/plain")}}},
        "/-/ready": {"get": {
            "summary": "Readiness", "tags": ["prometheus"],
            "responses": {
                "200": text_body("Every enabled collector has run once.", "text/plain"),
                "503": text_body("Waiting for the first run of a collector.", "text/plain")}}},
        "/api/v1/snapshot": native(
            "System values and collector status",
            "The latest result of every collector; `users=true` adds the per-user rows.",
            json_body("The snapshot.", ref("Snapshot")), "400",
            parameters=(query("users", "Add per-user rows.", {"type": "boolean"}),)),
        "/api/v1/users": native(
            "Per-user rows, paged", USERS_DESCRIPTION,
            json_body("One page.", ref("UserPage")), "400",
            parameters=(
                LIMIT.openapi,
                query("from", "The next_token of the previous page.",
                      {"type": "string", "maxLength": 16384}),
                query("order_by", "Any column of the rows (default user_id); an unknown one "
                      "is refused with the list of columns.", {"type": "string"}),
                query("dir", "f: ascending (default); b: descending.",
                      {"type": "string", "enum": ["f", "b"]}),
                query("search_term", "Case-insensitive substring of user_id or display_name.",
                      {"type": "string", "maxLength": 256}))),
        "/api/v1/users.csv": native(
            "Per-user rows as CSV",
            "Every user, one row each, columns as in /api/v1/users, in snapshot order. "
            + CSV_NOTE, text_body("The CSV file.", CSV)),
        "/api/v1/system.csv": native(
            "System values as CSV",
            "`metric,label,value`, one row per sample of the snapshot's metrics, its labels as "
            "`name=value` pairs joined by commas (histograms as their `le=` buckets, count and "
            "sum), as `usage-exporter collect --format csv` prints them. " + CSV_NOTE,
            text_body("The CSV file.", CSV)),
        "/api/v1/history/dau": native(
            "Daily active users",
            "Distinct active users per calendar day in the chosen zone, days without activity "
            "left out.",
            json_body("The series.", ref("DauHistory")), "400", "404",
            parameters=HISTORY_PARAMETERS),
        "/api/v1/history/user-status": native(
            "Users by status per day",
            "Accounts in each status per calendar day (the last sample of each day).",
            json_body("The series.", ref("StatusHistory")), "400", "404",
            parameters=HISTORY_PARAMETERS),
        "/api/v1/stats": native(
            "OpenL2M-style usage windows", STATS_DESCRIPTION,
            json_body("The windows.", ref("Stats"))),
        "/api/v1/audits": native(
            "API audit log", AUDITS_DESCRIPTION,
            json_body("Entries, newest first.", {"type": "array", "items": ref("Audit")}),
            "400", "404",
            parameters=(
                query("action", "Only this route path, e.g. /api/v1/users.",
                      {"type": "string", "maxLength": 256}),
                query("start", "Earliest entry (inclusive): ISO 8601 timestamp or date "
                      "(its start); without an offset, UTC.", {"type": "string"}),
                query("end", "Latest entry (inclusive): ISO 8601 timestamp or date (its last "
                      "millisecond); without an offset, UTC.", {"type": "string"}),
                LIMIT.openapi,
                OFFSET.openapi)),
        "/api/v1/openapi.json": native(
            "This document", "The OpenAPI 3.1 description of every route.",
            json_body("The document.", {"type": "object"})),
        "/_synapse/admin/v1/statistics/users/media": {"get": {
            "summary": "Synapse media statistics", "tags": ["synapse"],
            "description": "As Synapse's `GET /_synapse/admin/v1/statistics/users/media`: same "
                           "parameters, paging and errors (`{errcode, error}`). Answers 404 "
                           "M_UNRECOGNIZED on platforms other than Synapse.",
            "security": NATIVE_SECURITY,
            "parameters": [
                query("from", "Offset of the first row.", {"type": "integer", "minimum": 0}),
                query("limit", "Rows per page (default 100).", {"type": "integer",
                                                                 "minimum": 0}),
                query("from_ts", "Only media created at or after (ms).",
                      {"type": "integer", "minimum": 0}),
                query("until_ts", "Only media created before (ms); above from_ts.",
                      {"type": "integer", "minimum": 0}),
                query("order_by", "Sort column (default user_id).",
                      {"type": "string",
                       "enum": ["media_length", "media_count", "user_id", "displayname"]}),
                query("dir", "f (default) or b.", {"type": "string", "enum": ["f", "b"]}),
                query("search_term", "SQL LIKE pattern on user id localpart or display name.",
                      {"type": "string", "minLength": 1})],
            "responses": {
                "200": json_body("One page.", ref("SynapseMediaPage")),
                **{status: json_body(description, ref("MatrixError")) for status, description in (
                    ("400", "Invalid parameter."), ("401", "No key."),
                    ("403", "Not a valid key, or the request cannot be recorded."),
                    ("404", "Not a Synapse database."),
                    ("429", "Too many wrong keys from this address (M_LIMIT_EXCEEDED)."),
                    ("503", "The database cannot be read."))}}}},
        "/ocs/v1.php/apps/metrics/api/v1/metrics": ocs_metrics(1),
        "/ocs/v2.php/apps/metrics/api/v1/metrics": ocs_metrics(2),
        "/index.php/apps/metrics/download-api/users": metrics_download(
            "ownCloud metrics app, users CSV",
            "One row per account with a home storage, in the home mounts' order: userId, "
            "userDisplayName, lastLogin, quotaUsed, quotaFree, quotaTotal, files, sessions, "
            "sharesUser, sharesGroup, sharesLink, sharesGuest, sharesFederated, userBackend; "
            "fields quoted as PHP's fputcsv quotes them."),
        "/index.php/apps/metrics/download-api": metrics_download(
            "ownCloud metrics app, users CSV (deprecated route)",
            "The users CSV, as the app still routes its old download path."),
        "/index.php/apps/metrics/download-api/system": metrics_download(
            "ownCloud metrics app, system CSV",
            "One row: freeStorage, usedStorage, totalFiles, registeredUsers, activeUsers, "
            "concurrentUsers, userShares, groupShares, linkShares, guestShares, "
            "federatedShares."),
        "/api/v2/insights/daus": coder(
            "Coder deployment DAUs", DAUS_DESCRIPTION, "CoderDAUs",
            (query("tz_offset", "Whole hours east of UTC (default 0; an empty value is the "
                   "default); any integer strconv.Atoi reads, as long as the dates stay in the "
                   "years 1 to 9999.", INT64),)),
        "/api/v2/insights/user-status-counts": coder(
            "Coder users by status over time", STATUS_COUNTS_DESCRIPTION, "CoderStatusCounts",
            (query("timezone", "An IANA zone (default UTC) kept in collectors.dau.timezones.",
                   {"type": "string"}),
             query("tz_offset", "Deprecated by Coder: whole hours east of UTC, as the zone "
                   "Etc/GMT∓N; not with a timezone unless 0.", INT64),
             query("interval", "Accepted and ignored, as by Coder.", INT64))),
        "/api/stats/": {"get": {
            "summary": "OpenL2M usage statistics", "tags": ["openl2m"],
            "description": OPENL2M_DESCRIPTION, "security": NATIVE_SECURITY,
            "responses": {
                "200": json_body("The statistics.", ref("OpenL2MStats")),
                "401": {**json_body("No key, or not a valid one.", ref("DrfError")),
                        "headers": {"WWW-Authenticate": {
                            "description": "Token", "schema": {"type": "string"}}}},
                "404": json_body("The platform has no events.", ref("DrfError")),
                "429": {**json_body("Too many wrong keys from this address.", ref("DrfError")),
                        "headers": RETRY_AFTER},
                "503": json_body("The database cannot be read, or the request cannot be "
                                 "recorded in the audit log.", ref("DrfError"))}}},
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": "A key of api.keys (Authorization: Bearer or Token)."},
            "ocMetricsApiKey": {"type": "apiKey", "in": "header", "name": "OC-MetricsApiKey",
                                "description": "A key of api.keys, as the metrics app takes "
                                               "its shared secret."},
            "coderSessionToken": {"type": "apiKey", "in": "header",
                                  "name": "Coder-Session-Token",
                                  "description": "A key of api.keys, as Coder takes a session "
                                                 "token."},
        },
        "responses": {
            name: json_body(description, NATIVE_ERROR) for name, description in (
                ("BadRequest", "A parameter is invalid (400.x)."),
                ("Unauthorized", "No API key (401.1)."),
                ("Forbidden", "The key is not valid (403.1) or no keys are configured (403.2)."),
                ("NotFound", "Not kept: history without the dau collector (404.2), audit log "
                             "(404.3)."),
                ("TooManyRequests", "Too many wrong keys from this address (429.1); "
                                    "Retry-After says when to try again."),
                ("Unavailable", "The history store cannot be read (503.1), the request cannot "
                                "be recorded in the audit log (503.2), or the history is not "
                                "written yet (503.3: the dau collector's first run has not "
                                "finished; Retry-After says when to ask again), or the "
                                "database cannot be read for /api/v1/stats (503.4)."))
        },
        "schemas": {
            "Error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "number"}, "message": {"type": "string"}}},
            "MatrixError": {
                "type": "object", "required": ["errcode", "error"],
                "properties": {"errcode": {"type": "string"}, "error": {"type": "string"}}},
            "UserRow": {
                "type": "object", "required": ["user_id"],
                "description": "user_id and one property per per-user column of the "
                               "collectors (null when unknown).",
                "properties": {"user_id": {"type": "string"}},
                "additionalProperties": True},
            "UserPage": {
                "type": "object", "required": ["users", "total"],
                "properties": {
                    "users": {"type": "array", "items": ref("UserRow")},
                    "total": {"type": "integer", "minimum": 0},
                    "next_token": {"type": "string"}},
                "additionalProperties": False},
            "Snapshot": {
                "type": "object",
                "required": ["platform", "platform_version", "platform_version_kind",
                             "database_up", "ready", "collectors", "metrics", "metric_help"],
                "properties": {
                    "platform": {"type": "string"},
                    "platform_version": {"type": "string"},
                    "platform_version_kind": {"type": "string",
                                              "enum": ["release", "database schema"]},
                    "metric_help": {"type": "object",
                                    "additionalProperties": {"type": "string"}},
                    "database_up": {"type": ["boolean", "null"]},
                    "ready": {"type": "boolean"},
                    "collectors": {"type": "object", "additionalProperties": {
                        "type": "object",
                        "required": ["state", "duration_seconds", "last_success",
                                     "last_error", "runs", "failures"],
                        "properties": {
                            "state": {"enum": ["pending", "ok", "failed", "not_applicable"]},
                            "duration_seconds": {"type": "number"},
                            "last_success": NUMBER_OR_NULL,
                            "last_error": {"type": ["string", "null"]},
                            "runs": {"type": "integer"},
                            "failures": {"type": "integer"}}}},
                    "metrics": {"type": "object", "description": "By metric name: a number, "
                                "an object by label value, a list of {labels, value}, or a "
                                "histogram; a custom SQL metric is a list of {sample, labels, "
                                "value}, one per exposed sample."},
                    "users": {"type": "array", "items": ref("UserRow")}}},
            "DauHistory": {
                "type": "object", "required": ["timezone", "from", "to", "entries"],
                "properties": {
                    "timezone": {"type": "string"},
                    "from": {"type": "string", "format": "date"},
                    "to": {"type": "string", "format": "date"},
                    "entries": {"type": "array", "items": {
                        "type": "object", "required": ["date", "amount"],
                        "properties": {"date": {"type": "string", "format": "date"},
                                       "amount": {"type": "integer"}}}}}},
            "StatusHistory": {
                "type": "object", "required": ["timezone", "status_counts"],
                "properties": {
                    "timezone": {"type": "string"},
                    "status_counts": {"type": "object", "additionalProperties": {
                        "type": "array", "items": {
                            "type": "object", "required": ["date", "count"],
                            "properties": {"date": {"type": "string", "format": "date"},
                                           "count": {"type": "integer"}}}}}}},
            "StatsValue": {
                "type": "object", "required": ["label", "value"],
                "properties": {"label": {"type": "string"}, "value": NUMBER_OR_NULL}},
            "Stats": {
                "type": "object", "required": ["usage", "timezone"],
                "properties": {
                    "timezone": {"type": "string"},
                    "usage": {
                        "type": "object",
                        "required": ["users_last_hour", "users_today", "users_last_7_days",
                                     "users_last_31_days", "sessions_now", "shares_now"],
                        "additionalProperties": ref("StatsValue")}}},
            "OpenL2MStats": {
                "type": "object", "required": ["database", "usage"],
                "properties": {
                    "database": {"type": "object", "additionalProperties": ref("StatsValue")},
                    "usage": {"type": "object", "additionalProperties": ref("StatsValue")}}},
            "DrfError": {
                "type": "object", "required": ["detail"],
                "properties": {"detail": {"type": "string"}}},
            "Audit": {
                "type": "object",
                "required": ["actorId", "action", "acteeId", "details", "loggedAt"],
                "properties": {
                    "actorId": {"type": "string", "description": "The API key's name."},
                    "action": {"type": "string", "description": "The route path."},
                    "acteeId": {"type": "null"},
                    "details": {"type": "object", "additionalProperties": {
                        "type": ["string", "array", "null"], "items": {"type": "string"}}},
                    "loggedAt": {"type": "string", "format": "date-time"}}},
            "SynapseMediaPage": {
                "type": "object", "required": ["users", "total"],
                "properties": {
                    "users": {"type": "array", "items": {
                        "type": "object",
                        "required": ["user_id", "displayname", "media_count", "media_length"],
                        "properties": {
                            "user_id": {"type": "string"},
                            "displayname": {"type": ["string", "null"]},
                            "media_count": {"type": "integer"},
                            "media_length": {"type": ["integer", "null"]}}}},
                    "total": {"type": "integer"},
                    "next_token": {"type": "integer"}}},
            "OcsEnvelope": {
                "type": "object", "required": ["ocs"],
                "properties": {"ocs": {
                    "type": "object", "required": ["meta", "data"],
                    "properties": {
                        "meta": {
                            "type": "object",
                            "required": ["status", "statuscode", "message", "totalitems",
                                         "itemsperpage"],
                            "properties": {
                                "status": {"enum": ["ok", "failure"]},
                                "statuscode": {"type": "integer"},
                                "message": {"type": "string"},
                                "totalitems": {"const": ""},
                                "itemsperpage": {"const": ""}}},
                        "data": {"anyOf": [
                            {"type": "array", "maxItems": 0,
                             "description": "A failure: PHP's empty array."},
                            ref("OcsMetrics")]}}}}},
            "OcsMetrics": {
                "type": "object", "required": ["timeStamp"],
                "properties": {
                    "timeStamp": {"type": "integer"},
                    "users": {"type": "object", "properties": {
                        name: {"type": "integer"} for name in (
                            "totalCount", "activeUsersCount", "concurrentUsersCount")}},
                    "files": {"type": "object", "properties": {
                        "totalFilesCount": {"type": "integer"}, "storage": ref("OcsStorage")}},
                    "shares": ref("OcsShares"),
                    "userData": {
                        "anyOf": [{"type": "array", "maxItems": 0}, {
                            "type": "object",
                            "description": "By user id, in the home mounts' order. With "
                                           "database.metrics_app_version: legacy, the older "
                                           "shape: no backend or lastLogin, quota {limit, "
                                           "usage}, activeSessions a list of {agentName}.",
                            "additionalProperties": {
                                "type": "object", "required": ["displayName"],
                                "properties": {
                                    "displayName": {"type": ["string", "null"]},
                                    "backend": {"type": "string"},
                                    "files": {"type": "object", "properties": {
                                        "totalFiles": {"type": "integer"}}},
                                    "shares": ref("OcsShares"),
                                    "quota": {"anyOf": [ref("OcsQuota"), {
                                        "type": "object", "properties": {
                                            "limit": {"type": "integer"},
                                            "usage": {"type": "integer"}}}]},
                                    "activeSessions": {"anyOf": [
                                        {"type": "integer"},
                                        {"type": "array", "items": {
                                            "type": "object", "properties": {
                                                "agentName": {"type": "string"}}}}]},
                                    "lastLogin": {"type": "integer"}}}}]}}},
            "OcsQuota": {"type": "object", "properties": {
                name: {"type": "integer"} for name in ("free", "total", "used", "relative")}},
            "OcsStorage": {"type": "object", "properties": {
                name: {"type": "integer"} for name in (
                    "used", "usedQuota", "usedOther", "total", "free", "relative")}},
            "OcsShares": {"type": "object", "properties": {
                name: {"type": "integer"} for name in (
                    "userShareCount", "groupShareCount", "linkShareCount", "guestShareCount",
                    "federatedShareCount")}},
            "CoderResponse": {
                "type": "object", "required": ["message"], "additionalProperties": False,
                "properties": {
                    "message": {"type": "string"},
                    "detail": {"type": "string"},
                    "validations": {"type": "array", "items": {
                        "type": "object", "required": ["field", "detail"],
                        "properties": {"field": {"type": "string"},
                                       "detail": {"type": "string"}}}}}},
            "CoderDAUs": {
                "type": "object", "required": ["entries", "tz_hour_offset"],
                "additionalProperties": False,
                "properties": {
                    "entries": {"type": "array", "items": {
                        "type": "object", "required": ["date", "amount"],
                        "properties": {"date": {"type": "string", "format": "date"},
                                       "amount": {"type": "integer", "minimum": 0}}}},
                    "tz_hour_offset": {"type": "integer"}}},
            "CoderStatusCounts": {
                "type": "object", "required": ["status_counts"], "additionalProperties": False,
                "properties": {"status_counts": {
                    "type": "object", "description": "By status.",
                    "additionalProperties": {"type": "array", "items": {
                        "type": "object", "required": ["date", "count"],
                        "properties": {"date": {"type": "string", "format": "date-time"},
                                       "count": {"type": "integer", "minimum": 0}}}}}}},
        },
    },
}
