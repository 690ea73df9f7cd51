"""The native API: /api/v1/*. Errors are {"code": 404.1, "message": "..."} with the HTTP status
the integer part of the code."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from exporter.exposition import snapshot_json
from exporter.history import HistoryError, HistoryStore
from exporter.http import Context, Handler, HttpError, Request, Response


def flag(request: Request, name: str) -> bool:
    value = (request.param(name) or "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise HttpError(400.1, f"Parameter {name} must be true or false.")
    return value in ("true", "1")


def integer(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.param(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(400.2, f"Parameter {name} must be an integer.") from None
    if not low <= value <= high:
        raise HttpError(400.2, f"Parameter {name} must be between {low} and {high}.")
    return value


def history_zone(request: Request) -> str:
    """`tz` (an IANA name) or `tz_offset` (whole hours east of UTC, as Coder takes it)."""
    if request.param("tz") is not None and request.param("tz_offset") is not None:
        raise HttpError(400.3, 'Provide either "tz" or "tz_offset", not both.')
    if request.param("tz_offset") is not None:
        offset = integer(request, "tz_offset", 0, low=-12, high=14)
        # Etc/GMT zones have the POSIX sign: Etc/GMT-2 is two hours east of UTC.
        return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"
    return request.param("tz") or "UTC"


def routes(context: Context) -> dict[str, Handler]:
    def snapshot(request: Request) -> Response:
        context.authorize(request)
        return Response.json(snapshot_json(context.snapshot(), users=flag(request, "users")))

    def history_query(request: Request) -> tuple[HistoryStore, str, date]:
        context.authorize(request)
        if context.history is None:
            raise HttpError(404.2, "History is not kept: enable the dau collector.")
        zone = history_zone(request)
        days = integer(request, "days", 30, low=1, high=3660)
        try:
            store = context.history()
        except HistoryError as error:
            raise HttpError(503.1, f"The history store is unavailable: {error}") from None
        if zone not in store.timezones():
            raise HttpError(400.4, f"No history is kept for time zone {zone!r}; configure it in "
                            "collectors.dau.timezones.")
        today = datetime.fromtimestamp(context.clock(), ZoneInfo(zone)).date()
        return store, zone, today - timedelta(days=days - 1)

    def history_dau(request: Request) -> Response:
        store, zone, since = history_query(request)
        entries = [{"date": day.isoformat(), "amount": amount}
                   for day, amount in store.daily_active(zone, since)]
        return Response.json({"timezone": zone, "entries": entries})

    def history_status(request: Request) -> Response:
        store, zone, since = history_query(request)
        counts = {status: [{"date": day.isoformat(), "count": count} for day, count in series]
                  for status, series in store.status_counts(zone, since).items()}
        return Response.json({"timezone": zone, "status_counts": counts})

    return {
        "/api/v1/snapshot": snapshot,
        "/api/v1/history/dau": history_dau,
        "/api/v1/history/user-status": history_status,
    }
