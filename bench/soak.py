"""Soak: the real daemon refreshing every collector each second for an hour (by default) while it
is scraped every second and its API called every few seconds; its memory must stay flat.

    python -m bench.soak --duration 3600 --out /tmp/soak

Samples the daemon's RSS, threads and open file descriptors every --sample-every seconds into
curve.csv, and writes summary.json: RSS once warmed up (the floor every ratio is measured
against), the maximum and the end, the least-squares slope after warm-up, and each collector's
runs against the runs its interval allows. Exits 1 if the end RSS exceeds the floor by more than
--max-growth, or if any request failed.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.load import write_json
from tests.demo_daemon import collector_runs, demo_database, get, running_daemon, sample
from tests.servers import StartedDaemon

API_CALLS = ("/api/v1/snapshot?users=true", "/api/v1/users?limit=100&order_by=used_bytes&dir=b",
             "/api/v1/users.csv", "/api/v1/system.csv", "/api/v1/stats", "/api/v1/history/dau")


class Traffic:
    """A scrape every second and one API call every `api_every` seconds, counting failures."""

    def __init__(self, base: str, api_every: float) -> None:
        self.base, self.api_every = base, api_every
        self.requests = self.failures = 0
        self.first_failure: str | None = None
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _call(self, path: str) -> None:
        self.requests += 1
        try:
            get(self.base + path)
        except OSError as error:
            self.failures += 1
            self.first_failure = self.first_failure or f"{path}: {error}"

    def _loop(self) -> None:
        tick = 0
        while not self.stopped.wait(1.0):
            self._call("/metrics")
            if tick % max(1, round(self.api_every)) == 0:
                self._call(API_CALLS[(tick // max(1, round(self.api_every))) % len(API_CALLS)])
            tick += 1

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join()


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return 3600 * sum((t - mean_t) * (v - mean_v) for t, v in points) / spread if spread else 0.0


def soak(daemon: StartedDaemon, args: argparse.Namespace, curve_path: Path) -> dict[str, Any]:
    pid = daemon.process.pid
    runs_before = collector_runs(daemon.url)
    started = time.monotonic()
    rows: list[dict[str, float]] = []
    with Traffic(daemon.url, args.api_every) as traffic, curve_path.open("w", newline="") as out:
        writer = csv.DictWriter(out, ["elapsed_s", "rss_kib", "threads", "open_fds"])
        writer.writeheader()
        while (elapsed := time.monotonic() - started) < args.duration:
            if daemon.process.poll() is not None:
                raise RuntimeError(f"the daemon died: {daemon.log_path.read_text()[-2000:]}")
            now = sample(pid)
            row = {"elapsed_s": round(elapsed, 1), "rss_kib": now.rss_kib,
                   "threads": now.threads, "open_fds": now.open_fds}
            writer.writerow(row)
            out.flush()
            rows.append(row)
            time.sleep(min(args.sample_every, max(0.0, args.duration - elapsed)))
    elapsed = time.monotonic() - started
    runs_after = collector_runs(daemon.url)

    warm = [r for r in rows if r["elapsed_s"] >= args.warmup] or rows[-1:]
    floor = warm[0]["rss_kib"]
    rss = [r["rss_kib"] for r in warm]
    # Runs the schedule allows: one per interval plus jitter, never two at once.
    allowed = elapsed / (args.interval * 1.1)
    return {
        "duration_s": round(elapsed), "interval_s": args.interval, "users": args.users,
        "samples": len(rows), "warmup_s": args.warmup,
        "rss_kib": {"first_sample": rows[0]["rss_kib"], "after_warmup": floor, "max": max(rss),
                    "end": rss[-1]},
        "rss_ratio": {"max_to_warm": round(max(rss) / floor, 3),
                      "end_to_warm": round(rss[-1] / floor, 3)},
        "rss_slope_kib_per_hour": round(slope_per_hour(
            [(r["elapsed_s"], r["rss_kib"]) for r in warm])),
        # Growth that settles (allocator arenas, caches) leaves the second half flat; a leak not.
        "rss_slope_second_half_kib_per_hour": round(slope_per_hour(
            [(r["elapsed_s"], r["rss_kib"]) for r in warm[len(warm) // 2:]])),
        "threads": {"min": min(r["threads"] for r in rows),
                    "max": max(r["threads"] for r in rows)},
        "open_fds": {"min": min(r["open_fds"] for r in rows),
                     "max": max(r["open_fds"] for r in rows)},
        "collector_runs": {name: {
            "runs": int(runs_after[name][0] - runs_before[name][0]),
            "share_of_schedule": round((runs_after[name][0] - runs_before[name][0]) / allowed, 3),
            "last_success_age_s": round(time.time() - runs_after[name][1], 1)}
            for name in runs_after},
        "requests": traffic.requests, "request_failures": traffic.failures,
        "first_failure": traffic.first_failure,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3600, help="seconds (default 3600)")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="every collector's refresh interval in seconds (default 1)")
    parser.add_argument("--users", type=int, default=500, help="demo accounts (default 500)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("--api-every", type=float, default=5.0,
                        help="seconds between API calls (default 5)")
    parser.add_argument("--warmup", type=float, default=120.0,
                        help="seconds before the RSS floor is taken (default 120)")
    parser.add_argument("--max-growth", type=float, default=0.10,
                        help="allowed end RSS growth over the floor (default 0.10 = 10%%)")
    parser.add_argument("--out", type=Path, help="directory for curve.csv, summary.json and the "
                        "daemon's log (default: a new temporary directory)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="usage-exporter-soak-"))
    with running_daemon(out, demo_database(out, args.users), args.interval) as daemon:
        summary = soak(daemon, args, out / "curve.csv")
    write_json(out / "summary.json", summary)
    print(f"{out}/summary.json")
    print(*(f"{key}: {value}" for key, value in summary.items()), sep="\n")
    grew = summary["rss_ratio"]["end_to_warm"] > 1 + args.max_growth
    return 1 if grew or summary["request_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
