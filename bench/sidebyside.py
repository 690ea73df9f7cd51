"""What the side-by-side benchmarks share (bench.compare_query_exporter, bench.compare_synapse):
one load client for every server, a static-bytes floor served by our HttpServer, and results
printed as a table and written as JSON to bench/results/. The third-party tools run in
virtualenvs of their own, started and stopped by PID by tests.servers (the one launcher tests and
benchmarks share).
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import os
import platform
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.servers import HOST, Server, free_port, started

ROOT = Path(__file__).resolve().parent.parent
WORK = Path("/tmp/usage-exporter-bench")
RESULTS = ROOT / "bench" / "results"
API_KEY = "bench-key-0123456789abcdef"
# What Prometheus sends when it asks for the classic text format.
TEXT_FORMAT = {"Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1"}


def exporter_config(url: str, platform: str, directory: Path, collectors: Sequence[str],
                    **sections: Any) -> dict[str, Any]:
    """usage-exporter's config: the listed collectors refresh once at start-up and not again
    during the load; the others are off."""
    from collectors import available

    return {"database": {"url": url, "platform": platform},
            "api": {"keys": [{"name": "bench", "secret": API_KEY}]},
            "history": {"url": f"sqlite:///{directory / 'history.db'}"},
            "logging": {"level": "warning", "format": "json"},
            "collectors": {name: {"enabled": name in collectors, "interval": "1h",
                                  "timeout": "10m", "jitter": "1s"} for name in available()},
            **sections}


@contextmanager
def usage_exporter(config: Mapping[str, Any], directory: Path,
                   as_of: float | None = None) -> Iterator[Server]:
    """`usage-exporter run` with `config` on a free port, ready once every collector ran."""
    port = free_port()
    path = directory / "usage-exporter.yaml"
    path.write_text(json.dumps({**config, "server": {"listen": f"{HOST}:{port}"}}))
    clock = [] if as_of is None else ["--as-of", repr(as_of)]
    with started("usage-exporter", [sys.executable, "-m", "exporter", "run", "--config", path,
                                    *clock], port, "/-/ready",
                 directory / "usage-exporter.log") as server:
        yield server


def get(url: str, headers: Mapping[str, str] | None = None, timeout: float = 300) -> bytes:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return bytes(response.read())


# --- load ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """A bounded load: `requests` in all (after `warmup` unmeasured ones) from `clients`
    threads, each on one keep-alive connection, stopped after `max_seconds` at the latest."""

    clients: int = 8
    requests: int = 3000
    warmup: int = 8  # one connection each; warm-up requests count against max_seconds
    max_seconds: float = 60.0


@dataclass(frozen=True)
class Measurement:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    per_second: float
    body_bytes: int


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of values sorted ascending."""
    rank = max(1, round(fraction * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def measure(port: int, path: str, load: Load, headers: Mapping[str, str] | None = None,
            bodies: MutableMapping[bytes, bytes] | None = None) -> Measurement:
    """GET path on HOST:port under `load`; every client runs the same loop, whatever the
    server. `bodies`, if given, gets each distinct body of a measured request by its SHA-256,
    hashed after the request's time is taken."""
    sequence = itertools.count()  # next() on it is atomic under the GIL: a shared ticket roll
    latencies: list[float] = []
    errors = 0
    body_bytes = 0
    lock = threading.Lock()
    deadline = time.monotonic() + load.max_seconds
    total = load.warmup + load.requests

    def client() -> None:
        nonlocal errors, body_bytes
        connection = http.client.HTTPConnection(HOST, port, timeout=120)
        mine: list[float] = []
        failed = 0
        try:
            while time.monotonic() < deadline:
                ticket = next(sequence)
                if ticket >= total:
                    break
                begin = time.perf_counter()
                try:
                    connection.request("GET", path, headers=dict(headers or {}))
                    response = connection.getresponse()
                    body = response.read()
                    ok = response.status == 200
                except (OSError, http.client.HTTPException):
                    connection.close()  # reconnects on the next request
                    ok, body = False, b""
                elapsed = time.perf_counter() - begin
                if ticket >= load.warmup:
                    mine.append(elapsed)
                    failed += not ok
                    digest = hashlib.sha256(body).digest() if bodies is not None else b""
                    with lock:
                        body_bytes = max(body_bytes, len(body))
                        if bodies is not None and ok:
                            bodies.setdefault(digest, body)
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)
                errors += failed

    threads = [threading.Thread(target=client, name=f"client-{i}")
               for i in range(load.clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if not latencies:
        raise SystemExit(f"no request to :{port}{path} after the {load.warmup} warm-up ones "
                         f"completed within {load.max_seconds:g}s: allow more time")
    latencies.sort()
    return Measurement(len(latencies), errors, round(seconds, 3),
                       round(percentile(latencies, 0.50) * 1000, 3),
                       round(percentile(latencies, 0.99) * 1000, 3),
                       round(statistics.fmean(latencies) * 1000, 3),
                       round(len(latencies) / seconds, 1), body_bytes)


def median(measurements: Sequence[Measurement]) -> Measurement:
    """Each field's median over rounds of the same measurement."""
    fields = asdict(measurements[0])
    return Measurement(**{name: type(value)(statistics.median(getattr(m, name)
                                                              for m in measurements))
                          for name, value in fields.items()})


@dataclass(frozen=True)
class Spread:
    """One number over rounds: the median, with the smallest and the largest round."""

    median: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.median:g} ({self.low:g}-{self.high:g})"


def spread(values: Iterable[float]) -> Spread:
    ordered = sorted(values)
    return Spread(round(statistics.median(ordered), 3), ordered[0], ordered[-1])


# --- the floor -------------------------------------------------------------------------------


@contextmanager
def static_floor(body: bytes, content_type: str, directory: Path,
                 script: Path = ROOT / "bench" / "static_server.py") -> Iterator[Server]:
    """`body` served on /metrics by `script`, in a process of its own, so it shares no
    interpreter with the load client: by default bench/static_server.py (our HttpServer, as the
    daemon runs it: what a route adds on our server), or bench/http_floor.py (no code of ours:
    what any Python server adds)."""
    body_file = directory / "floor.body"
    body_file.write_bytes(body)
    port = free_port()
    with started("static floor", [sys.executable, script, body_file, str(port), content_type],
                 port, "/metrics", directory / "floor.log") as server:
        yield server


# --- results ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cpus": os.cpu_count(), "memory_gib": round(memory_kib / 1024**2, 1),
            "python": platform.python_version(), "system": platform.platform(),
            "date": datetime.now(UTC).date().isoformat(),
            "load_average_at_end": [round(n, 2) for n in os.getloadavg()],
            "note": "shared with other work: compare ratios within one run"}


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def write_results(stem: str, value: Mapping[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{stem}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps({"machine": machine(), **value}, indent=2, default=asdict) + "\n")
    return path
