"""Load: the real daemon under many concurrent scrapes and API calls, and with hundreds of idle
or slow-sending sockets held open.

    python -m bench.load --connections 200 --seconds 30 --held 500

Measures scrape latency on an otherwise idle daemon first (the floor), then while --held sockets
are open (half idle, half sending a request one byte at a time), then while --connections
keep-alive clients call a mix of /metrics and API routes for --seconds; reports each as
percentiles and ratios to the floor, with the requests served, every error, the daemon's
threads, descriptors and RSS, and each collector's runs against its schedule. Exits 1 on any
failed request. tests/test_load.py runs the same functions, bounded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.demo_daemon import collector_runs, demo_database, running_daemon, sample
from tests.load_client import hammer, held_sockets, scrape


def write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    cuts = (statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1
            else ordered * 99)
    return {"n": len(ordered), "p50_ms": round(cuts[49] * 1000, 2),
            "p95_ms": round(cuts[94] * 1000, 2), "max_ms": round(ordered[-1] * 1000, 2)}


def scrapes_meanwhile(base: str, stopped: threading.Event, out: list[float]) -> None:
    while not stopped.wait(0.2):
        out.append(scrape(base))


def measure(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    database = demo_database(directory, args.users)
    with running_daemon(directory, database, args.interval) as daemon:
        pid, base = daemon.process.pid, daemon.url
        floor = [scrape(base) for _ in range(args.scrapes)]
        idle_process = sample(pid)
        with held_sockets(base, args.held // 2, args.held - args.held // 2):
            time.sleep(2)  # let the daemon accept them all
            held_process = sample(pid)
            held = [scrape(base) for _ in range(args.scrapes)]
        runs_before = collector_runs(base)
        during: list[float] = []
        stopped = threading.Event()
        watcher = threading.Thread(target=scrapes_meanwhile, args=(base, stopped, during))
        watcher.start()
        began = time.monotonic()
        load = hammer(base, args.connections, args.seconds)
        elapsed = time.monotonic() - began
        stopped.set()
        watcher.join()
        loaded_process = sample(pid)
        runs_after = collector_runs(base)
    floor_p50 = percentiles(floor)["p50_ms"]

    def report(latencies: list[float]) -> dict[str, Any]:
        summary = percentiles(latencies)
        return {**summary, "p50_to_floor": round(summary["p50_ms"] / floor_p50, 2),
                "p95_to_floor": round(summary["p95_ms"] / floor_p50, 2)}

    return {
        "users": args.users, "interval_s": args.interval,
        "scrape_floor": percentiles(floor),
        "held_sockets": {"count": args.held, "scrape": report(held),
                         "daemon_before": vars(idle_process), "daemon_held": vars(held_process)},
        "load": {"connections": args.connections, "seconds": round(elapsed, 1),
                 "requests": load.requests, "requests_per_second": round(load.requests / elapsed),
                 "errors": len(load.errors), "first_errors": load.errors[:5],
                 "by_route": {path: percentiles(seconds)
                              for path, seconds in load.latencies.items()},
                 "scrape_on_a_new_connection": report(during),
                 "daemon_after": vars(loaded_process),
                 "collector_runs": {name: {
                     "runs": int(runs_after[name][0] - runs_before[name][0]),
                     "share_of_schedule": round((runs_after[name][0] - runs_before[name][0])
                                                / (elapsed / (args.interval * 1.1)), 2)}
                     for name in runs_after}},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--held", type=int, default=500, help="idle + slow sockets held open")
    parser.add_argument("--scrapes", type=int, default=50,
                        help="scrapes per latency measurement (default 50)")
    parser.add_argument("--users", type=int, default=500, help="demo accounts (default 500)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="every collector's refresh interval in seconds (default 1)")
    parser.add_argument("--out", type=Path, help="directory for summary.json and the daemon's "
                        "log (default: a new temporary directory)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="usage-exporter-load-"))
    summary = measure(args, out)
    write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=2))
    return 1 if summary["load"]["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
