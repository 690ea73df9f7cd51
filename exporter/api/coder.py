"""Coder's insights API, drop-in: GET /api/v2/insights/daus and /api/v2/insights/user-status-counts.

Parameters, validation errors, shapes and the 401 as coderd serves them
(docs/platforms/custom.md, "Coder"; coderd/insights.go, httpapi/queryparams.go,
httpmw/apikey.go), answered from the history store that the dau collector fills. The key goes in
Coder-Session-Token (or Authorization: Bearer).

DAUs are Coder's to the day: its days start at 00:00 UTC whatever tz_offset says (Go's Truncate
ignores the zone), and tz_offset only changes the date printed on each UTC day, so the entries
come from the UTC days of the history (exact where the platform keeps daily activity). A tz_offset
that would print dates outside the years 1 to 9999 is refused, which Go would print.

User status counts are each status at every local midnight of the zone asked for, read from the
days the dau collector recorded for that zone (which must be in collectors.dau.timezones), a
series of zeros for a status some change has named that nobody held. Two differences remain: in
the part of an hour before a local midnight, Coder already answers that coming midnight, which
the history holds once the collector has run after it; and Coder leaves out a status that only
users deleted before the 60 days ever held, which this answers as zeros.

Before the dau collector's first run has written the history, both routes answer 503 with
Retry-After (coderd's message shape), never a 404 or 400.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from exporter.api.native import HISTORY_PENDING, HISTORY_RETRY_AFTER, history_pending
from exporter.history import HistoryError, HistoryStore
from exporter.http import Context, Handler, HttpError, Request, Response, retry_after_header

DAUS = "/api/v2/insights/daus"
STATUS_COUNTS = "/api/v2/insights/user-status-counts"
DAYS_BACK = 60  # "Always return 60 days of data", plus today
SIGNED_OUT = "You are signed out or your session has expired. Please sign in again to continue."
INVALID_PARAMS = "Query parameters have invalid values."
GO_INT = re.compile(r"[+-]?[0-9]+")
INT64 = 2**63
DAY = 86400
GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
              "\v": "\\v", '"': '\\"', "\\": "\\\\"}


class CoderError(Exception):
    """An answer in codersdk.Response's shape: message, optional detail and validations."""

    def __init__(self, status: int, message: str, detail: str | None = None,
                 validations: list[dict[str, str]] | None = None,
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []
        self.body: dict[str, Any] = {"message": message}
        if detail is not None:
            self.body["detail"] = detail
        if validations:
            self.body["validations"] = validations


def coder_json(status: int, body: dict[str, Any]) -> Response:
    """httpapi.Write: Go's encoding/json, HTML characters escaped, bytes that are not UTF-8 as
    U+FFFD, a newline at the end."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return Response(status, (text + "\n").encode(), "application/json; charset=utf-8")


def go_quote(value: str) -> str:
    """Go's %q (strconv.Quote): printable characters as they are, the others escaped, and bytes
    that are not UTF-8 (kept as surrogates by the query parser) as \\xHH."""
    out = ['"']
    for char in value:
        code = ord(char)
        if char in GO_ESCAPES:
            out.append(GO_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char == " " or unicodedata.category(char)[0] in "LMNPS":
            out.append(char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


class QueryParams:
    """httpapi.QueryParamParser: the first value of each parameter, an empty one as absent,
    every problem collected, and parameters nobody asked for reported too."""

    def __init__(self, request: Request) -> None:
        # Go's url.ParseQuery keeps the bytes sent; surrogates keep the ones that are not UTF-8.
        self.values = parse_qs(request.environ.get("QUERY_STRING", ""), keep_blank_values=True,
                               errors="surrogateescape")
        self.parsed: set[str] = set()
        self.errors: list[dict[str, str]] = []

    def string(self, name: str) -> str:
        self.parsed.add(name)
        return self.values.get(name, [""])[0]

    def integer(self, name: str, default: int) -> int:
        raw = self.string(name)
        if raw == "":
            return default
        problem = None if GO_INT.fullmatch(raw) else "invalid syntax"
        # Checked on the digits first: Python will not convert more than 4300 of them.
        if problem is None and (len(raw.lstrip("+-").lstrip("0")) > 19
                                or not -INT64 <= int(raw) < INT64):
            problem = "value out of range"
        if problem is not None:
            self.errors.append({"field": name, "detail": (
                f"Query param {go_quote(name)} must be a valid integer "
                f"(strconv.Atoi: parsing {go_quote(raw)}: {problem})")})
            return 0
        return int(raw)

    def check(self) -> None:
        self.errors += [{"field": name, "detail": f"Query param {go_quote(name)} is not a valid "
                         "query param"} for name in self.values if name not in self.parsed]
        if self.errors:
            raise CoderError(400, INVALID_PARAMS, validations=self.errors)


def offset_zone(offset: int) -> str:
    """Coder's own mapping of tz_offset (hours east of UTC); Etc/GMT zones have the POSIX sign."""
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def next_hour(now: float) -> int:
    """The end of Coder's range: the next full hour (Go truncates absolute time)."""
    return (int(now) // 3600 + 1) * 3600


def load_location(name: str) -> ZoneInfo:
    """time.LoadLocation, with its errors."""
    if ".." in name or name[0] in "/\\":
        raise CoderError(400, "Invalid timezone.", "time: invalid location name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CoderError(400, "Invalid timezone.", f"unknown time zone {name}") from None


def local_midnight_utc(day: date, zone: ZoneInfo) -> str:
    """A local midnight as Go writes a time.Time read from PostgreSQL in UTC (RFC 3339)."""
    instant = datetime.combine(day, time(), zone).astimezone(UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def routes(context: Context) -> dict[str, Handler]:
    def authorize(request: Request) -> None:
        try:
            context.authorize(request)
        except HttpError as error:
            if error.status == 429:
                # As coderd's rate limiter answers: 429 with only a message.
                raise CoderError(429, error.message, headers=retry_after_header(error)) from None
            detail = {401.1: 'Cookie "coder_session_token" or query parameter must be provided.',
                      403.1: "API key is invalid."}.get(error.code, error.message)
            raise CoderError(401, SIGNED_OUT, detail) from None

    def history(zone: str, failure: str, missing: CoderError) -> HistoryStore:
        """The store, if it holds days of `zone`; else `missing`."""
        if context.history is None:
            raise CoderError(404, "History is not kept: enable the dau collector.")
        if history_pending(context):
            raise CoderError(503, HISTORY_PENDING, headers=[
                ("Retry-After", str(HISTORY_RETRY_AFTER))])
        try:
            store = context.history()
            recorded = store.timezones()
        except HistoryError as error:
            raise CoderError(500, failure, str(error)) from None
        if zone not in recorded:
            raise missing
        return store

    def daus(request: Request) -> Response:
        authorize(request)
        params = QueryParams(request)
        offset = params.integer("tz_offset", 0)
        params.check()
        failure = "Internal error fetching DAUs."
        store = history("UTC", failure, CoderError(
            404, "No daily active users are kept by UTC day: add UTC to "
            "collectors.dau.timezones."))
        end = next_hour(context.clock())
        # Coder's buckets: from the UTC midnight 60 days before the end's, to the end.
        first = datetime.fromtimestamp(end // DAY * DAY - DAYS_BACK * DAY, UTC).date()
        last = datetime.fromtimestamp(end - 1, UTC).date()
        try:
            amounts = dict(store.daily_active("UTC", first))
        except HistoryError as error:
            raise CoderError(500, failure, str(error)) from None
        try:
            # Each UTC midnight's date in the tz_offset zone: west of UTC, the day before.
            shift = timedelta(days=offset // 24)
            # Every day of the range, 0 where none was recorded, as Coder answers days without
            # usage.
            entries = [{"date": (day + shift).isoformat(), "amount": amounts.get(day, 0)}
                       for day in (first + timedelta(days=n)
                                   for n in range((last - first).days + 1))]
        except OverflowError:
            raise CoderError(400, INVALID_PARAMS, validations=[{
                "field": "tz_offset", "detail": "Query param \"tz_offset\" puts the dates "
                "outside the years 1 to 9999"}]) from None
        return coder_json(200, {"entries": entries, "tz_hour_offset": offset})

    def status_counts(request: Request) -> Response:
        authorize(request)
        params = QueryParams(request)
        zone_name = params.string("timezone")
        offset = params.integer("tz_offset", 0)
        params.integer("interval", 0)  # accepted and ignored, as by Coder
        params.check()
        if zone_name and offset:
            raise CoderError(400, 'Provide either "timezone" or "tz_offset", not both.')
        field = "timezone" if zone_name else "tz_offset"
        zone_name = zone_name or offset_zone(offset)
        zone = load_location(zone_name)
        failure = "Internal error fetching user status counts over time."
        store = history(zone_name, failure, CoderError(400, INVALID_PARAMS, validations=[{
            "field": field, "detail": f"No history is kept for time zone {go_quote(zone_name)}; "
            "add it to collectors.dau.timezones."}]))
        # Coder's points: every local midnight from 60 days before the end's day to that day.
        last = datetime.fromtimestamp(next_hour(context.clock()), zone).date()
        first = last - timedelta(days=DAYS_BACK)
        try:
            series = store.status_counts(zone_name, first)
        except HistoryError as error:
            raise CoderError(500, failure, str(error)) from None
        # Coder leaves deleted accounts out rather than counting them.
        series.pop("deleted", None)
        counts = {status: dict(points) for status, points in series.items()}
        # Each status at every local midnight that was recorded, 0 where it had nobody.
        days = sorted({day for points in counts.values() for day in points if day <= last})
        return coder_json(200, {"status_counts": {
            status: [{"date": local_midnight_utc(day, zone), "count": values.get(day, 0)}
                     for day in days]
            for status, values in sorted(counts.items())}})

    def answered(handler: Handler) -> Handler:
        def respond(request: Request) -> Response:
            try:
                return handler(request)
            except CoderError as error:
                response = coder_json(error.status, error.body)
                response.headers += error.headers
                return response
        return respond

    return {DAUS: answered(daus), STATUS_COUNTS: answered(status_counts)}
