"""Memory in steady state: the real daemon re-running every collector, its API under light load.

    python -m bench.steady --database sqlite:////tmp/nc100k.db --refreshes 10 --runs 3

Each run starts `usage-exporter run` on the database with every collector's interval at
--interval seconds (so the scheduler re-runs each one as often as the interval allows), and
while a client asks for /metrics, /api/v1/users?limit=100 and the whole /api/v1/users.csv once
a second, samples the daemon's VmRSS from /proc every --sample-every seconds. Reported per run:

  steady   VmRSS once every collector has run --refreshes times after its first run;
  peak     the highest VmRSS sampled from the first refresh on, and VmHWM (the kernel's peak,
           start-up included);
  first    with the client stopped, the first /api/v1/users?limit=100 after the users
           collector publishes its next result: latency, and VmRSS after minus before.

The median of the runs and their min-max are printed and written as JSON (--out).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import NOW
from bench.run import API_KEY, exporter_config, memory_kib
from collectors import available
from tests.servers import free_port, start_daemon, terminate, wait_daemon_ready

# What the client asks for once a second; the CSV is read in chunks and dropped.
LOAD_PATHS = ("/metrics", "/api/v1/users?limit=100", "/api/v1/users.csv")
FIRST_PAGE = "/api/v1/users?limit=100"
# The collector whose next result the first-page measurement waits for: it holds most columns.
PER_USER = "users"


class Daemon:
    """The daemon on 127.0.0.1, every collector re-run every `interval` seconds."""

    def __init__(self, url: str, workdir: Path, interval: float) -> None:
        self.port = free_port()
        config = exporter_config(url, "nextcloud", workdir / "history.db", self.port)
        # A run longer than its interval (its timeout) would fail: --interval must exceed the
        # slowest collector's run.
        config["collectors"] = {name: {"interval": f"{interval:g}s", "timeout": f"{interval:g}s",
                                       "jitter": "1s"} for name in available()}
        path = workdir / "daemon.json"  # JSON is YAML
        path.write_text(json.dumps(config))
        log = workdir / "daemon.log"
        self.process = start_daemon(path, log, as_of=NOW)
        try:
            wait_daemon_ready(f"http://127.0.0.1:{self.port}", self.process, log,
                              seconds=3600, error=RuntimeError)
        except BaseException:
            terminate(self.process, timeout=20)
            raise

    def get(self, path: str, sink: Callable[[bytes], None] | None = None) -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {API_KEY}"})
            response = conn.getresponse()
            if response.status != 200:
                raise RuntimeError(f"{path}: HTTP {response.status}")
            if sink is None:
                return response.read()
            while chunk := response.read(65536):
                sink(chunk)
            return b""
        finally:
            conn.close()

    def runs(self) -> dict[str, tuple[float, float]]:
        """Per collector: successful runs so far (runs minus failures) and the last success."""
        found: dict[str, dict[str, float]] = {}
        for line in self.get("/metrics").decode().splitlines():
            for metric in ("usage_collector_runs_total", "usage_collector_failures_total",
                           "usage_collector_last_success_timestamp_seconds"):
                if line.startswith(metric + "{"):
                    name = line.split('collector="', 1)[1].split('"', 1)[0]
                    found.setdefault(name, {})[metric] = float(line.rsplit(" ", 1)[1])
        return {name: (v.get("usage_collector_runs_total", 0)
                       - v.get("usage_collector_failures_total", 0),
                       v.get("usage_collector_last_success_timestamp_seconds", 0))
                for name, v in found.items()}

    def stop(self) -> None:
        terminate(self.process, timeout=20)


class Background(threading.Thread):
    """`step` every `every` seconds until stopped."""

    def __init__(self, step: Callable[[], None], every: float) -> None:
        super().__init__(daemon=True)
        self.step, self.every = step, every
        self.stopped = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        while not self.stopped.is_set():
            started = time.monotonic()
            try:
                self.step()
            except BaseException as error:  # reported by the run, not lost in a thread
                self.error = error
                return
            self.stopped.wait(max(0.0, self.every - (time.monotonic() - started)))

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        if self.error is not None:
            raise RuntimeError(f"background step failed: {self.error}") from self.error


def one_run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    daemon = Daemon(args.database, workdir, args.interval)
    try:
        pid = daemon.process.pid
        ready = memory_kib(pid)["VmRSS"]
        samples: list[int] = []
        sampler = Background(lambda: samples.append(memory_kib(pid)["VmRSS"]),
                             args.sample_every)
        client = Background(lambda: [daemon.get(path, sink=len) for path in LOAD_PATHS], 1.0)
        started = daemon.runs()
        sampler.start()
        client.start()
        began = time.monotonic()
        while True:
            done = daemon.runs()
            refreshes = min(done[name][0] - started[name][0] for name in started
                            if started[name][0] > 0)
            if refreshes >= args.refreshes:
                break
            if daemon.process.poll() is not None:
                raise RuntimeError("the daemon exited")
            time.sleep(1.0)
        steady = memory_kib(pid)
        client.stop()
        sampler.stop()
        refresh_seconds = time.monotonic() - began
        # The first page after the users collector's next result, nothing else asking.
        last = daemon.runs()[PER_USER][1]
        while daemon.runs()[PER_USER][1] == last:
            time.sleep(0.02)
        before = memory_kib(pid)["VmRSS"]
        timer = time.perf_counter()
        daemon.get(FIRST_PAGE)
        first_s = time.perf_counter() - timer
        after = memory_kib(pid)["VmRSS"]
        timer = time.perf_counter()
        daemon.get(FIRST_PAGE)
        warm_s = time.perf_counter() - timer
        return {"ready_mib": ready / 1024, "steady_mib": steady["VmRSS"] / 1024,
                "peak_mib": max(samples) / 1024, "hwm_mib": steady["VmHWM"] / 1024,
                "refreshes": args.refreshes, "refresh_phase_s": refresh_seconds,
                "first_page_ms": first_s * 1000, "first_page_growth_mib": (after - before) / 1024,
                "warm_page_ms": warm_s * 1000, "samples": len(samples)}
    finally:
        daemon.stop()


def summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {key: {"median": statistics.median(run[key] for run in runs),
                  "min": min(run[key] for run in runs), "max": max(run[key] for run in runs)}
            for key in runs[0] if isinstance(runs[0][key], float)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True,
                        help="the Nextcloud database URL (bench/generate.py makes one)")
    parser.add_argument("--refreshes", type=int, default=10,
                        help="runs of every collector after its first (default 10)")
    parser.add_argument("--runs", type=int, default=3, help="daemons started in turn (3)")
    parser.add_argument("--interval", type=float, default=30.0,
                        help="every collector's interval and timeout in seconds (default 30): "
                        "longer than the slowest collector's run")
    parser.add_argument("--sample-every", type=float, default=0.1, help="seconds (0.1)")
    parser.add_argument("--out", type=Path, help="JSON results (default: print only)")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "database": args.database,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "system": platform.platform()}, "runs": []}
    for n in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="usage-exporter-steady-") as workdir:
            load_before = os.getloadavg()[0]
            run = one_run(args, Path(workdir))
            run["load_average"] = [load_before, os.getloadavg()[0]]
            result["runs"].append(run)
            print(f"run {n + 1}: " + ", ".join(
                f"{key} {value:.1f}" for key, value in run.items() if isinstance(value, float)),
                flush=True)
    result["summary"] = summary(result["runs"])
    for key, value in result["summary"].items():
        print(f"{key}: median {value['median']:.1f} (min {value['min']:.1f}, "
              f"max {value['max']:.1f})")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
