"""The load the daemon is put under, over real sockets: keep-alive clients calling a mix of
/metrics and API routes, sockets held open idle or sending a request one byte at a time, and
single scrapes that must come back whole. tests/test_load.py runs them bounded; bench/load.py
reports their latencies.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.demo_daemon import API_KEY

# (path, extra headers): what each client calls in turn
MIX: tuple[tuple[str, dict[str, str]], ...] = (
    ("/metrics", {}),
    ("/metrics", {"Accept-Encoding": "gzip"}),
    ("/metrics", {"Accept": "application/openmetrics-text"}),
    ("/-/healthy", {}),
    ("/api/v1/snapshot", {}),
    ("/api/v1/users?limit=20&order_by=used_bytes&dir=b", {}),
    ("/api/v1/users.csv", {}),
    ("/api/v1/stats", {}),
)


def complete(path: str, headers: dict[str, str], body: bytes) -> bool:
    """Whether `body` is a whole answer of its route, not a truncated one."""
    if path == "/metrics":
        if headers.get("Accept-Encoding") == "gzip":
            return body[:2] == b"\x1f\x8b"
        end = b"# EOF\n" if "Accept" in headers else b"\n"
        return b"usage_exporter_build_info" in body and body.endswith(end)
    if path.startswith("/api/v1/users.csv"):
        return body.startswith(b"user_id,") and body.endswith(b"\n")
    if path.startswith("/api/"):
        return isinstance(json.loads(body), dict)
    return body == b"OK\n"


@dataclass
class LoadResult:
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, name: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.requests += 1
            self.latencies.setdefault(name, []).append(seconds)
            if error is not None:
                self.errors.append(error)


def split(base: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(base)
    return parts.hostname or "127.0.0.1", parts.port or 80


def client(base: str, offset: int, seconds: float, start: threading.Barrier,
           result: LoadResult) -> None:
    """One keep-alive connection, opened before the start, calling the mix in turn."""
    host, port = split(base)
    connection = http.client.HTTPConnection(host, port, timeout=60)
    connection.connect()
    start.wait()
    deadline = time.monotonic() + seconds
    turn = offset
    while time.monotonic() < deadline:
        path, headers = MIX[turn % len(MIX)]
        turn += 1
        began = time.monotonic()
        error = None
        try:
            connection.request("GET", path, headers={"Authorization": f"Bearer {API_KEY}",
                                                     **headers})
            response = connection.getresponse()
            body = response.read()
            if response.status != 200 or not complete(path, headers, body):
                error = f"{path} {headers}: {response.status} {body[:200]!r}"
        except (OSError, http.client.HTTPException, ValueError) as failure:
            error = f"{path} {headers}: {failure!r}"
            connection.close()
        result.record(" ".join([path, *headers.values()]), time.monotonic() - began, error)
    connection.close()


def hammer(base: str, connections: int, seconds: float) -> LoadResult:
    """`connections` clients, all connected before any starts, each calling the mix for
    `seconds`."""
    result = LoadResult()
    start = threading.Barrier(connections)
    threads = [threading.Thread(target=client, args=(base, n, seconds, start, result),
                                daemon=True) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


@contextmanager
def held_sockets(base: str, idle: int, slow: int, trickle: float = 1.0) -> Iterator[None]:
    """`idle` connected sockets that send nothing, and `slow` ones that send a request head one
    byte each `trickle` seconds (never finishing it), all held open inside the block."""
    host, port = split(base)
    sockets = [socket.create_connection((host, port), timeout=30) for _ in range(idle + slow)]
    senders = sockets[idle:]
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100_000
    stopped = threading.Event()

    def trickle_bytes() -> None:
        position = 0
        while not stopped.wait(trickle):
            for sock in senders:
                sock.send(head[position:position + 1])
            position = (position + 1) % len(head)

    sender = threading.Thread(target=trickle_bytes, daemon=True)
    sender.start()
    try:
        yield
    finally:
        stopped.set()
        sender.join()
        for sock in sockets:
            sock.close()


def scrape(base: str) -> float:
    """One scrape on a new connection; its latency in seconds. Raises unless it is whole."""
    host, port = split(base)
    began = time.monotonic()
    connection = http.client.HTTPConnection(host, port, timeout=60)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200 or not complete("/metrics", {}, body):
        raise RuntimeError(f"scrape answered {response.status}: {body[:200]!r}")
    return time.monotonic() - began
