"""The HTTP server: one asyncio event loop reads every request and writes every response (h11
parses and frames them), a pool of worker threads runs the WSGI app for the API routes. An idle or
slow client holds a socket, never a thread; an API request crosses to a worker and its answer
back, one hand-off each way. Scrapes and health checks, which only send bytes already rendered,
are answered in the loop itself. TLS, when the web config asks for it, is asyncio's, with the
certificate read again when its files change.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import resource
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, TypeVar
from urllib.parse import unquote_to_bytes

import h11
import structlog

from exporter.db import describe_error
from exporter.http import Environ, WsgiApp, encode_json
from exporter.webconfig import Certificates, Guard, WebConfig

MAX_CONNECTIONS = 1000
# Descriptors kept free of client connections: database pools, the history store, logs.
SPARE_DESCRIPTORS = 100
# Routes that only send bytes the last refresh rendered.
SCRAPE_PATHS = frozenset({"/metrics", "/-/healthy", "/-/ready"})
MAX_HEAD = 64 * 1024  # request line and headers
MAX_BODY = 64 * 1024  # every route is a GET: a body is read and dropped, up to this size
CHUNK = 64 * 1024
LINGER, MAX_LINGER = 2.0, 1024 * 1024  # seconds and bytes read after refusing a request
SERVER = "usage-exporter"

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
    """What the app answered, gathered on a worker: the response head (checked by h11 here, so
    a malformed header fails the request on the worker) and the first piece of the body
    (`rest` iterates the others, for a streamed body; WSGI lets an app call start_response as
    late as its first piece)."""

    def __init__(self, app: WsgiApp, environ: Environ, extra: list[tuple[str, str]]) -> None:
        self._extra = extra
        self.response: h11.Response | None = None
        body = app(environ, self._start_response)
        self.rest: Iterator[bytes] | None = None
        self._body = body
        if isinstance(body, list | tuple):
            self.first = b"".join(body)
        else:
            self.rest = iter(body)
            self.first = next(self.rest, b"")
        if self.response is None:
            raise RuntimeError("the app returned without calling start_response")

    def _start_response(self, status: str, headers: list[tuple[str, str]],
                        exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None and self.response is not None:
            raise exc_info[1].with_traceback(exc_info[2])
        code, _, reason = status.partition(" ")
        self.response = h11.Response(
            status_code=int(code), reason=reason.encode("latin-1"),
            headers=[(name.encode("latin-1"), value.encode("latin-1"))
                     for name, value in [*self._extra, *headers]])
        return self._refuse_write

    @staticmethod
    def _refuse_write(data: bytes) -> None:
        raise RuntimeError("write() of start_response is not supported; return the body")

    def next_piece(self) -> bytes | None:
        """The next piece of a streamed body; None at its end."""
        assert self.rest is not None
        return next(self.rest, None)

    @property
    def close(self) -> Callable[[], None] | None:
        """The body's close(), which WSGI says the server must call once it is sent."""
        return getattr(self._body, "close", None)


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
        self.app: WsgiApp = app if self._guard is None else self._guard
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=1024)
        self._listener.setblocking(False)
        self._name = self._listener.getsockname()[:2]
        self._limit = connection_limit()
        self._threads = threads
        self._workers: Workers | None = None
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()
        self._connections: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None
        self._date = (0, "")

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
        serving = self._loop.create_task(self._serve())
        try:
            self._loop.run_until_complete(serving)
        finally:
            self._loop.run_until_complete(self._close([serving, *self._connections]))
            self._loop.close()
            self._listener.close()
            self._workers.stop()

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
        self._loop.add_reader(self._listener, self._accept)
        await self._stopping.wait()
        self._loop.remove_reader(self._listener)  # before the connections are listed and closed

    @staticmethod
    async def _close(tasks: list[asyncio.Task[None]]) -> None:
        """Drop every connection: cancel their tasks."""
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(0)  # the aborted transports close their sockets

    def _accept(self) -> None:
        """Called when the listening socket is readable: accept while fewer than the connection
        limit are open (handshakes included), then stop watching it until one ends; more wait in
        the listen backlog. (Not loop.sock_accept: a stop that cancels it can meet an accept
        already under way, which asyncio then reports with a traceback.)"""
        while not self._stopping.is_set() and len(self._connections) < self._limit:
            try:
                connection, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # such as out of descriptors: pause, as asyncio's servers do
                log.warning("accept_failed", error=str(error))
                self._loop.remove_reader(self._listener)
                self._loop.call_later(1, self._resume_accepting)
                return
            connection.setblocking(False)
            # Without it an answer's last segment can wait for the client's delayed ACK (40 ms).
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self._loop.create_task(self._serve_connection(connection, address[:2]))
            self._connections.add(task)
            task.add_done_callback(self._connection_ended)
        if not self._stopping.is_set():
            self._loop.remove_reader(self._listener)  # at the limit

    def _connection_ended(self, task: asyncio.Task[None]) -> None:
        self._connections.discard(task)
        if len(self._connections) == self._limit - 1:
            self._resume_accepting()

    def _resume_accepting(self) -> None:
        if not self._stopping.is_set():
            self._loop.add_reader(self._listener, self._accept)

    async def _serve_connection(self, connection: socket.socket,
                                address: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=CHUNK, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        context = self._certificates.context() if self._certificates is not None else None
        try:
            transport, _ = await loop.connect_accepted_socket(
                lambda: protocol, connection, ssl=context,
                ssl_handshake_timeout=self.handshake_timeout if context else None)
        except (OSError, TimeoutError):  # not TLS, a refused client certificate, too slow
            connection.close()
            return
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        try:
            await self._exchange(h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD),
                                 reader, writer, address)
        except (OSError, TimeoutError, h11.LocalProtocolError):
            transport.abort()  # a reset, a stalled reader, or a body unlike its Content-Length
        except asyncio.CancelledError:
            transport.abort()
            raise
        except Exception as error:  # a streamed body that failed after its head was sent
            log.error("response_failed", error=describe_error(error))
            transport.abort()
        else:
            transport.close()

    async def _exchange(self, h11_connection: h11.Connection, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter, address: tuple[str, int]) -> None:
        """Requests and answers, one at a time, until either side closes."""
        while True:
            try:
                async with asyncio.timeout(self.timeout):
                    request = await self._read_request(h11_connection, reader, writer)
            except h11.RemoteProtocolError as error:
                if h11_connection.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._send_error(h11_connection, writer, error.error_status_hint)
                    await _linger(reader, writer)
                return
            except TimeoutError:
                return  # idle, or too slow to send a request
            if request is None:
                return
            await self._answer(h11_connection, writer, self._environ(request, address))
            if h11_connection.our_state is h11.MUST_CLOSE:
                return
            h11_connection.start_next_cycle()

    async def _read_request(self, h11_connection: h11.Connection, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> h11.Request | None:
        """The next request, its body read and dropped; None when the client closed."""
        request: h11.Request | None = None
        body = 0
        while True:
            event = h11_connection.next_event()
            if event is h11.NEED_DATA:
                if h11_connection.they_are_waiting_for_100_continue:
                    writer.write(h11_connection.send(h11.InformationalResponse(status_code=100)))
                h11_connection.receive_data(await reader.read(CHUNK))
            elif isinstance(event, h11.Request):
                names = {name for name, _ in event.headers}
                if b"content-length" in names and b"transfer-encoding" in names:
                    # Framed two ways: a proxy in front may have read it the other way, so what
                    # follows could be a request smuggled past it (RFC 9112, 6.3).
                    raise h11.RemoteProtocolError("both Content-Length and Transfer-Encoding",
                                                  error_status_hint=400)
                request = event
            elif isinstance(event, h11.Data):
                body += len(event.data)
                if body > MAX_BODY:
                    raise h11.RemoteProtocolError("request body too large",
                                                  error_status_hint=413)
            elif isinstance(event, h11.EndOfMessage):
                return request
            else:  # ConnectionClosed, or PAUSED: a client that closed or sent a bare EOF
                return None

    def _environ(self, request: h11.Request, address: tuple[str, int]) -> Environ:
        target = request.target
        if not target.startswith(b"/"):  # absolute form (http://host/path) or *
            target = b"/" + target.split(b"://", 1)[-1].partition(b"/")[2]
        path, _, query = target.partition(b"?")
        environ: Environ = {
            "REQUEST_METHOD": request.method.decode("ascii"),
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "SERVER_NAME": self._name[0],
            "SERVER_PORT": str(self._name[1]),
            "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
            "REMOTE_ADDR": address[0],
            "REMOTE_PORT": str(address[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": self.scheme,
            "wsgi.input": io.BytesIO(),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for raw_name, raw_value in request.headers:
            name = raw_name.decode("latin-1").upper()
            if "_" in name:  # would pass for the same variable as its dashed twin
                continue
            key = name.replace("-", "_")
            key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key
            value = raw_value.decode("latin-1")
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    async def _answer(self, h11_connection: h11.Connection, writer: asyncio.StreamWriter,
                      environ: Environ) -> None:
        assert self._workers is not None
        path, server_headers = environ["PATH_INFO"], self._server_headers()
        try:
            if self._in_loop(environ):
                answer = Answer(self.app, environ, server_headers)
            else:
                answer = await self._workers.submit(
                    lambda: Answer(self.app, environ, server_headers))
        except Exception as error:
            log.error("request_failed", route=path, error=describe_error(error))
            await self._send_error(h11_connection, writer, 500)
            return
        assert answer.response is not None
        bodiless = environ["REQUEST_METHOD"] == "HEAD" or answer.response.status_code in (204, 304)
        close = answer.close
        try:
            head = h11_connection.send(answer.response)
            if bodiless:  # whatever the app gave as a body is not sent
                await self._send(writer, head + h11_connection.send(h11.EndOfMessage()))
                return
            await self._send(writer, head + h11_connection.send(h11.Data(data=answer.first)))
            while answer.rest is not None:
                piece = await self._workers.submit(answer.next_piece)
                if piece is None:
                    break
                await self._send(writer, h11_connection.send(h11.Data(data=piece)))
            await self._send(writer, h11_connection.send(h11.EndOfMessage()))
        except asyncio.CancelledError:
            close = None  # the server is stopping, and a worker may be inside the body
            raise
        finally:
            if close is not None:  # on a worker: a streamed body may close a query
                await asyncio.shield(self._workers.submit(close))

    def _in_loop(self, environ: Environ) -> bool:
        """Whether the event loop answers the request itself: scrapes and health checks send
        bytes the last refresh rendered, so no worker busy with API calls holds them up. Not
        /metrics behind basic auth with a password not yet verified: that check is a bcrypt."""
        return environ["PATH_INFO"] in SCRAPE_PATHS and (
            self._guard is None or self._guard.costs_no_bcrypt(environ))

    async def _send_error(self, h11_connection: h11.Connection, writer: asyncio.StreamWriter,
                          status: int) -> None:
        body = encode_json({"code": float(status), "message": HTTPStatus(status).phrase + "."})
        response = h11.Response(status_code=status, headers=[
            *self._server_headers(), ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))), ("Connection", "close")])
        await self._send(writer, h11_connection.send(response)
                         + h11_connection.send(h11.Data(data=body))
                         + h11_connection.send(h11.EndOfMessage()))

    async def _send(self, writer: asyncio.StreamWriter, data: bytes | None) -> None:
        if data:
            writer.write(data)
        async with asyncio.timeout(self.timeout):
            await writer.drain()

    def _server_headers(self) -> list[tuple[str, str]]:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, formatdate(usegmt=True))
        return [("Server", SERVER), ("Date", self._date[1])]


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Before closing on a refused request, read what the client still sends, for a moment:
    closing with unread bytes resets the connection, and the reset can destroy the answer
    before the client reads it."""
    if writer.can_write_eof():
        writer.write_eof()
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(LINGER):
            unread = 0
            while unread < MAX_LINGER and (data := await reader.read(CHUNK)):
                unread += len(data)
