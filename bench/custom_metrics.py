"""Custom SQL metrics on /metrics (issue 14): 1,000 series from 50 custom queries against the same
number of built-in series, each served by `usage-exporter run` under the same load.

    python -m bench.custom_metrics [--queries 50 --series 20 --rounds 3]

Both read one demo Nextcloud database (exporter.demo_data). The custom side runs --queries
queries of --series rows each (one labelled gauge per query) and no collector; the built-in side
runs the default collectors with per-user gauges for as many top users as it takes to serve
about as many samples as the custom side does (its usage_collector_* series included). Rounds
are interleaved; the result is each side's median p50 and p99 with their range, and the ratio
of the p50s in each round.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.compare_query_exporter import sample_count
from bench.sidebyside import (
    TEXT_FORMAT,
    WORK,
    Load,
    Measurement,
    exporter_config,
    get,
    measure,
    print_table,
    usage_exporter,
    write_results,
)
from exporter.demo_data import build_demo_database

BUILT_IN = ("users", "sessions", "shares", "storage", "dau")
PER_USER_GAUGES = 5  # exporter.exposition.PER_USER_GAUGES: series per top user


def custom_queries(queries: int, series: int) -> list[dict[str, Any]]:
    """Query i: one gauge over `series` accounts (a different slice of them for each query)."""
    return [{"name": f"accounts_{i}", "interval": "1h", "timeout": "10m",
             "sql": f"SELECT uid AS account, LENGTH(uid) + {i} AS custom_account_{i} "
                    f"FROM oc_users ORDER BY uid LIMIT {series} OFFSET {(i * series) % 200}",
             "metrics": [{"name": f"custom_account_{i}", "help": f"Slice {i} of the accounts.",
                          "labels": ["account"]}]}
            for i in range(queries)]


def body_of(config: dict[str, Any], directory: Path) -> bytes:
    directory.mkdir(parents=True, exist_ok=True)
    with usage_exporter(config, directory) as server:
        return get(f"{server.url}/metrics", TEXT_FORMAT)


def sized_built_in(url: str, directory: Path, samples: int) -> tuple[int, dict[str, Any]]:
    """The built-in side with as many top users' gauges as it takes to serve about `samples`
    samples (a user without a quota has no quota gauge, so it takes a few tries)."""
    def served(top: int) -> tuple[int, dict[str, Any]]:
        config = exporter_config(url, "nextcloud", directory / "built-in", BUILT_IN,
                                 per_user_metrics={"enabled": top > 0, "limit": max(top, 1)})
        return sample_count(body_of(config, directory / f"built-in-{top}")), config

    base, _ = served(0)
    top = max(1, round((samples - base) / PER_USER_GAUGES))
    for _ in range(3):
        count, config = served(top)
        if abs(count - samples) < PER_USER_GAUGES:
            break
        top = max(1, round((samples - base) / ((count - base) / top)))
    return top, config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--series", type=int, default=20, help="rows (series) per query")
    parser.add_argument("--users", type=int, default=400, help="accounts in the database")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=3000, help="per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load = Load(args.clients, args.requests)
    WORK.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="custom-metrics-", dir=WORK))
    database = directory / "nextcloud.db"
    build_demo_database(database, now=1.7e9, users=args.users)
    url = f"sqlite:///{database}"
    custom = exporter_config(url, "nextcloud", directory / "custom", (),
                             custom_metrics=custom_queries(args.queries, args.series))
    custom_samples = sample_count(body_of(custom, directory / "custom"))
    top, built_in = sized_built_in(url, directory, custom_samples)
    runs: dict[str, list[Measurement]] = {"custom": [], "built-in": []}
    with ExitStack() as stack:
        (directory / "built-in").mkdir(exist_ok=True)
        servers = {"custom": stack.enter_context(usage_exporter(custom, directory / "custom")),
                   "built-in": stack.enter_context(usage_exporter(built_in,
                                                                  directory / "built-in"))}
        samples = {side: sample_count(get(f"{s.url}/metrics", TEXT_FORMAT))
                   for side, s in servers.items()}
        for _ in range(args.rounds):  # interleaved: a noisy neighbour hits both alike
            for side, server in servers.items():
                runs[side].append(measure(server.port, "/metrics", load, TEXT_FORMAT))
    ratios = [c.p50_ms / b.p50_ms for c, b in zip(runs["custom"], runs["built-in"],
                                                   strict=True)]
    report(args, samples, top, runs, ratios)
    return 0 if statistics.median(ratios) <= 1.2 else 1


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def report(args: argparse.Namespace, samples: dict[str, int], top: int,
           runs: dict[str, list[Measurement]], ratios: list[float]) -> None:
    print(f"\n/metrics: {args.clients} clients, {args.requests} requests per side and round, "
          f"{args.rounds} interleaved rounds; median (range)")
    print_table(("side", "samples", "bytes", "p50 ms", "p99 ms", "req/s"), [
        (side, samples[side], ms[0].body_bytes, spread([m.p50_ms for m in ms]),
         spread([m.p99_ms for m in ms]), spread([m.per_second for m in ms]))
        for side, ms in runs.items()])
    print(f"\ncustom p50 / built-in p50: {spread(ratios)} (the goal: at most 1.2)")
    path = write_results("custom-metrics", {
        "queries": args.queries, "series_per_query": args.series, "users": args.users,
        "top_users_built_in": top, "samples": samples, "load": asdict(Load(args.clients,
                                                                          args.requests)),
        "rounds": args.rounds, "runs": {side: [asdict(m) for m in ms]
                                        for side, ms in runs.items()},
        "p50_ratio_per_round": [round(r, 3) for r in ratios]})
    print(f"written to {path}")


if __name__ == "__main__":
    sys.exit(main())
