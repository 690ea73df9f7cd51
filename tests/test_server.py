"""The HTTP server over real sockets, with small WSGI apps: HTTP/1.1 framing and keep-alive,
refused requests, streamed bodies, a failing app, timeouts, and scrapes ahead of API calls."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import bcrypt
import pytest

from exporter import server as server_module
from exporter.server import MAX_BODY, MAX_HEAD, MAX_LINE, HttpServer
from exporter.webconfig import WebConfig

Environ = dict[str, Any]


def echo(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
    """Answers with the request as the app saw it."""
    seen = {key: value for key, value in environ.items() if isinstance(value, str)}
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body] if environ["REQUEST_METHOD"] != "HEAD" else [b""]


@pytest.fixture
def serve() -> Iterator[Callable[..., HttpServer]]:
    servers: list[HttpServer] = []

    def start(app: Callable[..., Iterable[bytes]] = echo, host: str = "127.0.0.1",
              **options: Any) -> HttpServer:
        servers.append(HttpServer(app, host, 0, **options).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def connect(server: HttpServer, source: str = "127.0.0.1") -> socket.socket:
    """A connection from `source`, an address of the loopback network (127.0.0.0/8): each
    address is another client."""
    return socket.create_connection(("127.0.0.1", server.port), timeout=10,
                                    source_address=(source, 0))


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def responses(data: bytes) -> list[tuple[int, bytes]]:
    """Status and body of each Content-Length framed response in `data`."""
    found = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(line.split(b":")[1]) for line in lines
                      if line.lower().startswith(b"content-length:"))
        found.append((int(lines[0].split()[1]), rest[:length]))
        data = rest[length:]
    return found


def answers_on(host: str, port: int) -> bool:
    """Whether a request to host:port over a real socket is answered 200; False if refused."""
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status == 200
    except ConnectionRefusedError:
        return False
    finally:
        connection.close()


@pytest.mark.skipif(not socket.has_dualstack_ipv6(), reason="the host has no IPv6")
def test_no_host_listens_on_every_interface_ipv6_and_ipv4_on_one_port(serve):
    server = serve(host="")  # listen: ":PORT"
    assert answers_on("::1", server.port) and answers_on("127.0.0.1", server.port)


def test_no_host_on_a_host_without_ipv6_listens_on_ipv4(serve, monkeypatch):
    monkeypatch.setattr(socket, "has_dualstack_ipv6", lambda: False)
    server = serve(host="")
    assert answers_on("127.0.0.1", server.port)
    if socket.has_ipv6:
        assert not answers_on("::1", server.port)


def test_an_ipv4_host_listens_on_ipv4_only(serve):
    server = serve(host="0.0.0.0")
    assert answers_on("127.0.0.1", server.port)
    if socket.has_ipv6:
        assert not answers_on("::1", server.port)


def test_requests_on_one_connection_are_answered_in_order_pipelined_or_not(serve):
    server = serve()
    with connect(server) as sock:
        sock.sendall(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        sock.sendall(b"GET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: close\r\n\r\n")
        rest = read_until_closed(sock)
    paths = [json.loads(body)["PATH_INFO"] for _, body in responses(first + rest)]
    assert paths == ["/one", "/two", "/three"]


def test_the_app_sees_the_decoded_path_the_raw_query_and_the_clients_headers(serve):
    server = serve()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest("GET", "/a%20b/%2E%2E?x=1&y=%20", skip_accept_encoding=True)
    connection.putheader("X-Twice", "1")
    connection.putheader("X-Twice", "2")
    connection.putheader("X_Twice", "smuggled")  # would be the same variable: dropped
    connection.endheaders()
    seen = json.loads(connection.getresponse().read())
    connection.close()
    assert seen["PATH_INFO"] == "/a b/.."
    assert seen["QUERY_STRING"] == "x=1&y=%20"
    assert seen["HTTP_X_TWICE"] == "1,2"
    assert seen["REMOTE_ADDR"] == "127.0.0.1"
    assert seen["wsgi.url_scheme"] == "http"


def test_a_request_line_as_long_as_the_longest_documented_parameter_is_served(serve):
    """A 16,384-character paging token of 4-byte characters, percent-encoded: 192 KiB."""
    server = serve()
    query = "from=" + "%F0%9F%92%A9" * 16384
    with connect(server) as sock:
        sock.sendall(f"GET /users?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                     .encode())
        [(status, body)] = responses(read_until_closed(sock))
    assert (status, json.loads(body)["QUERY_STRING"]) == (200, query)


def test_head_gets_the_headers_and_no_body(serve):
    server = serve()
    with connect(server) as sock:
        sock.sendall(b"HEAD /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_until_closed(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Content-Length: " in head and int(head.split(b"Content-Length: ")[1].split(
        b"\r\n")[0]) > 0
    assert body == b""


def test_an_http_1_0_client_gets_its_answer_and_the_connection_closes(serve):
    server = serve()
    with connect(server) as sock:
        sock.sendall(b"GET /old HTTP/1.0\r\n\r\n")
        data = read_until_closed(sock)  # returns only once the server closed
    assert [status for status, _ in responses(data)] == [200]


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"NONSENSE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2 * MAX_HEAD + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (n, b"a" * 8000)
                                              for n in range(15)) + b"\r\n", 431),
    (b"GET /?" + b"a" * MAX_LINE + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431),
    (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1)
     + b"a" * (MAX_BODY + 1), 413),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 400),
], ids=["bad request line", "bad header", "head too large", "head too large in all",
        "request line too long", "unknown version", "HTTP/2 as text", "body too large",
        "framed two ways"])
def test_a_request_the_server_cannot_take_gets_a_json_error_and_the_connection_closes(
        serve, request_bytes, status):
    server = serve()
    with connect(server) as sock:
        sock.sendall(request_bytes)
        data = read_until_closed(sock)
    [(answered, body)] = responses(data)
    assert answered == status
    assert json.loads(body)["code"] == status


def test_a_client_expecting_100_continue_gets_it_then_its_answer_on_the_same_connection(serve):
    server = serve()
    with connect(server) as sock:
        sock.sendall(b"GET /with-body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        sock.sendall(b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_until_closed(sock)
    answers = responses(data)
    assert [status for status, _ in answers] == [200, 200]
    assert [json.loads(body)["PATH_INFO"] for _, body in answers] == ["/with-body", "/next"]


def raises(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
    raise RuntimeError("secret detail")


def exits(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
    sys.exit("secret detail")


def splits_a_header(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("X-Name", "secret detail\r\nSet-Cookie: a=b")])
    return [b""]


@pytest.mark.parametrize("failure", [raises, exits, splits_a_header])
def test_a_failing_app_gets_a_500_without_its_details_and_the_server_serves_on(serve, failure):
    def app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        if environ["PATH_INFO"] == "/fail":
            return failure(environ, start_response)
        return echo(environ, start_response)

    server = serve(app)
    with connect(server) as sock:
        sock.sendall(b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until_closed(sock)
    [(status, body)] = responses(data)
    assert (status, json.loads(body)["code"]) == (500, 500)
    assert b"secret" not in data and b"Traceback" not in data
    with connect(server) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert [status for status, _ in responses(read_until_closed(sock))] == [200]


class Streamed:
    """A body of `pieces` pieces of `size` bytes, made on demand; records its close()."""

    def __init__(self, pieces: int, size: int = 65536) -> None:
        self.pieces, self.size = pieces, size
        self.closed = threading.Event()
        self.close_thread: str | None = None

    def __iter__(self) -> Iterator[bytes]:
        for n in range(self.pieces):
            yield bytes([65 + n % 26]) * self.size

    def close(self) -> None:
        self.close_thread = threading.current_thread().name
        self.closed.set()


def test_a_streamed_body_is_sent_chunked_in_order_and_closed_on_a_worker(serve):
    body = Streamed(40)

    def streaming(environ: Environ, start_response: Callable[..., Any]) -> Streamed:
        start_response("200 OK", [("Content-Type", "text/csv")])
        return body

    server = serve(streaming)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", "/users.csv")
    response = connection.getresponse()
    received = response.read()
    connection.close()
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert received == b"".join(body)
    assert body.closed.wait(10)
    assert body.close_thread is not None and body.close_thread.startswith("http-worker")


def test_a_client_that_stops_reading_is_dropped_after_the_timeout_and_the_body_closed(serve):
    body = Streamed(100_000)  # 6.5 GB: more than any socket buffer holds

    def streaming(environ: Environ, start_response: Callable[..., Any]) -> Streamed:
        start_response("200 OK", [("Content-Type", "text/csv")])
        return body

    server = serve(streaming, timeout=0.5)
    with connect(server) as sock:
        sock.sendall(b"GET /users.csv HTTP/1.1\r\nHost: x\r\n\r\n")
        assert body.closed.wait(20)  # never read: the server gave up on the stalled client


def test_an_idle_connection_is_closed_after_the_timeout(serve):
    server = serve(timeout=0.5)
    with connect(server) as sock:
        began = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server, not by this socket's 10 s timeout
        assert time.monotonic() - began < 9


class HeldWorker:
    """An app whose first call holds the only worker until released; records every path."""

    def __init__(self) -> None:
        self.served: list[str] = []
        self.busy, self.release = threading.Event(), threading.Event()

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        self.served.append(environ["PATH_INFO"])
        if len(self.served) == 1:
            self.busy.set()
            self.release.wait(30)
        return echo(environ, start_response)


def call(server: HttpServer, path: str, statuses: list[int], **headers: str) -> threading.Thread:
    def get() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        connection.request("GET", path, headers=headers)
        statuses.append(connection.getresponse().status)
        connection.close()

    thread = threading.Thread(target=get)
    thread.start()
    return thread


def wait_for_queue(server: HttpServer, length: int) -> None:
    deadline = time.monotonic() + 10
    while server.waiting < length:
        assert time.monotonic() < deadline, f"{server.waiting} requests queued, not {length}"
        time.sleep(0.01)


def test_scrapes_and_health_checks_are_answered_while_every_worker_is_busy(serve):
    """They only send rendered bytes, so the event loop answers them itself: API load cannot
    push a scrape past Prometheus' timeout."""
    app = HeldWorker()
    server = serve(app, threads=1)
    statuses: list[int] = []
    try:
        api_calls = [call(server, "/api/v1/snapshot", statuses)]
        assert app.busy.wait(10)
        api_calls += [call(server, "/api/v1/snapshot", statuses) for _ in range(4)]
        wait_for_queue(server, 4)
        for path in ("/metrics", "/-/healthy", "/-/ready"):
            scrape = call(server, path, statuses)
            scrape.join(10)
            assert not scrape.is_alive(), f"{path} waited for the busy worker"
        assert statuses == [200] * 3 and server.waiting == 4
    finally:
        app.release.set()
    for thread in api_calls:
        thread.join(30)
    assert statuses == [200] * 8
    assert app.served[:4] == ["/api/v1/snapshot", "/metrics", "/-/healthy", "/-/ready"]


def test_behind_basic_auth_a_password_check_does_not_wait_for_the_workers(serve):
    """Checking a password the first time is a bcrypt, run on a thread of its own: while every
    worker is busy with API calls, a scrape with a new password gets its answer at once (200
    right, 401 wrong), and so does one with the password verified before."""
    web = WebConfig(users={"prometheus": bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4))})
    app = HeldWorker()
    server = serve(app, threads=1, web=web)
    statuses: list[int] = []
    right = "Basic " + base64.b64encode(b"prometheus:secret").decode()
    wrong = "Basic " + base64.b64encode(b"prometheus:guess").decode()
    try:
        api_call = call(server, "/api/v1/snapshot", statuses)
        assert app.busy.wait(10)
        scrapes: list[int] = []
        for authorization in (right, wrong, right):
            scrape = call(server, "/metrics", scrapes, Authorization=authorization)
            scrape.join(10)
            assert not scrape.is_alive(), "a password check waited for the busy worker"
        assert scrapes == [200, 401, 200]
    finally:
        app.release.set()
    api_call.join(30)
    assert statuses == [200]


def test_head_204_and_304_answers_carry_no_body_even_when_the_app_gives_one(serve):
    def bodied(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        status = {"/none": "204 No Content", "/same": "304 Not Modified"}.get(
            environ["PATH_INFO"], "200 OK")
        start_response(status, [("Content-Type", "text/plain"), ("Content-Length", "4")])
        return [b"body"]

    server = serve(bodied)
    with connect(server) as sock:
        sock.sendall(b"HEAD /x HTTP/1.1\r\nHost: x\r\n\r\nGET /none HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /same HTTP/1.1\r\nHost: x\r\n\r\n"
                     b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = read_until_closed(sock)
    heads = data.split(b"\r\n\r\n")
    assert [head.split(b" ")[1] for head in heads[:4]] == [b"200", b"204", b"304", b"200"]
    assert heads[4] == b"body"  # the one GET of a 200 only: the connection stayed in step


def test_a_streamed_body_that_fails_midway_ends_the_connection_and_the_server_serves_on(serve):
    def failing_stream(environ: Environ, start_response: Callable[..., Any]) -> Iterator[bytes]:
        if environ["PATH_INFO"] == "/ok":
            yield from echo(environ, start_response)
            return
        start_response("200 OK", [("Content-Type", "text/csv")])
        yield b"id\n"
        raise RuntimeError("secret detail")

    server = serve(failing_stream)
    with connect(server) as sock:
        sock.sendall(b"GET /users.csv HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            data = read_until_closed(sock)  # ends: the server drops the unfinished answer
        except ConnectionResetError:
            data = b""
    assert not data.endswith(b"0\r\n\r\n") and b"secret" not in data
    with connect(server) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert [status for status, _ in responses(read_until_closed(sock))] == [200]


def test_shutdown_does_not_wait_for_a_worker_stuck_in_a_streamed_body(serve):
    stuck, release = threading.Event(), threading.Event()

    def stalling(environ: Environ, start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/csv")])
        yield b"id\n"
        stuck.set()
        release.wait(60)  # a query that only the runner's close() would cancel
        yield b"1\n"

    server = HttpServer(stalling, "127.0.0.1", 0)
    serving = threading.Thread(target=server.serve_forever)
    serving.start()
    try:
        with connect(server) as sock:
            sock.sendall(b"GET /users.csv HTTP/1.1\r\nHost: x\r\n\r\n")
            assert stuck.wait(10)
            server.shutdown()
            serving.join(10)
            assert not serving.is_alive(), "serve_forever waited for the stuck worker"
    finally:
        release.set()
        server.shutdown()
        serving.join(10)


def test_connections_beyond_the_limit_wait_in_the_backlog_until_one_ends(serve, monkeypatch):
    monkeypatch.setattr(server_module, "connection_limit", lambda: 2)
    server = serve()  # two clients: one connection each is their share of 2
    first, second = connect(server, "127.0.0.2"), connect(server, "127.0.0.3")
    with connect(server, "127.0.0.4") as third:
        third.sendall(b"GET /third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        third.settimeout(0.5)
        with pytest.raises(TimeoutError):
            third.recv(1)  # connected in the backlog, not accepted
        first.close()
        third.settimeout(10)
        assert [status for status, _ in responses(read_until_closed(third))] == [200]
    second.close()


def closed_by_the_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False  # open, nothing to read
    except ConnectionResetError:
        return True


def test_one_client_holding_1000_idle_sockets_leaves_room_for_another_clients_scrape(serve):
    """The attacker gets its share (60 % of the 1,000 connections) and no more; its other
    sockets are closed at once, and the scrape of another client is answered within 1 s."""
    server = serve()
    held = [connect(server, "127.0.0.2") for _ in range(1000)]
    try:
        began = time.monotonic()
        with connect(server, "127.0.0.3") as scraper:
            scraper.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answered = responses(read_until_closed(scraper))
        elapsed = time.monotonic() - began
        time.sleep(0.5)  # the attacker's last connections accepted, or closed
        closed = sum(closed_by_the_server(sock) for sock in held)
    finally:
        for sock in held:
            sock.close()
    assert [status for status, _ in answered] == [200]
    assert elapsed < 1.0
    assert closed == 1000 - server_module.connection_limit() * 6 // 10
