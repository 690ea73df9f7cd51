"""/metrics and API latency of the exporter against a minimal server (bench/http_floor.py) and
the maintained stacks of bench/http_candidates.py, all serving the same /metrics bytes of one
database, measured interleaved in one run:

- one keep-alive connection per server, one request to each server in turn (the order rotated
  every round), p50 and p99 of each;
- wrk with 8 keep-alive connections, the servers in turn, when wrk is installed;
- the API routes of the exporter, and of a baseline exporter (--baseline: another checkout,
  such as main before a change, also measured on /metrics) on the same database, interleaved
  the same way.

    python bench/http_compare.py [--database nextcloud.db] [--baseline /work/main] [--runs 3]

Prints medians over the runs with their range; writes bench/results/http-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.run import SCRAPE_HEADERS, load
from tests.demo_daemon import API_KEY, write_config
from tests.servers import free_port, terminate, wait_daemon_ready

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "nextcloud" / "nextcloud.db"
CANDIDATES = ("starlette", "asgi", "aiohttp", "aiohttp-lowlevel")
API_ROUTES = ("/api/v1/snapshot", "/api/v1/users?limit=100", "/api/v1/stats",
              "/api/v1/history/dau?days=30")


class Client:
    """One keep-alive connection sending a fixed request and reading Content-Length framed
    answers: as little client work as possible between two timestamps."""

    def __init__(self, port: int, target: str, headers: dict[str, str]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1",
                 *(f"{name}: {value}" for name, value in headers.items())]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode()

    def time(self) -> float:
        started = time.perf_counter()
        self.sock.sendall(self.request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += self._recv()
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"answered {head[:40]!r}")
        length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        while len(body) < length:
            body += self._recv()
        return time.perf_counter() - started

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("connection closed")
        return chunk


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {"p50_ms": 1000 * ordered[len(ordered) // 2],
            "p99_ms": 1000 * ordered[int(len(ordered) * 0.99)]}


def interleaved(clients: dict[str, Client], rounds: int) -> dict[str, dict[str, float]]:
    names = list(clients)
    times: dict[str, list[float]] = {name: [] for name in names}
    for n in range(rounds):
        for name in names[n % len(names):] + names[:n % len(names)]:
            times[name].append(clients[name].time())
    return {name: percentiles(found) for name, found in times.items()}


@contextmanager
def process(arguments: list[str], port: int, cwd: Path, log: Path) -> Iterator[None]:
    with log.open("ab") as out:
        popen = subprocess.Popen(arguments, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if popen.poll() is not None:
                raise RuntimeError(f"{arguments[:3]} exited: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield
    finally:
        terminate(popen)


@contextmanager
def daemon(root: Path, database: Path, workdir: Path) -> Iterator[int]:
    """`python -m exporter run` from the checkout `root` on `database`; its port."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = write_config(workdir, database, 3600, port)
    log = workdir / "daemon.log"
    with log.open("ab") as out:
        popen = subprocess.Popen([sys.executable, "-m", "exporter", "run", "--config",
                                  str(config)], cwd=root, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT)
    try:
        wait_daemon_ready(f"http://127.0.0.1:{port}", popen, log, 600, error=RuntimeError)
        yield port
    finally:
        terminate(popen)


def scrape(port: int) -> tuple[bytes, str, str | None]:
    client = Client(port, "/metrics", SCRAPE_HEADERS)
    client.sock.sendall(client.request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += client._recv()
    head, _, body = data.partition(b"\r\n\r\n")
    fields = {k.lower(): v.strip() for k, _, v in
              (line.decode().partition(":") for line in head.split(b"\r\n")[1:])}
    while len(body) < int(fields["content-length"]):
        body += client._recv()
    client.sock.close()
    return body, fields["content-type"], fields.get("content-encoding")


def spread(runs: list[dict[str, Any]], *keys: str) -> dict[str, float]:
    values = []
    for run in runs:
        for key in keys:
            run = run[key]
        values.append(run)
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", type=Path, default=FIXTURE)
    parser.add_argument("--baseline", type=Path, help="another checkout to measure its API")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=3000, help="per server and run")
    parser.add_argument("--api-requests", type=int, default=300, help="per route and run")
    parser.add_argument("--seconds", type=float, default=3.0, help="per wrk round")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="http-compare-"))
    database = workdir / "platform.db"
    shutil.copyfile(args.database, database)  # the daemons only read it; the copy keeps it so
    with ExitStack() as stack:
        ports = {"exporter": stack.enter_context(daemon(ROOT, database, workdir / "exporter"))}
        if args.baseline is not None:
            ports["baseline"] = stack.enter_context(
                daemon(args.baseline, database, workdir / "baseline"))
        body, content_type, encoding = scrape(ports["exporter"])
        body_file = workdir / "metrics.body"
        body_file.write_bytes(body)
        tail = [str(body_file), content_type, *([encoding] if encoding else [])]
        servers = {"floor": [sys.executable, "bench/http_floor.py"]}
        for stack_name in filter(None, args.candidates.split(",")):
            servers[stack_name] = [sys.executable, "bench/http_candidates.py", stack_name]
        for name, command in servers.items():
            port = free_port()
            command = [*command[:2], *command[2:3], tail[0], str(port), *tail[1:]]
            stack.enter_context(process(command, port, ROOT, workdir / f"{name}.log"))
            ports[name] = port
        scrapers = list(ports)
        runs: list[dict[str, Any]] = []
        for run in range(args.runs):
            clients = {name: Client(ports[name], "/metrics", SCRAPE_HEADERS)
                       for name in scrapers}
            interleaved(clients, 200)  # warm-up
            result: dict[str, Any] = {"one_connection": interleaved(clients, args.requests)}
            if shutil.which("wrk"):
                result["wrk8"] = {name: load(ports[name], 8, args.seconds) for name in scrapers}
            api_servers = [name for name in ("baseline", "exporter") if name in ports]
            result["api"] = {}
            for route in API_ROUTES:
                api_clients = {name: Client(ports[name], route,
                                            {"Authorization": f"Bearer {API_KEY}"})
                               for name in api_servers}
                interleaved(api_clients, 20)
                result["api"][route] = interleaved(api_clients, args.api_requests)
            runs.append(result)
            print(f"run {run + 1}: " + json.dumps(result["one_connection"]), flush=True)
    summary: dict[str, Any] = {"database": str(args.database), "body_bytes": len(body),
                               "runs": runs, "one_connection": {}, "wrk8": {}, "api": {}}
    for name in scrapers:
        summary["one_connection"][name] = {
            p: spread(runs, "one_connection", name, p) for p in ("p50_ms", "p99_ms")}
        if "wrk8" in runs[0]:
            summary["wrk8"][name] = {p: spread(runs, "wrk8", name, p)
                                     for p in ("p50_ms", "p99_ms", "rps")}
    for route in API_ROUTES:
        summary["api"][route] = {name: {p: spread(runs, "api", route, name, p)
                                        for p in ("p50_ms", "p99_ms")}
                                 for name in runs[0]["api"][route]}
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    out = results / f"http-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"/metrics, {len(body):,} bytes; medians of {args.runs} runs [range]; the ratio to "
          "the floor taken in each run")
    for section in ("one_connection", "wrk8"):
        for name, found in summary[section].items():
            cells = []
            for p in ("p50_ms", "p99_ms"):
                ratios = [run[section][name][p] / run[section]["floor"][p] for run in runs]
                cells.append(f"{p} {found[p]['median']:.3f} [{found[p]['min']:.3f}-"
                             f"{found[p]['max']:.3f}] ({statistics.median(ratios):.2f}x "
                             f"[{min(ratios):.2f}-{max(ratios):.2f}])")
            print(f"{section:15} {name:17} " + "  ".join(cells))
    for route, found in summary["api"].items():
        for name, values in found.items():
            print(f"api {route:55} {name:9} " + "  ".join(
                f"{p} {v['median']:.2f} [{v['min']:.2f}-{v['max']:.2f}]"
                for p, v in values.items()))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
