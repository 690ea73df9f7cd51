"""The WSGI application: /metrics from pre-rendered bytes, health, and the API routes of
exporter.api, with what they share (API keys, errors, requests and responses). /metrics and the
health routes only read the current snapshot. exporter.server serves it.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import json
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs

import structlog
from prometheus_client.exposition import choose_encoder, gzip_accepted
from sqlalchemy import Connection, Subquery

from exporter.config import ApiKey
from exporter.history import HistoryStore
from exporter.log import SECRET_NAME
from exporter.platforms.base import Profile
from exporter.snapshot import Bodies, Snapshot

StartResponse = Callable[..., Any]
Environ = dict[str, Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]
JSON = "application/json"
OPENMETRICS = "application/openmetrics-text"

MAX_PARAMETERS = 32
METHODS = ("GET", "HEAD")  # every route's
MAX_VALUE = 256
# Routes that only send what the last refresh rendered (App.scrape).
SCRAPE_PATHS = frozenset({"/metrics", "/-/healthy", "/-/ready"})

log = structlog.get_logger()


class HttpError(Exception):
    """A refused request: `code` is the native API's error code (HTTP status = its integer part);
    compatibility routes turn it into their platform's own error shape."""

    def __init__(self, code: float, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds, for a Retry-After header

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


def retry_after_header(error: HttpError) -> list[tuple[str, str]]:
    return [] if error.retry_after is None else [("Retry-After", str(error.retry_after))]


@dataclass(eq=False)  # by identity: a server may prepare a scrape's answer once per Response
class Response:
    status: int
    body: bytes | Iterable[bytes]
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        return cls(status, encode_json(value))


def head_of(response: Response) -> list[tuple[str, str]]:
    """The response's headers, Content-Length too when its body is one piece."""
    headers = [("Content-Type", response.content_type), *response.headers]
    if isinstance(response.body, bytes):
        headers.append(("Content-Length", str(len(response.body))))
    return headers


def encode_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, default=str).encode()


Handler = Callable[[Request], Response]
T = TypeVar("T")


class Reader(Protocol):
    def __call__(self, relations: Sequence[str],
                 query: Callable[[Connection, Mapping[str, Subquery]], T]) -> T: ...


def presented_key(request: Request) -> str | None:
    """The API key from any header our clients use: Authorization (Bearer or Token), the ownCloud
    metrics app's OC-MetricsApiKey, or Coder's Coder-Session-Token. Different keys in two of them
    (an empty one too) are refused: which one a platform would read differs, so no choice would
    be safe. One empty header is no key."""
    scheme, _, credentials = (request.header("Authorization") or "").partition(" ")
    bearer = credentials.strip() if scheme.lower() in ("bearer", "token") else None
    presented = {key for key in (bearer, request.header("OC-MetricsApiKey"),
                                 request.header("Coder-Session-Token")) if key is not None}
    if len(presented) > 1:
        raise HttpError(403.1, "Different API keys were presented; send one.")
    return (presented.pop() or None) if presented else None


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


def redacted_query(query: Mapping[str, list[str]], secrets: Iterable[str]) -> dict[str, Any]:
    """Query parameters as logged and audited: bounded in number and length; the value of one
    whose name looks like a credential, or that contains a configured key, is dropped (null)."""
    secrets = tuple(secrets)
    kept: dict[str, Any] = {}
    for name, values in list(query.items())[:MAX_PARAMETERS]:
        if SECRET_NAME.search(name) or any(s in v for v in values for s in secrets):
            kept[name[:MAX_VALUE]] = None
        else:
            cut = [value[:MAX_VALUE] for value in values[:MAX_PARAMETERS]]
            kept[name[:MAX_VALUE]] = cut[0] if len(cut) == 1 else cut
    return kept


def client_address(request: Request) -> str:
    """Who is asking, for rate limits: the socket peer (no proxy header is trusted)."""
    return client_of(request.environ.get("REMOTE_ADDR", ""))


def client_of(address: str) -> str:
    """The client a peer address belongs to, for rate limits and connection shares: an IPv6
    client by its /64 network, which one host usually holds whole."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return address


class FailedAttempts:
    """Wrong API keys per client address: after `limit` of them within `window` seconds the
    address is refused, its keys not even compared, until the oldest of them is `window` old.
    At most `capacity` addresses are kept, the one that failed longest ago dropped first, so a
    flood of addresses costs bounded memory."""

    def __init__(self, limit: int = 10, window: float = 60.0, capacity: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self.capacity, self.clock = limit, window, capacity, clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Whole seconds until `client` may try a key again; 0 if it may now."""
        with self._lock:
            failures = self._failures.get(client)
            if failures is None or len(failures) < self.limit:
                return 0
            return max(0, math.ceil(failures[0] + self.window - self.clock()))

    def recent(self, client: str) -> int:
        """Failures of `client` within the window."""
        with self._lock:
            failures = self._failures.get(client, ())
            since = self.clock() - self.window
            return sum(1 for at in failures if at > since)

    def failed(self, client: str) -> None:
        with self._lock:
            failures = self._failures.pop(client, None) or deque(maxlen=self.limit)
            failures.append(self.clock())
            self._failures[client] = failures
            while len(self._failures) > self.capacity:
                self._failures.popitem(last=False)

    def __len__(self) -> int:
        return len(self._failures)


@dataclass(frozen=True)
class Context:
    """What API handlers may use: the current snapshot (never blocks), the keys, the history
    store (opened on demand), the clock the exporter measures time by, `read` for the few
    questions a snapshot cannot answer (it runs a function on a read-only connection with the
    named relations, under a statement timeout), `audit`, told of every authorized use,
    `attempts`, which rate limits wrong keys per client address when given, and the `profile` of
    the platform database read, for drop-in routes that answer as their platform does on it."""

    snapshot: Callable[[], Snapshot]
    api_keys: tuple[ApiKey, ...]
    history: Callable[[], HistoryStore] | None = None
    clock: Callable[[], float] = time.time
    read: Reader | None = None
    audit: Callable[[ApiKey, Request, dict[str, Any]], None] | None = None
    attempts: FailedAttempts | None = None
    profile: Profile | None = None
    # What /metrics sends, if not the snapshot's own bodies (the daemon adds process metrics).
    bodies: Callable[[], Bodies] | None = None

    def authorize(self, request: Request) -> ApiKey:
        """The caller's key, or HttpError: 429.1 while its address has too many wrong keys.
        Each use and each refusal is logged with the address and the key's name, never a
        presented key or secret."""
        address = request.environ.get("REMOTE_ADDR", "")
        try:
            key = self._check_key(request)
        except HttpError as error:
            log.warning("api_refused", address=address, route=request.path, code=error.code)
            raise
        parameters = redacted_query(request.query, (k.secret for k in self.api_keys))
        log.info("api_request", key=key.name, route=request.path, address=address,
                 query=parameters)
        if self.audit is not None:
            self.audit(key, request, parameters)
        return key

    def _check_key(self, request: Request) -> ApiKey:
        client = client_address(request)
        wait = self.attempts.retry_after(client) if self.attempts is not None else 0
        if wait:
            raise HttpError(429.1, "Too many wrong API keys from this address; try again in "
                            f"{wait} seconds.", retry_after=wait)
        try:
            return authenticate(self.api_keys, presented_key(request))
        except HttpError as error:
            if error.code == 403.1 and self.attempts is not None:
                self.attempts.failed(client)
            raise


@functools.lru_cache(maxsize=256)
def negotiated(accept: str, accept_encoding: str) -> tuple[str, bool]:
    """The exposition's content type and whether to gzip it, for a scrape's headers: one
    Prometheus server sends the same ones every time, so each pair is worked out once."""
    return choose_encoder(accept)[1], gzip_accepted(accept_encoding)


def metrics_response(bodies: Bodies, content_type: str, gzipped: bool) -> Response:
    openmetrics = content_type.startswith(OPENMETRICS)
    vary = ("Vary", "Accept, Accept-Encoding")
    if gzipped:
        body = bodies.openmetrics_gzip if openmetrics else bodies.text_gzip
        return Response(200, body, content_type, [("Content-Encoding", "gzip"), vary])
    return Response(200, bodies.openmetrics if openmetrics else bodies.text, content_type, [vary])


HEALTHY = Response(200, b"OK\n", "text/plain")
READY = Response(200, b"Ready\n", "text/plain")
WAITING = Response(503, b"Waiting for the first run of every collector\n", "text/plain")


class App:
    """The WSGI application: /metrics and health here, API routes from exporter.api."""

    def __init__(self, context: Context, routes: dict[str, Handler] | None = None) -> None:
        self.context = context
        self.routes: dict[str, Handler] = {
            **{path: self._scrape_route for path in SCRAPE_PATHS},
            **(routes or {}),
        }
        self._answers: tuple[Bodies | None, dict[tuple[str, bool], Response]] = (None, {})
        # The scrape paths this app answers itself (a route given for one takes its place).
        self._scraped = frozenset(p for p in SCRAPE_PATHS if self.routes[p] == self._scrape_route)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        request = Request.from_environ(environ)
        try:
            handler = self.routes.get(request.path)
            if handler is None:
                raise HttpError(404.1, "Not found.")
            if environ["REQUEST_METHOD"] not in METHODS:
                raise HttpError(405.1, "Only GET is supported.")
            response = handler(request)
        except HttpError as error:
            response = Response.json({"code": error.code, "message": error.message}, error.status)
            response.headers += retry_after_header(error)
            if error.status == 405:  # RFC 9110, 15.5.6: a 405 says what the route allows
                response.headers.append(("Allow", ", ".join(METHODS)))
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}",
                       head_of(response))
        if environ["REQUEST_METHOD"] == "HEAD":
            return [b""]
        return [response.body] if isinstance(response.body, bytes) else response.body

    def scrape(self, path: str, accept: str, accept_encoding: str) -> Response | None:
        """The answer to a GET of a route of SCRAPE_PATHS, which only reads the current
        snapshot: the same Response object while the bodies stay the same (one for each of the
        four formats), so a server may prepare what it sends once for each. None where the
        app was given a route of its own for the path: that one answers, the general way."""
        if path not in self._scraped:
            return None
        if path == "/-/healthy":
            return HEALTHY
        if path == "/-/ready":
            return READY if self.context.snapshot().ready else WAITING
        bodies = self.context.bodies() if self.context.bodies else self.context.snapshot().bodies
        answered, answers = self._answers
        if answered is not bodies:  # a refresh: the previous bodies' answers go
            answers = {}
            self._answers = (bodies, answers)
        format_ = negotiated(accept, accept_encoding)
        answer = answers.get(format_)
        if answer is None:
            answer = answers[format_] = metrics_response(bodies, *format_)
        return answer

    def _scrape_route(self, request: Request) -> Response:
        answer = self.scrape(request.path, request.header("Accept") or "",
                             request.header("Accept-Encoding") or "")
        assert answer is not None  # this route is the app's own
        return answer
