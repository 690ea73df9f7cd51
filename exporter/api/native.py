"""The native API: /api/v1/*. Errors are {"code": 404.1, "message": "..."} with the HTTP status
the integer part of the code. exporter.api.openapi describes every route."""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Subquery, case, func, select
from sqlalchemy.exc import SQLAlchemyError

from collectors.events import ALL_TIME, EventCounts, Window, count_events
from exporter.api.audit import AuditLog, bound
from exporter.api.csvout import stream_csv, stream_csv_columns
from exporter.api.openapi import OPENAPI
from exporter.api.paging import TokenError, UserQuery
from exporter.api.parameters import DAYS, LIMIT, OFFSET, TZ_OFFSET
from exporter.db import DatabaseUnavailable, describe_error
from exporter.exposition import metric_rows, snapshot_json
from exporter.history import HistoryError, HistoryStore
from exporter.http import Context, Handler, HttpError, Request, Response, encode_json
from exporter.snapshot import Snapshot
from exporter.usercolumns import batched, cells, user_ids, user_rows

T = TypeVar("T")
ACTIVITY_READERS = ("users", "dau")  # the collectors that need the activity relation
# Seconds a history route asks a client to wait while the first history write is pending.
HISTORY_RETRY_AFTER = 5
HISTORY_PENDING = ("The history is not written yet: the dau collector has not finished its "
                   "first run.")
MAX_TEXT = 256


def flag(request: Request, name: str) -> bool:
    value = (request.param(name) or "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise HttpError(400.1, f"Parameter {name} must be true or false.")
    return value in ("true", "1")


def bounded_text(request: Request, name: str) -> str | None:
    value = request.param(name)
    if value is not None and len(value) > MAX_TEXT:
        raise HttpError(400.8, f"Parameter {name} must be at most {MAX_TEXT} characters.")
    return value


def csv_response(body: Iterable[bytes], filename: str) -> Response:
    return Response(200, body, "text/csv; charset=utf-8; header=present",
                    [("Content-Disposition", f'attachment; filename="{filename}"')])


def snapshot_with_users(snapshot: Snapshot) -> Iterator[bytes]:
    """snapshot_json(snapshot, users=True) as Response.json would encode it, in chunks: the
    users a batch at a time, so that a million of them are never one list in memory."""
    head = encode_json(snapshot_json(snapshot))
    columns = snapshot.user_columns()
    separator = b""
    yield head[:-1] + b', "users": ['
    for ids in batched(user_ids(columns.values())):
        yield separator + encode_json(user_rows(ids, columns))[1:-1]
        separator = b", "
    yield b"]}"


def history_zone(request: Request) -> str:
    """`tz` (an IANA name) or `tz_offset` (whole hours east of UTC, as Coder takes it)."""
    if request.param("tz") is not None and request.param("tz_offset") is not None:
        raise HttpError(400.3, 'Provide either "tz" or "tz_offset", not both.')
    if request.param("tz_offset") is not None:
        offset = TZ_OFFSET.value(request)
        # Etc/GMT zones have the POSIX sign: Etc/GMT-2 is two hours east of UTC.
        return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"
    return request.param("tz") or "UTC"


def openl2m_windows(now: float, zone: ZoneInfo) -> dict[str, tuple[float, float | None]]:
    """OpenL2M's windows at `now` (switches/stats.py, TIME_ZONE = `zone`), each [start, end),
    None = open, by the suffix of its keys: the last hour; today, the local calendar day; the
    last 7 and 31 days, from local midnight of the UTC date N days back (Django reads that naive
    date in TIME_ZONE), so N whole days plus today."""
    today = datetime.fromtimestamp(now, zone).date()
    utc_today = datetime.fromtimestamp(now, UTC).date()

    def midnight(day: date) -> float:
        return datetime.combine(day, time(), zone).timestamp()

    return {"last_hour": (now - 3600, None),
            "today": (midnight(today), midnight(today + timedelta(days=1))),
            "last_7_days": (midnight(utc_today - timedelta(days=7)), None),
            "last_31_days": (midnight(utc_today - timedelta(days=31)), None)}


WINDOW_LABELS = {"last_hour": "in the last hour", "today": "today",
                 "last_7_days": "in the last 7 days", "last_31_days": "in the last 31 days",
                 "total": "in total"}


class ActivityIndex:
    """When each user active since `since` was last active, as the activity relation said once:
    enough to count the distinct users active in any window starting at or after `since` that is
    open or ends at `end`, by bisection. Two sorted arrays: each user's latest activity, and each
    user's latest before `end` (a row after `end`, a clock ahead, must not hide one within)."""

    def __init__(self, rows: Sequence[tuple[float, float | None]], since: float,
                 end: float) -> None:
        self.since, self.end = since, end
        self._latest = array("d", sorted(latest for latest, _ in rows))
        self._before_end = array("d", sorted(before for _, before in rows if before is not None))

    @classmethod
    def read(cls, conn: Connection, relations: Mapping[str, Subquery], since: float,
             end: float) -> ActivityIndex:
        activity = relations["activity"]
        last_active = activity.c.last_active
        return cls(conn.execute(
            select(func.max(last_active), func.max(case((last_active < end, last_active))))
            .where(activity.c.user_id.is_not(None), last_active >= since)
            .group_by(activity.c.user_id)).all(), since, end)

    def users(self, start: float, end: float | None) -> int:
        """Distinct users active at or after `start` (and before `end`, when given)."""
        assert start >= self.since and end in (None, self.end), "a window the index can answer"
        times = self._latest if end is None else self._before_end
        return len(times) - bisect_left(times, start)


def applies(context: Context, collectors: Iterable[str]) -> bool:
    """Whether the platform has what any of these collectors read, and the route may read it."""
    states = context.snapshot().collectors
    return context.read is not None and any(
        name in states and states[name].state != "not_applicable" for name in collectors)


def read_now(context: Context, relations: list[str], query: Callable[..., T]) -> T:
    """context.read, a database that cannot be read answered as 503.4."""
    assert context.read is not None
    try:
        return context.read(relations, query)
    except (DatabaseUnavailable, SQLAlchemyError) as error:
        raise HttpError(503.4, f"The database cannot be read: {describe_error(error)}") from None


def events_in_windows(context: Context, windows: Mapping[str, Window]) -> dict[
        str, dict[str, EventCounts]]:
    """Each kind's events in each window, read now from the events relation; none where the
    platform has no events."""
    if not applies(context, ("events",)):
        return {}
    return read_now(context, ["events"], lambda conn, relations: count_events(
        conn, relations["events"], windows))


def history_pending(context: Context) -> bool:
    """Whether the history is kept but not written yet (the dau collector's first run is still
    to finish): the history routes then answer 503 with Retry-After, never a 404 or 400."""
    return context.history is not None and not context.snapshot().has_succeeded("dau")


def routes(context: Context, today_zone: str = "UTC") -> dict[str, Handler]:
    """`today_zone`: the calendar day of /api/v1/stats' "today" (the first dau time zone)."""

    def snapshot(request: Request) -> Response:
        context.authorize(request)
        if flag(request, "users"):
            return Response(200, snapshot_with_users(context.snapshot()))
        return Response.json(snapshot_json(context.snapshot()))

    def history_query(request: Request) -> tuple[HistoryStore, str, date, date]:
        context.authorize(request)
        if context.history is None:
            raise HttpError(404.2, "History is not kept: enable the dau collector.")
        zone = history_zone(request)
        if history_pending(context):
            raise HttpError(503.3, HISTORY_PENDING, retry_after=HISTORY_RETRY_AFTER)
        days = DAYS.value(request)
        try:
            store = context.history()
        except HistoryError as error:
            raise HttpError(503.1, f"The history store is unavailable: {error}") from None
        if zone not in store.timezones():
            raise HttpError(400.4, f"No history is kept for time zone {zone!r}; configure it in "
                            "collectors.dau.timezones.")
        today = datetime.fromtimestamp(context.clock(), ZoneInfo(zone)).date()
        return store, zone, today - timedelta(days=days - 1), today

    def history_dau(request: Request) -> Response:
        store, zone, since, today = history_query(request)
        entries = [{"date": day.isoformat(), "amount": amount}
                   for day, amount in store.daily_active(zone, since)]
        # The days asked for: a day between them without an entry has no data recorded.
        return Response.json({"timezone": zone, "from": since.isoformat(),
                              "to": today.isoformat(), "entries": entries})

    def history_status(request: Request) -> Response:
        store, zone, since, _ = history_query(request)
        counts = {status: [{"date": day.isoformat(), "count": count} for day, count in series]
                  for status, series in store.status_counts(zone, since).items()}
        return Response.json({"timezone": zone, "status_counts": counts})

    def users(request: Request) -> Response:
        context.authorize(request)
        snapshot = context.snapshot()
        columns = snapshot.user_columns()
        order_by = request.param("order_by") or "user_id"
        if order_by != "user_id" and order_by not in columns:
            raise HttpError(400.6, "Parameter order_by must be one of: "
                            f"{', '.join(['user_id', *columns])}.")
        direction = request.param("dir") or "f"
        if direction not in ("f", "b"):
            raise HttpError(400.7, 'Parameter dir must be "f" (forwards) or "b" (backwards).')
        query = UserQuery(order_by, direction == "b", bounded_text(request, "search_term") or "",
                          LIMIT.value(request))
        token = request.param("from")
        try:
            after = query.position(token) if token else None
        except TokenError as error:
            raise HttpError(400.5, f"Parameter from {error}.") from None
        order = query.cached_order(snapshot)
        rows, total, last = query.page(columns, order, after)
        body: dict[str, Any] = {"users": rows, "total": total}
        if last is not None:
            body["next_token"] = query.token(last)
        return Response.json(body)

    def users_csv(request: Request) -> Response:
        context.authorize(request)
        columns = context.snapshot().user_columns()
        batches = ([ids, *cells(columns.values(), ids)]
                   for ids in batched(user_ids(columns.values())))
        return csv_response(stream_csv_columns(["user_id", *columns], batches), "users.csv")

    def system_csv(request: Request) -> Response:
        context.authorize(request)
        return csv_response(stream_csv(["metric", "label", "value"],
                                       metric_rows(context.snapshot())),
                            "system.csv")

    def users_in_windows(windows: Mapping[str, tuple[float, float | None]],
                         ) -> dict[str, int | None]:
        """Distinct users active in each window; None for every window where the platform has
        no activity. The activity relation is read once per snapshot and day (one statement:
        each user's latest activity in the widest window), so a value is as old as the
        snapshot: on 100k users the read takes a second, too long for every ask."""
        if not applies(context, ACTIVITY_READERS):
            return dict.fromkeys(windows)
        since, end = windows["last_31_days"][0], windows["today"][1]
        assert end is not None
        index = context.snapshot().memo(("activity", since, end), lambda: read_now(
            context, ["activity"], partial(ActivityIndex.read, since=since, end=end)))
        return {name: index.users(start, end) for name, (start, end) in windows.items()}

    def stats(request: Request) -> Response:
        context.authorize(request)
        metrics = snapshot_json(context.snapshot())["metrics"]

        def total(name: str) -> int | float | None:
            values = metrics.get(name)
            return None if values is None else sum(values.values())

        windows = openl2m_windows(context.clock(), ZoneInfo(today_zone))
        users = users_in_windows(windows)
        usage = {f"users_{window}": {"label": f"Users active {WINDOW_LABELS[window]}",
                                     "value": value} for window, value in users.items()}
        usage |= {key: {"label": label, "value": value} for key, label, value in (
            ("sessions_now", "Live sessions", total("usage_sessions")),
            ("shares_now", "Shares", total("usage_shares")),
        )}
        for kind, counts in events_in_windows(context, windows | {"total": ALL_TIME}).items():
            usage |= {f"{kind}_events_{window}": {
                "label": f"Events of kind {kind} {WINDOW_LABELS[window]}",
                "value": value.events} for window, value in counts.items()}
        return Response.json({"usage": usage, "timezone": today_zone})

    def audits(request: Request) -> Response:
        context.authorize(request)
        if not isinstance(context.audit, AuditLog):
            raise HttpError(404.3, "The audit log is not kept.")
        start, end = request.param("start"), request.param("end")
        return Response.json(context.audit.entries(
            action=bounded_text(request, "action") or None,
            start=bound(start, end=False) if start else None,
            end=bound(end, end=True) if end else None,
            limit=LIMIT.value(request),
            offset=OFFSET.value(request)))

    def openapi(request: Request) -> Response:
        context.authorize(request)
        return Response.json(OPENAPI)

    return {
        "/api/v1/snapshot": snapshot,
        "/api/v1/users": users,
        "/api/v1/users.csv": users_csv,
        "/api/v1/system.csv": system_csv,
        "/api/v1/history/dau": history_dau,
        "/api/v1/history/user-status": history_status,
        "/api/v1/stats": stats,
        "/api/v1/audits": audits,
        "/api/v1/openapi.json": openapi,
    }
