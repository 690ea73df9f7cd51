"""HTTP: /metrics from pre-rendered bytes, health, and the JSON API; served by waitress.

waitress reads requests and writes responses in its own event loop, so idle or slow clients hold a
socket, not a worker thread; workers only run the handlers below, none of which touches the
database.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from prometheus_client.exposition import choose_encoder, gzip_accepted
from waitress import create_server

from exporter.config import ApiKey
from exporter.exposition import snapshot_json
from exporter.history import HistoryError, HistoryStore
from exporter.snapshot import Snapshot

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
JSON = "application/json"
OPENMETRICS = "application/openmetrics-text"

LANDING = b"""<!doctype html><html><head><meta charset="utf-8"><title>usage-exporter</title></head>
<body><h1>usage-exporter</h1><p><a href="/metrics">Metrics</a> &middot;
<a href="/-/ready">Readiness</a></p></body></html>"""


class HttpError(Exception):
    def __init__(self, code: float, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def presented_key(environ: Environ) -> str | None:
    """The API key from any header our clients use: Authorization (Bearer or Token), the ownCloud
    metrics app's OC-MetricsApiKey, or Coder's Coder-Session-Token."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() in ("bearer", "token") and credentials.strip():
        return credentials.strip()
    return environ.get("HTTP_OC_METRICSAPIKEY") or environ.get("HTTP_CODER_SESSION_TOKEN") or None


def authenticate(keys: Iterable[ApiKey], presented: str | None) -> ApiKey:
    """The key matching `presented`. Every key is compared, in constant time each."""
    keys = tuple(keys)
    if not keys:
        raise HttpError(403.2, "The API is disabled: no API keys are configured (api.keys).")
    if presented is None:
        raise HttpError(401.1, "An API key is required (Authorization: Bearer <key>).")
    match = None
    for key in keys:
        if hmac.compare_digest(key.secret.encode(), presented.encode()):
            match = key
    if match is None:
        raise HttpError(403.1, "The API key is not valid.")
    return match


def flag(query: dict[str, list[str]], name: str) -> bool:
    value = query.get(name, ["false"])[-1].lower()
    if value not in ("true", "false", "1", "0"):
        raise HttpError(400.1, f"Parameter {name} must be true or false.")
    return value in ("true", "1")


def history_zone(query: dict[str, list[str]]) -> str:
    """`tz` (an IANA name) or `tz_offset` (whole hours east of UTC, as Coder takes it)."""
    if "tz" in query and "tz_offset" in query:
        raise HttpError(400.3, 'Provide either "tz" or "tz_offset", not both.')
    if "tz_offset" in query:
        offset = integer(query, "tz_offset", 0, low=-12, high=14)
        # Etc/GMT zones have the POSIX sign: Etc/GMT-2 is two hours east of UTC.
        return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"
    return query.get("tz", ["UTC"])[-1]


def integer(query: dict[str, list[str]], name: str, default: int, *, low: int,
            high: int) -> int:
    raw = query.get(name, [str(default)])[-1]
    try:
        value = int(raw)
    except ValueError:
        raise HttpError(400.2, f"Parameter {name} must be an integer.") from None
    if not low <= value <= high:
        raise HttpError(400.2, f"Parameter {name} must be between {low} and {high}.")
    return value


class App:
    """The WSGI application. `snapshot` returns the current snapshot; reading it never blocks.
    `history` opens the history store (API routes only; /metrics never touches it)."""

    def __init__(self, snapshot: Callable[[], Snapshot], api_keys: Iterable[ApiKey],
                 history: Callable[[], HistoryStore] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.snapshot = snapshot
        self.history = history
        self.clock = clock
        self.api_keys = tuple(api_keys)
        self.routes: dict[str, Callable[[Environ], tuple[int, str, bytes, list]]] = {
            "/metrics": self.metrics,
            "/-/healthy": lambda environ: (200, "text/plain", b"OK\n", []),
            "/-/ready": self.ready,
            "/": lambda environ: (200, "text/html; charset=utf-8", LANDING, []),
            "/api/v1/snapshot": self.api_snapshot,
            "/api/v1/history/dau": self.api_history_dau,
            "/api/v1/history/user-status": self.api_history_status,
        }

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            route = self.routes.get(environ.get("PATH_INFO", ""))
            if route is None:
                raise HttpError(404.1, "Not found.")
            if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
                raise HttpError(405.1, "Only GET is supported.")
            status, content_type, body, headers = route(environ)
        except HttpError as error:
            status, content_type, headers = int(error.code), JSON, []
            body = json.dumps({"code": error.code, "message": error.message}).encode()
        start_response(f"{status} {HTTPStatus(status).phrase}",
                       [("Content-Type", content_type), ("Content-Length", str(len(body))),
                        *headers])
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]

    def metrics(self, environ: Environ) -> tuple[int, str, bytes, list]:
        bodies = self.snapshot().bodies
        _, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        openmetrics = content_type.startswith(OPENMETRICS)
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
            body = bodies.openmetrics_gzip if openmetrics else bodies.text_gzip
            return 200, content_type, body, [("Content-Encoding", "gzip"),
                                             ("Vary", "Accept, Accept-Encoding")]
        body = bodies.openmetrics if openmetrics else bodies.text
        return 200, content_type, body, [("Vary", "Accept, Accept-Encoding")]

    def ready(self, environ: Environ) -> tuple[int, str, bytes, list]:
        if self.snapshot().ready:
            return 200, "text/plain", b"Ready\n", []
        return 503, "text/plain", b"Waiting for the first run of every collector\n", []

    def api_snapshot(self, environ: Environ) -> tuple[int, str, bytes, list]:
        authenticate(self.api_keys, presented_key(environ))
        query = parse_qs(environ.get("QUERY_STRING", ""))
        body = snapshot_json(self.snapshot(), users=flag(query, "users"))
        return 200, JSON, json.dumps(body, default=str).encode(), []


    def _history_query(self, environ: Environ) -> tuple[HistoryStore, str, date]:
        authenticate(self.api_keys, presented_key(environ))
        if self.history is None:
            raise HttpError(404.2, "History is not kept: enable the dau collector.")
        query = parse_qs(environ.get("QUERY_STRING", ""))
        zone = history_zone(query)
        days = integer(query, "days", 30, low=1, high=3660)
        try:
            store = self.history()
        except HistoryError as error:
            raise HttpError(503.1, f"The history store is unavailable: {error}") from None
        if zone not in store.timezones():
            raise HttpError(400.4, f"No history is kept for time zone {zone!r}; configure it in "
                            "collectors.dau.timezones.")
        today = datetime.fromtimestamp(self.clock(), ZoneInfo(zone)).date()
        return store, zone, today - timedelta(days=days - 1)

    def api_history_dau(self, environ: Environ) -> tuple[int, str, bytes, list]:
        store, zone, since = self._history_query(environ)
        entries = [{"date": day.isoformat(), "amount": amount}
                   for day, amount in store.daily_active(zone, since)]
        return 200, JSON, json.dumps({"timezone": zone, "entries": entries}).encode(), []

    def api_history_status(self, environ: Environ) -> tuple[int, str, bytes, list]:
        store, zone, since = self._history_query(environ)
        counts = {status: [{"date": day.isoformat(), "count": count} for day, count in series]
                  for status, series in store.status_counts(zone, since).items()}
        return 200, JSON, json.dumps({"timezone": zone, "status_counts": counts}).encode(), []


class HttpServer:
    """waitress bound to host:port (port 0 picks a free one)."""

    def __init__(self, app: App, host: str, port: int, threads: int = 8) -> None:
        self._server: Any = create_server(
            app, host=host, port=port, threads=threads, ident="usage-exporter",
            connection_limit=1000, channel_timeout=60, clear_untrusted_proxy_headers=True)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def serve_forever(self) -> None:
        self._server.run()

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        # Close every socket from inside the event loop; the loop then ends on its own.
        self._server.trigger.pull_trigger(self._close_all)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server.task_dispatcher.shutdown()

    def _close_all(self) -> None:
        for channel in list(self._server._map.values()):
            channel.close()
