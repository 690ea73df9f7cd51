"""OpenL2M's stats API, drop-in: GET /api/stats/ with `Authorization: Token <key>`.

The shape of OpenL2M's APIStatsView (openl2m/api/views.py): {"database": ..., "usage": ...}, each
item {"label", "value"} under OpenL2M's own keys and labels, in its order (switches/stats.py
get_database_info and get_usage_info). Errors are Django REST framework's: {"detail": "..."}.

`database` and the `*_total` counts are the events collector's named totals (the totals relation);
the windows are counted when asked from the events relation, in OpenL2M's windows (the same as
/api/v1/stats: TIME_ZONE is the first zone of collectors.dau.timezones). docs/examples/openl2m.yaml
names the kinds this reads: `login` (distinct users), `change`, `command` and `api_call` (events),
`device_view` (views and changes; distinct devices in the last hour and today) and `device` (any
entry naming a device; distinct devices in the last 7 and 31 days), as OpenL2M counts each.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from exporter.api.native import applies, events_in_windows, openl2m_windows
from exporter.exposition import snapshot_json
from exporter.http import (
    Context,
    Handler,
    HttpError,
    Request,
    Response,
    encode_json,
    retry_after_header,
)

STATS = "/api/stats/"
DATABASE = (("switches", "Switches"), ("switchgroups", "Switch Groups"), ("vlans", "Vlans"),
            ("vlan_groups", "Vlan Groups"), ("snmp_profiles", "SNMP Profiles"),
            ("credentials_profiles", "Credentials Profiles"), ("commands", "Commands"),
            ("command_lists", "Command Lists"), ("api_tokens", "API Tokens"),
            ("log_entries", "Log Entries"))
# get_usage_info's keys and labels in its order: each counted from an events kind (its events,
# users or subjects in the window its key ends with), or, for a *_total, the total of that name.
USAGE: tuple[tuple[str, str, str | None, str], ...] = (
    ("devices_last_hour", "Devices in last hour", "device_view", "subjects"),
    ("devices_today", "Devices today", "device_view", "subjects"),
    ("devices_last_7_days", "Devices last 7 days", "device", "subjects"),
    ("devices_last_31_days", "Devices Last 31 Days", "device", "subjects"),
    ("changes_last_hour", "Changes in last hour", "change", "events"),
    ("changes_today", "Changes today", "change", "events"),
    ("changes_last_7_days", "Changes last 7 days", "change", "events"),
    ("changes_last_31_days", "Changes last 31 days", "change", "events"),
    ("changes_total", "Total Changes", None, ""),
    ("users_last_hour", "Users in last hour", "login", "users"),
    ("users_today", "Users today", "login", "users"),
    ("users_last_7_days", "Users last 7 days", "login", "users"),
    ("users_last_31_days", "Users last 31 days", "login", "users"),
    ("api_calls_today", "API calls today", "api_call", "events"),
    ("api_calls_last_7_days", "API calls last 7 days", "api_call", "events"),
    ("api_calls_last_31_days", "API calls last 31 days", "api_call", "events"),
    ("commands_today", "Commands today", "command", "events"),
    ("commands_last_7_days", "Commands last 7 days", "command", "events"),
    ("commands_last_31_days", "Commands last 31 days", "command", "events"),
    ("commands_total", "Total Commands", None, ""),
)
# What DRF and OpenL2M's TokenAuthentication answer for a missing token, an API without keys
# and any other refused token (rest_framework/authentication.py, openl2m/api/authentication.py).
REFUSALS = {401.1: "Authentication credentials were not provided.", 403.2: "API is disabled."}
INVALID_TOKEN = "Invalid token."


def drf_error(status: int, detail: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, encode_json({"detail": detail}), headers=headers or [])


def routes(context: Context, today_zone: str = "UTC") -> dict[str, Handler]:
    def stats(request: Request) -> Response:
        try:
            context.authorize(request)
        except HttpError as error:
            if error.status in (401, 403):
                return drf_error(401, REFUSALS.get(error.code, INVALID_TOKEN),
                                 [("WWW-Authenticate", "Token")])
            return drf_error(error.status, error.message, retry_after_header(error))
        if not applies(context, ("events",)):
            return drf_error(404, "Not found.")
        totals = snapshot_json(context.snapshot())["metrics"].get("usage_total") or {}
        windows = openl2m_windows(context.clock(), ZoneInfo(today_zone))
        try:
            counts = events_in_windows(context, windows)
        except HttpError as error:
            return drf_error(error.status, error.message)
        usage: dict[str, dict[str, Any]] = {}
        for key, label, kind, measure in USAGE:
            if kind is None:
                value = totals.get(key)
            else:
                window = next(w for w in windows if key.endswith(w))
                found = counts.get(kind)
                value = getattr(found[window], measure) if found else 0
            usage[key] = {"label": label, "value": value}
        database = {key: {"label": label, "value": totals[key]}
                    for key, label in DATABASE if key in totals}
        return Response.json({"database": database, "usage": usage})

    return {STATS: stats}
