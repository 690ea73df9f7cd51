"""HTTP: /metrics from pre-rendered bytes, health, and the API routes of exporter.api; served by
waitress.

waitress reads requests and writes responses in its own event loop, so idle or slow clients hold a
socket, not a worker thread. /metrics and the health routes only read the current snapshot.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs

import structlog
from prometheus_client.exposition import choose_encoder, gzip_accepted
from sqlalchemy import Connection, Subquery
from waitress import create_server

from exporter.config import ApiKey
from exporter.history import HistoryStore
from exporter.snapshot import Snapshot

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
JSON = "application/json"
OPENMETRICS = "application/openmetrics-text"

log = structlog.get_logger()


class HttpError(Exception):
    """A refused request: `code` is the native API's error code (HTTP status = its integer part);
    compatibility routes turn it into their platform's own error shape."""

    def __init__(self, code: float, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return int(self.code)


@dataclass(frozen=True)
class Request:
    environ: Environ
    path: str
    query: dict[str, list[str]]

    @classmethod
    def from_environ(cls, environ: Environ) -> Request:
        return cls(environ, environ.get("PATH_INFO", ""),
                   parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True))

    def header(self, name: str) -> str | None:
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"))

    def param(self, name: str) -> str | None:
        """The last value of a query parameter, as most web frameworks read it."""
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class Response:
    status: int
    body: bytes | Iterable[bytes]
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(value, ensure_ascii=False, default=str).encode())


Handler = Callable[[Request], Response]
T = TypeVar("T")


class Reader(Protocol):
    def __call__(self, relations: Sequence[str],
                 query: Callable[[Connection, Mapping[str, Subquery]], T]) -> T: ...


def presented_key(request: Request) -> str | None:
    """The API key from any header our clients use: Authorization (Bearer or Token), the ownCloud
    metrics app's OC-MetricsApiKey, or Coder's Coder-Session-Token."""
    scheme, _, credentials = (request.header("Authorization") or "").partition(" ")
    if scheme.lower() in ("bearer", "token") and credentials.strip():
        return credentials.strip()
    return request.header("OC-MetricsApiKey") or request.header("Coder-Session-Token") or None


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


@dataclass(frozen=True)
class Context:
    """What API handlers may use: the current snapshot (never blocks), the keys, the history
    store (opened on demand), the clock the exporter measures time by, `read` for the few
    questions a snapshot cannot answer (it runs a function on a read-only connection with the
    named relations, under a statement timeout), and `audit`, told of every authorized use."""

    snapshot: Callable[[], Snapshot]
    api_keys: tuple[ApiKey, ...]
    history: Callable[[], HistoryStore] | None = None
    clock: Callable[[], float] = time.time
    read: Reader | None = None
    audit: Callable[[ApiKey, Request], None] | None = None

    def authorize(self, request: Request) -> ApiKey:
        """The caller's key, or HttpError; each use is logged with the key's name, never the
        secret."""
        key = authenticate(self.api_keys, presented_key(request))
        log.info("api_request", key=key.name, route=request.path,
                 query=request.environ.get("QUERY_STRING", ""))
        if self.audit is not None:
            self.audit(key, request)
        return key


class App:
    """The WSGI application: /metrics and health here, API routes from exporter.api."""

    def __init__(self, context: Context, routes: dict[str, Handler] | None = None) -> None:
        self.context = context
        self.routes: dict[str, Handler] = {
            "/metrics": self.metrics,
            "/-/healthy": lambda request: Response(200, b"OK\n", "text/plain"),
            "/-/ready": self.ready,
            **(routes or {}),
        }

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        request = Request.from_environ(environ)
        try:
            handler = self.routes.get(request.path)
            if handler is None:
                raise HttpError(404.1, "Not found.")
            if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
                raise HttpError(405.1, "Only GET is supported.")
            response = handler(request)
        except HttpError as error:
            response = Response.json({"code": error.code, "message": error.message}, error.status)
        headers = [("Content-Type", response.content_type), *response.headers]
        if isinstance(response.body, bytes):
            headers.append(("Content-Length", str(len(response.body))))
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", headers)
        if environ["REQUEST_METHOD"] == "HEAD":
            return [b""]
        return [response.body] if isinstance(response.body, bytes) else response.body

    def metrics(self, request: Request) -> Response:
        bodies = self.context.snapshot().bodies
        _, content_type = choose_encoder(request.header("Accept") or "")
        openmetrics = content_type.startswith(OPENMETRICS)
        vary = ("Vary", "Accept, Accept-Encoding")
        if gzip_accepted(request.header("Accept-Encoding") or ""):
            body = bodies.openmetrics_gzip if openmetrics else bodies.text_gzip
            return Response(200, body, content_type, [("Content-Encoding", "gzip"), vary])
        return Response(200, bodies.openmetrics if openmetrics else bodies.text, content_type,
                        [vary])

    def ready(self, request: Request) -> Response:
        if self.context.snapshot().ready:
            return Response(200, b"Ready\n", "text/plain")
        return Response(503, b"Waiting for the first run of every collector\n", "text/plain")


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
