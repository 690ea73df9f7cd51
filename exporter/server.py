"""The HTTP server: aiohttp's low-level server parses and frames every request and answer
(HTTP/1.1 keep-alive, pipelining, header limits, chunked streaming, lingering close) on a uvloop
event loop; TLS is the loop's, with the certificate read again when its files change. What is
left here is policy:

- scrapes and health checks, which only send bytes the last refresh rendered, are answered in
  the loop itself; API routes, which read the database or the history store, run on a bounded
  pool of worker threads, so no API call holds a scrape up;
- one fast path (_scraped): a GET or HEAD of /metrics, /-/healthy or /-/ready without a body,
  its password (if one is asked) verified before, is answered from the app's ready-made
  Response (App.scrape: one per format while the bodies stay the same) with a head prepared
  once for it, without a WSGI environ or the adapter; anything else takes the general way,
  which answers alike (tests/test_http.py). On bench/http_compare.py that took /metrics p50
  from 2.44x of the minimal server to 2.10x (fixture; bare aiohttp 1.86x in the same runs),
  see docs/benchmarks.md;
- fairness between clients: one client address holds at most 60 % of the connections, and the
  last tenth is kept for clients holding none yet (a Prometheus server holds one);
- basic auth: a password not verified before is checked by bcrypt on a thread of its own
  (webconfig.PasswordChecks), never on a worker;
- a client certificate naming none of client_allowed_sans is refused before any request;
- refusals in the native API's JSON error shape, and the app: a WSGI callable
  (exporter.http.App).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import re
import resource
import socket
import sys
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from http import HTTPStatus
from itertools import chain
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

import structlog
import uvloop
from aiohttp import http_exceptions, web
from aiohttp.http import HttpVersion10, HttpVersion11
from multidict import CIMultiDict, CIMultiDictProxy

from exporter.db import describe_error
from exporter.http import (
    METHODS,
    SCRAPE_PATHS,
    Environ,
    HttpError,
    Response,
    WsgiApp,
    client_of,
    encode_json,
    head_of,
    retry_after_header,
)
from exporter.webconfig import Certificates, Guard, PasswordChecks, WebConfig

MAX_CONNECTIONS = 1000
# Descriptors kept free of client connections: database pools, the history store, logs.
SPARE_DESCRIPTORS = 100
# The request line: room for the longest parameter the API documents (a 16,384-character paging
# token), percent-encoded.
MAX_LINE = 256 * 1024
MAX_HEAD = 64 * 1024  # the header lines, all of them together
# One header line (aiohttp's default, nginx's too) and their number: what a connection may buffer
# before MAX_HEAD is checked on them all.
MAX_FIELD, MAX_HEADERS = 8190, 64
MAX_BODY = 64 * 1024  # every route is a GET: a body is read and dropped, up to this size
BACKLOG = 1024  # connections the kernel holds while every slot is taken
LINGER = 2.0  # seconds spent reading what a refused client still sends, before closing
SERVER = "usage-exporter"
# Fast path heads kept: the four /metrics formats and the health answers of one refresh, twice.
MAX_HEADS = 16
UNSAFE_IN_HEADER = re.compile("[\r\n\0]")  # would split the head or end it
PROTOCOLS = {HttpVersion10: "HTTP/1.0", HttpVersion11: "HTTP/1.1"}  # SERVER_PROTOCOL

log = structlog.get_logger()
T = TypeVar("T")


def connection_limit() -> int:
    """MAX_CONNECTIONS, or as many as the open files limit leaves room for: the soft limit is
    first raised towards the hard one (as Go programs do at start)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_CONNECTIONS + SPARE_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, soft - SPARE_DESCRIPTORS))


class Workers:
    """Threads that run calls for an event loop, in the order submitted, and hand each result
    back to it as a future."""

    def __init__(self, threads: int) -> None:
        self._calls: deque[tuple[asyncio.Future[Any], Callable[[], Any]]] = deque()
        self._ready = threading.Condition()
        self._stopping = False
        for n in range(threads):
            threading.Thread(target=self._work, name=f"http-worker-{n}", daemon=True).start()

    @property
    def waiting(self) -> int:
        """Calls submitted that no worker has taken yet."""
        return len(self._calls)

    def submit(self, call: Callable[[], T]) -> asyncio.Future[T]:
        """From the event loop: `call` run on a worker; the future is the loop's."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._ready:
            self._calls.append((future, call))
            self._ready.notify()
        return future

    def stop(self) -> None:
        """Drop the calls waiting; each worker ends once its current call returns. Not waited
        for: a call may be a query that only the runner's close() cancels, after the server."""
        with self._ready:
            self._stopping = True
            self._calls.clear()
            self._ready.notify_all()

    def _work(self) -> None:
        while True:
            with self._ready:
                while not self._calls and not self._stopping:
                    self._ready.wait()
                if self._stopping:
                    return
                future, call = self._calls.popleft()
            try:
                result, error = call(), None
            except Exception as failure:  # the awaiting task re-raises it
                result, error = None, failure
            except BaseException as failure:  # such as sys.exit() in a route: not the server's
                result, error = None, RuntimeError(f"{failure!r} in a worker")
            with contextlib.suppress(RuntimeError):  # a closed loop: the server has stopped
                future.get_loop().call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():  # the connection ended while the call ran
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class Answer:
    """What the app answered, gathered where it ran: status, headers (checked here, so a
    header that would split the head fails the request) and the first piece of the body
    (`rest` iterates the others, for a streamed body; WSGI lets an app call start_response as
    late as its first piece)."""

    def __init__(self, app: WsgiApp, environ: Environ) -> None:
        self.status: int | None = None
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        body = app(environ, self._start_response)
        self.rest: Iterator[bytes] | None = None
        self._body = body
        if isinstance(body, list | tuple):
            self.first = b"".join(body)
        else:
            self.rest = iter(body)
            self.first = next(self.rest, b"")
        if self.status is None:
            raise RuntimeError("the app returned without calling start_response")

    def _start_response(self, status: str, headers: list[tuple[str, str]],
                        exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None and self.status is not None:
            raise exc_info[1].with_traceback(exc_info[2])
        code, _, self.reason = status.partition(" ")
        self.status, self.headers = int(code), checked([("Server", SERVER), *headers])
        return self._refuse_write

    @staticmethod
    def _refuse_write(data: bytes) -> None:
        raise RuntimeError("write() of start_response is not supported; return the body")

    @property
    def streamed(self) -> bool:
        return self.rest is not None

    def next_piece(self) -> bytes | None:
        """The next piece of a streamed body; None at its end."""
        assert self.rest is not None
        return next(self.rest, None)

    @property
    def close(self) -> Callable[[], None] | None:
        """The body's close(), which WSGI says the server must call once it is sent."""
        return getattr(self._body, "close", None)


def checked(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`headers`, unless one would split the head: then the request fails."""
    for name, value in headers:
        if not name.isascii() or UNSAFE_IN_HEADER.search(name + value):
            raise RuntimeError("a response header with a line break or NUL")
    return headers


def joined(headers: CIMultiDictProxy[str], name: str) -> str:
    """A request header's values as one, as in a WSGI environ."""
    values = headers.getall(name, ())
    return values[0] if len(values) == 1 else ",".join(values)


def refusal(status: int, error: HttpError | None = None) -> web.Response:
    """A refused request in the native API's error shape; the connection closes after it unless
    the refusal is the app's (`error`, such as 429.2)."""
    code, message = ((error.code, error.message) if error is not None
                     else (float(status), HTTPStatus(status).phrase + "."))
    response = web.Response(status=status, body=encode_json({"code": code, "message": message}),
                            headers=[("Server", SERVER), ("Content-Type", "application/json"),
                                     *(retry_after_header(error) if error else [])])
    if error is None:
        response.force_close()
    return response


def parse_error_status(error: BaseException | None) -> int:
    """The status for a request aiohttp's parser refused."""
    if isinstance(error, http_exceptions.LineTooLong) or "Too many headers" in str(error):
        return 431
    if isinstance(error, http_exceptions.BadStatusLine) and "HTTP version" in str(error):
        return 505
    return 400


class Protocol(web.RequestHandler):
    """aiohttp's connection handler, with its refusals (a request it could not parse) in our
    JSON shape and without logging a traceback for them; `released` is called once the
    connection ends."""

    released: Callable[[], None] = staticmethod(lambda: None)
    # Whether a client may be served, from its verified certificate (client_allowed_sans).
    admits: Callable[[Any], bool] = staticmethod(lambda peer_certificate: True)

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # an answer already under way: only a reset is left
            raise ConnectionResetError("the answer failed after its head was sent")
        if status == 500 and exc is not None:
            log.error("request_failed", route=request.path, error=describe_error(exc))
        return refusal(parse_error_status(exc) if status == 400 else status)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # Here, before any request is read from it.
        if not self.admits(transport.get_extra_info("peercert")):
            transport.abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self.released()


class Protocols(web.Server):
    """aiohttp's protocol factory, making our Protocol."""

    def __call__(self) -> Protocol:
        return Protocol(self, loop=self._loop, **self._kwargs)


class Slots:
    """Connections per client address (an IPv6 client by its /64): one client holds at most
    60 % of `limit`, and the last tenth is kept for clients holding no connection yet, so one
    client's idle sockets cannot lock another client's scrape out. (A share much smaller would
    cut off a busy reverse proxy, which is one client with many connections.)"""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.per_client = max(1, limit * 6 // 10)
        self.reserved = limit // 10
        self.held: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return self.held.total()

    def take(self, client: str) -> bool:
        held = self.held[client]
        if held >= self.per_client or (held and self.total >= self.limit - self.reserved):
            return False
        self.held[client] += 1
        return True

    def release(self, client: str) -> None:
        self.held[client] -= 1
        if self.held[client] <= 0:
            del self.held[client]


class HttpServer:
    """Serves `app` on host:port (port 0 picks a free one) with `threads` workers. With a web
    config, its headers and basic auth wrap the app and its TLS settings secure the socket.
    `timeout` bounds the wait for a whole request (a keep-alive connection's idle time too) and
    for a client that stops reading its answer."""

    def __init__(self, app: WsgiApp, host: str, port: int, threads: int = 8,
                 web: WebConfig | None = None, timeout: float = 60.0,
                 handshake_timeout: float = 10.0) -> None:
        self.timeout, self.handshake_timeout = timeout, handshake_timeout
        self._certificates = (Certificates(web.tls) if web is not None and web.tls is not None
                              else None)
        # Basic auth guards /metrics only: the API routes check their own keys, sent in the same
        # Authorization header; the health routes answer probes; the admin page and the 404s
        # hold no data.
        self._guard = None if web is None else Guard(app, web, guarded_paths={"/metrics"})
        self._passwords = (PasswordChecks(self._guard.auth)
                           if self._guard is not None and self._guard.auth is not None else None)
        self.app: WsgiApp = app if self._guard is None else self._guard
        # The fast path, when the app offers it (exporter.http.App.scrape), and the head of each
        # answer it sends, prepared once: while an answer's Response lives.
        self._scrape: Callable[[str, str, str], Response | None] | None = getattr(
            app, "scrape", None)
        # By id(): it holds the Response, so the id stays its own.
        self._heads: dict[int, tuple[Response, CIMultiDict[str]]] = {}
        self._listener = listening_socket(host, port)
        self._listener.setblocking(False)
        self._name = self._listener.getsockname()[:2]
        self._slots = Slots(connection_limit())
        self._threads = threads
        self._workers: Workers | None = None
        self._loop = uvloop.new_event_loop()
        self._stopping = asyncio.Event()
        self._transports: set[asyncio.BaseTransport] = set()
        self._constant_environ: Environ = {
            "SCRIPT_NAME": "", "SERVER_NAME": self._name[0], "SERVER_PORT": str(self._name[1]),
            "wsgi.version": (1, 0), "wsgi.url_scheme": self.scheme, "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False}
        self._opening: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._name[1])

    @property
    def scheme(self) -> str:
        return "https" if self._certificates is not None else "http"

    @property
    def waiting(self) -> int:
        """Requests read whose turn for a worker has not come yet."""
        return self._workers.waiting if self._workers is not None else 0

    def serve_forever(self) -> None:
        """Serve in this thread until shutdown()."""
        self._workers = Workers(self._threads)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.run_until_complete(self._close())
            self._loop.close()
            self._listener.close()
            self._workers.stop()
            if self._passwords is not None:
                self._passwords.stop()

    def start(self) -> HttpServer:
        self._thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Ask serve_forever to return, from any thread or a signal handler; it returns at once
        (after closing every connection) once its loop runs."""
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)

    def stop(self) -> None:
        """shutdown(), and wait for the thread start() began."""
        self.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    # --- connections ---

    async def _serve(self) -> None:
        self._protocols = Protocols(
            self._handle, handler_cancellation=True, access_log=None,
            keepalive_timeout=self.timeout, max_line_size=MAX_LINE, max_field_size=MAX_FIELD,
            max_headers=MAX_HEADERS, lingering_time=LINGER)
        self._loop.add_reader(self._listener, self._accept)
        await self._stopping.wait()
        self._loop.remove_reader(self._listener)  # before the connections are listed and closed

    async def _close(self) -> None:
        """Drop every connection: abort the open ones, cancel the handshakes."""
        for task in self._opening:
            task.cancel()
        for transport in list(self._transports):
            transport.abort()
        await asyncio.gather(*self._opening, return_exceptions=True)
        await asyncio.sleep(0)  # the aborted transports close their sockets

    def _accept(self) -> None:
        """Called when the listening socket is readable: accept while fewer than the connection
        limit are open (handshakes included), then stop watching it until one ends; more wait in
        the listen backlog. A client over its share is closed at once. (Not loop.sock_accept: a
        stop that cancels it can meet an accept already under way, which asyncio then reports
        with a traceback.)"""
        while not self._stopping.is_set() and self._slots.total < self._slots.limit:
            try:
                connection, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # such as out of descriptors: pause, as asyncio's servers do
                log.warning("accept_failed", error=str(error))
                self._loop.remove_reader(self._listener)
                self._loop.call_later(1, self._resume_accepting)
                return
            client = client_of(address[0])
            if not self._slots.take(client):
                connection.close()
                continue
            connection.setblocking(False)
            # Without it an answer's last segment can wait for the client's delayed ACK (40 ms).
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self._loop.create_task(self._open(connection, client))
            self._opening.add(task)
            task.add_done_callback(self._opening.discard)
        if not self._stopping.is_set():
            self._loop.remove_reader(self._listener)  # at the limit

    async def _open(self, connection: socket.socket, client: str) -> None:
        """The TLS handshake if any, then aiohttp's protocol on the connection; its slot is
        released when the connection ends, however it ends."""
        transport: asyncio.BaseTransport | None = None
        ended = False

        def release() -> None:
            nonlocal ended
            if not ended:
                ended = True
                self._transports.discard(transport)  # type: ignore[arg-type]
                self._slots.release(client)
                if self._slots.total == self._slots.limit - 1:
                    self._resume_accepting()

        def protocol() -> Protocol:
            made = self._protocols()
            made.released = release
            if self._certificates is not None:
                made.admits = self._certificates.admits
            return made

        try:
            context = self._certificates.context() if self._certificates is not None else None
            transport, _ = await self._loop.connect_accepted_socket(
                protocol, connection, ssl=context,
                ssl_handshake_timeout=self.handshake_timeout if context else None)
        except (OSError, TimeoutError, asyncio.CancelledError):
            connection.close()  # not TLS, a refused client certificate, too slow, stopping
            release()
            return
        if not ended:
            self._transports.add(transport)

    def _resume_accepting(self) -> None:
        if not self._stopping.is_set():
            self._loop.add_reader(self._listener, self._accept)

    # --- requests ---

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.version not in PROTOCOLS:
            return refusal(505)
        if head_size(request) > MAX_HEAD:
            return refusal(431)
        if request.body_exists:
            refused = await self._drop_body(request)
            if refused is not None:
                return refused
        elif (scraped := self._scraped(request)) is not None:
            return scraped
        environ = self._environ(request)
        assert self._workers is not None
        try:
            if self._passwords is not None and self._guard is not None \
                    and self._guard.unverified(environ):
                await self._passwords.verify(client_of(environ["REMOTE_ADDR"]),
                                             environ.get("HTTP_AUTHORIZATION"))
            if environ["PATH_INFO"] in SCRAPE_PATHS:
                answer = Answer(self.app, environ)
            else:
                answer = await self._workers.submit(lambda: Answer(self.app, environ))
        except HttpError as error:
            return refusal(error.status, error)
        except Exception as error:
            log.error("request_failed", route=environ["PATH_INFO"], error=describe_error(error))
            return refusal(500)
        return await self._respond(request, answer)

    def _scraped(self, request: web.BaseRequest) -> web.Response | None:
        """The fast path: a scrape or health check answered from the app's ready-made Response
        and the head prepared for it; None for anything else, a password not verified before
        or missing included, which goes the general way (the WSGI app, the bcrypt threads)."""
        path = request.raw_path.partition("?")[0]
        if self._scrape is None or path not in SCRAPE_PATHS or request.method not in METHODS:
            return None
        headers = request.headers
        if self._guard is not None and not self._guard.admits(path,
                                                              joined(headers, "Authorization")):
            return None
        response = self._scrape(path, joined(headers, "Accept"), joined(headers, "Accept-Encoding"))
        if response is None:
            return None
        prepared = self._heads.get(id(response)) or self._prepare(response)
        return web.Response(status=response.status, headers=prepared[1],
                            body=b"" if request.method == "HEAD" else response.body)

    def _prepare(self, response: Response) -> tuple[Response, CIMultiDict[str]]:
        """The head of a fast path answer, kept while `response` is the one the app gives (a
        refresh gives new ones: the heads of a few refreshes back are dropped)."""
        if len(self._heads) >= MAX_HEADS:
            self._heads.clear()
        lines = [("Server", SERVER), *head_of(response)]
        if self._guard is not None:
            lines = self._guard.with_headers(lines)
        head = CIMultiDict(checked(lines))
        prepared = self._heads[id(response)] = (response, head)
        return prepared

    async def _drop_body(self, request: web.BaseRequest) -> web.Response | None:
        """Read and drop a request body (no route takes one), after a 100 Continue if the client
        waits for it; a refusal if it is too large."""
        if request.content_length is not None and request.content_length > MAX_BODY:
            return refusal(413)
        if request.headers.get("Expect", "").lower() == "100-continue":
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        read = 0
        async with asyncio.timeout(self.timeout):
            while chunk := await request.content.readany():
                read += len(chunk)
                if read > MAX_BODY:
                    return refusal(413)
        return None

    async def _respond(self, request: web.BaseRequest, answer: Answer) -> web.StreamResponse:
        assert answer.status is not None and self._workers is not None
        if not answer.streamed:
            return web.Response(status=answer.status, reason=answer.reason,
                                headers=answer.headers, body=answer.first)
        close = answer.close
        response = web.StreamResponse(status=answer.status, reason=answer.reason,
                                      headers=answer.headers)
        try:
            async with asyncio.timeout(self.timeout):
                await response.prepare(request)
                await response.write(answer.first)
            while (piece := await self._workers.submit(answer.next_piece)) is not None:
                async with asyncio.timeout(self.timeout):
                    await response.write(piece)
            await response.write_eof()
        except asyncio.CancelledError:
            close = None  # the connection or the server ended: a worker may be inside the body
            raise
        except Exception as error:
            if not isinstance(error, OSError | TimeoutError):
                log.error("response_failed", error=describe_error(error))
            if request.transport is not None:
                request.transport.abort()  # a reset, a stalled reader, or a failed body
            raise ConnectionResetError("the answer was cut short") from None
        finally:
            if close is not None:  # on a worker: a streamed body may close a query
                await asyncio.shield(self._workers.submit(close))
        return response

    def _environ(self, request: web.BaseRequest) -> Environ:
        target = request.raw_path
        if not target.startswith("/"):  # absolute form (http://host/path) or *
            target = "/" + target.split("://", 1)[-1].partition("/")[2]
        path, _, query = target.partition("?")
        peer = request.transport.get_extra_info("peername") if request.transport else None
        address = peer[:2] if peer else ("", 0)
        environ = self._constant_environ.copy()
        environ["REQUEST_METHOD"] = request.method
        environ["PATH_INFO"] = unquote_to_bytes(path).decode("latin-1") if "%" in path else path
        environ["QUERY_STRING"] = query
        environ["SERVER_PROTOCOL"] = PROTOCOLS[request.version]
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = address[0], str(address[1])
        environ["wsgi.input"] = io.BytesIO()
        for raw_name, raw_value in request.raw_headers:
            name = raw_name.decode("latin-1").upper()
            if "_" in name:  # would pass for the same variable as its dashed twin
                continue
            key = name.replace("-", "_")
            key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key
            value = raw_value.decode("latin-1")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket listening on host:port. No host (`:PORT`) is every interface, IPv6 and IPv4 on
    one socket as Prometheus exporters listen; IPv4 alone where the host has no IPv6."""
    if host:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return socket.create_server((host, port), family=family, backlog=BACKLOG)
    if socket.has_dualstack_ipv6():
        try:
            return socket.create_server(("::", port), family=socket.AF_INET6, backlog=BACKLOG,
                                        dualstack_ipv6=True)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:  # IPv4 alone would be refused alike
                raise
    return socket.create_server(("0.0.0.0", port), family=socket.AF_INET, backlog=BACKLOG)


def address_text(host: str, port: int) -> str:
    """host:port as the config writes it: `:PORT` for every interface, an IPv6 host in []."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def local_url(scheme: str, host: str, port: int) -> str:
    """Where a client on this host reaches a server listening on host:port: an address of every
    interface by the loopback one (127.0.0.1 answers on a dual-stack socket too)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"{scheme}://{address_text(host, port)}"


def head_size(request: web.BaseRequest) -> int:
    """The size of the request's header lines together: aiohttp bounds each (MAX_FIELD) and
    their number (MAX_HEADERS), not their sum. (Summed in C: it runs for every request.)"""
    raw = request.raw_headers
    return sum(map(len, chain.from_iterable(raw))) + 4 * len(raw)
