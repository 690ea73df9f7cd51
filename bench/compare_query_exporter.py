"""Side by side with query-exporter (issue 6, item 5; issue 17, item 5): /metrics latency and
throughput of usage-exporter and of query-exporter configured with the same aggregates on the same
Nextcloud database, under the same load, next to the floor: our bytes sent by bench/http_floor.py
(a minimal asyncio server, no code of either exporter).

    python -m bench.compare_query_exporter [--backends sqlite,postgresql] [--users 400 --top 200]
        [--query-exporter-python /path/to/python3.12]

query-exporter's newest release needs Python 3.12 or later: `--query-exporter-python` (or
$QUERY_EXPORTER_PYTHON) names the interpreter its virtualenv is built from, and the release
installed is the newest that interpreter runs (tests.servers.query_exporter_release);
bench/README.md says where such an interpreter comes from.

Two sizes of output:
- default: the real Nextcloud fixture, our default metrics (about 90 samples);
- per-user: a demo Nextcloud database of --users accounts with our opt-in per-user gauges for the
  top --top users (5 gauges each: about 1,000 series), and the same per-user queries for
  query-exporter.

query-exporter runs in two modes: `interval` (queries on a schedule, /metrics renders its
registry) and `at scrape` (no interval: its default, every scrape runs every query). Its SQL is
built from our own relations (exporter.platforms) compiled for the database, so both read the same
rows; before any load, the values both serve are compared sample by sample. query-exporter is
installed into its own virtualenv under /tmp by this script.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    String,
    Subquery,
    case,
    cast,
    distinct,
    func,
    literal,
    select,
    true,
    union_all,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import CompoundSelect

from bench.sidebyside import (
    HOST,
    ROOT,
    TEXT_FORMAT,
    WORK,
    Load,
    Measurement,
    Spread,
    exporter_config,
    get,
    measure,
    median,
    print_table,
    spread,
    static_floor,
    usage_exporter,
    write_results,
)
from collectors.base import BYTE_BOUNDS
from collectors.sessions import CLIENT_CLASSES, CLIENTS
from collectors.shares import SHARE_TYPES
from collectors.storage import QUOTA_RATIO_BOUNDS
from collectors.users import DEFAULT_WINDOWS
from exporter.config import duration_label, parse_config
from exporter.demo_data import build_demo_database
from exporter.exposition import PER_USER_GAUGES
from exporter.log import configure
from exporter.runner import Runner
from tests.servers import (
    QUERY_EXPORTER_NEWEST,
    QUERY_EXPORTER_PYTHON,
    query_exporter_bin,
    query_exporter_process,
    query_exporter_python,
    query_exporter_version,
)

FIXTURE = Path(__file__).resolve().parent.parent / "tests/fixtures/nextcloud"
# Our collectors' own status metrics and query-exporter's have no counterpart in the other.
OWN_METRICS = ("usage_collector_", "usage_database_up", "usage_exporter_build_info",
               "usage_platform_info")
TARGETS = ("floor", "usage-exporter", "query-exporter interval", "query-exporter at scrape")
REFRESH_SIDES = ("usage-exporter", "query-exporter scrape", "query-exporter queries")


# --- query-exporter's queries, from our relations --------------------------------------------


@dataclass(frozen=True)
class QeQuery:
    name: str
    metrics: Mapping[str, tuple[str, ...]]  # metric name -> its labels
    statement: Select[Any] | CompoundSelect

    def sql(self, dialect: Dialect) -> str:
        return str(self.statement.compile(dialect=dialect,
                                          compile_kwargs={"literal_binds": True}))


def keys(label: str, values: Sequence[str], name: str) -> Subquery:
    """A one-column table of `values` (UNION ALL: SQLite's VALUES cannot name its column)."""
    return union_all(*(select(literal(v, String).label(label)) for v in values)).subquery(name)


def zero_filled(metric: str, label: str, every: Sequence[str], key: ColumnElement[Any],
                value: ColumnElement[Any]) -> Select[Any]:
    """value GROUP BY key, with 0 for each of `every` the data lacks, as our collectors report."""
    counts = select(key.label("key"), value.label("value")).group_by(key).subquery("counts")
    wanted = keys(label, every, f"{label}_keys")
    return (select(wanted.c[label], func.coalesce(counts.c.value, 0).label(metric))
            .select_from(wanted.outerjoin(counts, counts.c.key == wanted.c[label])))


def buckets(metric: str, value: ColumnElement[Any], bounds: Sequence[float],
            source: Any, *where: ColumnElement[bool]) -> Select[Any]:
    """A gauge histogram's cumulative buckets, one row per `le`, in one pass over `source`."""
    les = union_all(*(select(literal(repr(b), String).label("le"),
                             literal(b, Float).label("bound")) for b in bounds),
                    select(literal("+Inf", String).label("le"),
                           literal(None, Float).label("bound"))).subquery("bounds")
    within = case((les.c.bound.is_(None), 1), (value <= les.c.bound, 1), else_=0)
    return (select(les.c.le, func.sum(within).label(f"{metric}_bucket"))
            .select_from(source.join(les, true())).where(*where).group_by(les.c.le))


def default_queries(rel: Mapping[str, Subquery], now: float, inclusive: bool) -> list[QeQuery]:
    users, activity, sessions = rel["users"], rel["activity"], rel["sessions"]
    shares, received = rel["shares"], rel["incoming_federated_shares"]
    home, roots, quotas, storages = (rel["home_storage"], rel["storage_roots"], rel["quotas"],
                                     rel["storages"])

    def active(window: float) -> Select[Any]:
        since = now - window
        recent = activity.c.last_active >= since if inclusive else activity.c.last_active > since
        return select(literal(duration_label(window), String).label("window"),
                      func.count(distinct(activity.c.user_id)).label("usage_users_active")
                      ).where(recent)

    agent = func.lower(func.coalesce(sessions.c.client, ""))
    client = case(*((agent.like(pattern), name) for name, patterns in CLIENT_CLASSES
                    for pattern in patterns), else_="other")
    used = func.coalesce(home.c.used_bytes, 0)
    ratio = cast(used, Float) / quotas.c.quota_bytes
    with_quota = quotas.outerjoin(home, home.c.user_id == quotas.c.user_id)
    return [
        QeQuery("users_by_status", {"usage_users": ("status",)},
                select(users.c.status, func.count().label("usage_users"))
                .group_by(users.c.status)),
        QeQuery("users_seen", {"usage_users_seen": ()},
                select(func.count(users.c.last_login).label("usage_users_seen"))),
        QeQuery("users_active", {"usage_users_active": ("window",)},
                union_all(*(active(w) for w in DEFAULT_WINDOWS))),
        QeQuery("users_concurrent", {"usage_users_concurrent": ()},
                select(func.count(distinct(sessions.c.user_id))
                       .label("usage_users_concurrent"))),
        QeQuery("sessions", {"usage_sessions": ("client",)},
                zero_filled("usage_sessions", "client", CLIENTS, client, func.count())),
        QeQuery("shares", {"usage_shares": ("type",)},
                zero_filled("usage_shares", "type", SHARE_TYPES, shares.c.type, func.count())),
        QeQuery("links_without_password", {"usage_link_shares_without_password": ()},
                select(func.coalesce(func.sum(1 - shares.c.password_protected), 0)
                       .label("usage_link_shares_without_password"))
                .where(shares.c.type == "link")),
        QeQuery("federated_received", {"usage_federated_shares_received": ()},
                select(func.count().label("usage_federated_shares_received"))
                .select_from(received)),
        QeQuery("files", {"usage_files": ()},
                select(func.coalesce(func.sum(home.c.files), 0).label("usage_files"))),
        QeQuery("storage_used", {"usage_storage_used_bytes": ()},
                select(func.coalesce(func.sum(roots.c.used_bytes), 0)
                       .label("usage_storage_used_bytes")).where(roots.c.used_bytes > 0)),
        QeQuery("user_storage_buckets", {"usage_user_storage_used_bytes_bucket": ("le",)},
                buckets("usage_user_storage_used_bytes", home.c.used_bytes, BYTE_BOUNDS, home)),
        QeQuery("user_storage_totals", {"usage_user_storage_used_bytes_gcount": (),
                                        "usage_user_storage_used_bytes_gsum": (),
                                        "usage_storage_files_bytes": ()},
                select(func.count().label("usage_user_storage_used_bytes_gcount"),
                       func.coalesce(func.sum(home.c.used_bytes), 0)
                       .label("usage_user_storage_used_bytes_gsum"),
                       func.coalesce(func.sum(home.c.used_bytes), 0)
                       .label("usage_storage_files_bytes"))),
        QeQuery("storages", {"usage_storages": ("kind",)},
                zero_filled("usage_storages", "kind", ("home", "local", "other"),
                            storages.c.kind, func.count())),
        QeQuery("file_cache_entries", {"usage_file_cache_entries": ()},
                select(func.coalesce(func.sum(storages.c.entries), 0)
                       .label("usage_file_cache_entries"))),
        QeQuery("quota_buckets", {"usage_user_quota_utilization_ratio_bucket": ("le",)},
                buckets("usage_user_quota_utilization_ratio", ratio, QUOTA_RATIO_BOUNDS,
                        with_quota, quotas.c.quota_bytes > 0)),
        QeQuery("quota_totals", {"usage_user_quota_utilization_ratio_gcount": (),
                                 "usage_user_quota_utilization_ratio_gsum": (),
                                 "usage_users_over_quota": ()},
                select(func.count().label("usage_user_quota_utilization_ratio_gcount"),
                       func.coalesce(func.sum(ratio), 0)
                       .label("usage_user_quota_utilization_ratio_gsum"),
                       func.coalesce(func.sum(case((used > quotas.c.quota_bytes, 1), else_=0)),
                                     0).label("usage_users_over_quota"))
                .select_from(with_quota).where(quotas.c.quota_bytes > 0)),
    ]


def per_user_queries(rel: Mapping[str, Subquery], top: int) -> list[QeQuery]:
    """Our per-user gauges: the top users by home storage, each gauge where it has a value."""
    home, quotas, sessions, users = (rel["home_storage"], rel["quotas"], rel["sessions"],
                                     rel["users"])
    leaders = (select(home.c.user_id).order_by(func.coalesce(home.c.used_bytes, 0).desc())
               .limit(top).subquery("top"))
    per_user_sessions = (select(sessions.c.user_id, func.count().label("sessions"))
                         .group_by(sessions.c.user_id).subquery("user_sessions"))
    sources = {"used_bytes": (home, home.c.used_bytes), "quota_bytes": (quotas,
                                                                        quotas.c.quota_bytes),
               "files": (home, home.c.files),
               "sessions": (per_user_sessions, per_user_sessions.c.sessions),
               "last_login": (users, users.c.last_login)}
    queries = []
    for metric, column, _ in PER_USER_GAUGES:
        source, value = sources[column]
        queries.append(QeQuery(metric, {metric: ("user",)},
                               select(leaders.c.user_id.label("user"), value.label(metric))
                               .select_from(leaders.join(source,
                                                         source.c.user_id == leaders.c.user_id))
                               .where(value.is_not(None))))
    return queries


def query_exporter_config(queries: Sequence[QeQuery], dsn: str, dialect: Dialect,
                          interval: int | None) -> dict[str, Any]:
    metrics = {name: {"type": "gauge", "description": f"{name} (same SQL as usage-exporter)",
                      **({"labels": list(labels)} if labels else {})}
               for query in queries for name, labels in query.metrics.items()}
    return {
        # Its own per-query latency histogram at its smallest (one bucket), so that its output
        # is as close to ours in size as it can be.
        "builtin-metrics": {"query_latency": {"buckets": [1.0]}},
        "databases": {"nextcloud": {"dsn": dsn}},
        "metrics": metrics,
        "queries": {query.name: {"databases": ["nextcloud"], "metrics": list(query.metrics),
                                 "sql": query.sql(dialect),
                                 **({"interval": interval} if interval else {})}
                    for query in queries},
    }


# --- the two exporters -----------------------------------------------------------------------


def our_config(url: str, directory: Path, top: int) -> dict[str, Any]:
    return exporter_config(url, "nextcloud", directory,
                           ("users", "sessions", "shares", "storage", "dau"),
                           per_user_metrics={"enabled": top > 0, "limit": max(top, 1)})


def built_queries(url: str, directory: Path, now: float, top: int) -> tuple[list[QeQuery],
                                                                          Dialect]:
    runner = our_runner(url, directory, now, top)
    try:
        with runner.database.connect(60) as conn:
            rel = {name: runner.profile.relation(name, conn).subquery(name)
                   for name in ("users", "activity", "sessions", "shares",
                                "incoming_federated_shares", "home_storage", "storage_roots",
                                "quotas", "storages")}
            queries = default_queries(rel, now, runner.profile.activity_window_inclusive)
            if top:
                queries += per_user_queries(rel, top)
            return queries, conn.dialect
    finally:
        runner.close()


@contextmanager
def query_exporter(queries: Sequence[QeQuery], dsn: str, dialect: Dialect,
                   directory: Path, interval: int | None, bin_dir: Path) -> Iterator[int]:
    mode = f"interval{interval}" if interval else "at-scrape"
    config = directory / f"query-exporter-{mode}.yaml"
    config.write_text(yaml.safe_dump(query_exporter_config(queries, dsn, dialect, interval),
                                     sort_keys=False, width=1000))
    with query_exporter_process(config, directory / f"query-exporter-{mode}.log",
                                bin_dir=bin_dir) as server:
        yield server.port


# --- equality --------------------------------------------------------------------------------


def samples(body: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Our metrics' samples by name and labels (query-exporter's `database` label left out)."""
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name.startswith("usage_") and not sample.name.startswith(OWN_METRICS):
                labels = frozenset((k, v) for k, v in sample.labels.items() if k != "database")
                found[sample.name, labels] = sample.value
    return found


def sample_count(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def differences(ours: bytes, theirs: bytes) -> list[str]:
    mine, other = samples(ours), samples(theirs)
    found = []
    for key in sorted(mine.keys() | other.keys(), key=str):
        a, b = mine.get(key), other.get(key)
        if a is None or b is None or abs(a - b) > 1e-9 * max(abs(a), abs(b), 1):
            name, labels = key
            found.append(f"{name}{dict(labels)}: usage-exporter {a}, query-exporter {b}")
    return found


def wait_for_values(port: int, expected: int, timeout: float = 120.0) -> bytes:
    """/metrics of query-exporter once its scheduled queries have all reported."""
    deadline = time.monotonic() + timeout
    while True:
        body = get(f"http://{HOST}:{port}/metrics", TEXT_FORMAT)
        if len(samples(body)) >= expected or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


# --- one case --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    backend: str
    url: str  # ours
    dsn: str  # query-exporter's


def run_case(name: str, database: Database, directory: Path, now: float, top: int,
             load: Load, rounds: int, bin_dir: Path) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    queries, dialect = built_queries(database.url, directory, now, top)
    with ExitStack() as stack:
        ours = stack.enter_context(usage_exporter(our_config(database.url, directory, top),
                                                  directory, now)).port
        body = get(f"http://{HOST}:{ours}/metrics", TEXT_FORMAT)
        floor = stack.enter_context(static_floor(body, "text/plain; version=0.0.4; "
                                                 "charset=utf-8", directory,
                                                 ROOT / "bench" / "http_floor.py"))
        scheduled = stack.enter_context(query_exporter(queries, database.dsn, dialect,
                                                       directory, 3600, bin_dir))
        at_scrape = stack.enter_context(query_exporter(queries, database.dsn, dialect,
                                                       directory, None, bin_dir))
        expected = len(samples(body))
        bodies = {"usage-exporter": body,
                  "query-exporter interval": wait_for_values(scheduled, expected),
                  "query-exporter at scrape": get(f"http://{HOST}:{at_scrape}/metrics",
                                                  TEXT_FORMAT)}
        mismatches = {label: differences(body, other) for label, other in bodies.items()
                      if label != "usage-exporter"}
        for label, found in mismatches.items():
            if found:
                print(f"{name}/{database.backend}: {label} differs from usage-exporter in "
                      f"{len(found)} sample(s):", *found[:10], sep="\n  ")
        ports = dict(zip(TARGETS, (floor.port, ours, scheduled, at_scrape), strict=True))
        runs: dict[str, list[Measurement]] = {target: [] for target in TARGETS}
        refreshes: dict[str, list[float]] = {side: [] for side in REFRESH_SIDES}
        runner = stack.enter_context(closing(our_runner(database.url, directory / "refresh",
                                                                now, top)))
        runner.run_all()  # its connections opened, as the daemon's are by its first refresh
        for _ in range(rounds):  # interleaved, so a noisy neighbour hits every target alike
            for target, port in ports.items():
                runs[target].append(measure(port, "/metrics", load, TEXT_FORMAT))
            for side, seconds in refresh_costs(runner, at_scrape).items():
                refreshes[side].append(seconds)
    result = {target: median(measurements) for target, measurements in runs.items()}
    per_round = [ratios({target: ms[i] for target, ms in runs.items()}) for i in range(rounds)]
    return {
        "case": name, "backend": database.backend, "top_users": top,
        "samples": {"usage-exporter": sample_count(body),
                    **{label: sample_count(b) for label, b in bodies.items()
                       if label != "usage-exporter"}},
        "compared_samples": expected,
        "mismatches": mismatches,
        "queries": len(queries),
        "runs": {target: [asdict(m) for m in ms] for target, ms in runs.items()},
        "median": {target: asdict(m) for target, m in result.items()},
        # Each round's ratio (its targets measured one after the other), then their spread.
        "ratios": {key: asdict(spread(r[key] for r in per_round)) for key in per_round[0]},
        "refresh_seconds": refreshes,
        "refresh_ratio": asdict(spread(qe / ours for qe, ours in zip(
            refreshes["query-exporter queries"], refreshes["usage-exporter"], strict=True))),
    }


def our_runner(url: str, directory: Path, now: float, top: int) -> Runner:
    """Our collectors as the daemon runs them at `now` (the history write included), in this
    process."""
    from collectors import available

    directory.mkdir(parents=True, exist_ok=True)
    config = parse_config(our_config(url, directory, top),
                          collector_options={n: c.options for n, c in available().items()})
    return Runner(config, lambda: now)


def refresh_costs(runner: Runner, at_scrape: int) -> dict[str, float]:
    """Seconds of one refresh, with no load running: ours, every collector run in turn; query-
    exporter's, one scrape of its at-scrape instance (every query run, then rendered) and the
    sum of its own query_latency over that scrape's queries."""
    started = time.perf_counter()
    snapshot = runner.run_all()
    ours = time.perf_counter() - started
    failed = [name for name in runner.applicable() if snapshot.collectors[name].state != "ok"]
    if failed:
        raise SystemExit(f"usage-exporter's refresh failed in {', '.join(failed)}")
    before = query_latency(get(f"http://{HOST}:{at_scrape}/metrics", TEXT_FORMAT))
    started = time.perf_counter()
    after = query_latency(get(f"http://{HOST}:{at_scrape}/metrics", TEXT_FORMAT))
    scrape = time.perf_counter() - started
    ran = {query: after[query][1] - before[query][1] for query in after}
    if set(ran.values()) != {1}:
        raise SystemExit(f"query-exporter's scrape did not run each query once: {ran}")
    return {"usage-exporter": ours, "query-exporter scrape": scrape,
            "query-exporter queries": sum(after[q][0] - before[q][0] for q in after)}


def query_latency(body: bytes) -> dict[str, tuple[float, float]]:
    """query-exporter's own query_latency histogram: (seconds, runs) so far per query."""
    found: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        if family.name == "query_latency":
            for sample in family.samples:
                field = {"query_latency_sum": 0, "query_latency_count": 1}.get(sample.name)
                if field is not None:
                    found.setdefault(sample.labels["query"], [0.0, 0.0])[field] = sample.value
    return {query: (seconds, runs) for query, (seconds, runs) in found.items()}


def ratios(result: Mapping[str, Measurement]) -> dict[str, float]:
    ours, floor = result["usage-exporter"], result["floor"]
    found = {"ours_p99_over_floor_p99": ours.p99_ms / floor.p99_ms}
    for mode in ("interval", "at scrape"):
        theirs = result[f"query-exporter {mode}"]
        key = mode.replace(" ", "_")
        found[f"qe_{key}_p50_over_ours"] = theirs.p50_ms / ours.p50_ms
        found[f"qe_{key}_p99_over_ours"] = theirs.p99_ms / ours.p99_ms
        found[f"ours_rps_over_qe_{key}"] = ours.per_second / theirs.per_second
    return found


# --- databases -------------------------------------------------------------------------------


@contextmanager
def databases(backends: Sequence[str], sqlite_files: Mapping[str, Path]
              ) -> Iterator[dict[tuple[str, str], Database]]:
    """Each case's database on each backend; PostgreSQL is a throwaway server stopped by PID."""
    found = {(case, "sqlite"): Database("sqlite", f"sqlite:///{path}", f"sqlite:///{path}")
             for case, path in sqlite_files.items() if "sqlite" in backends}
    if "postgresql" not in backends:
        yield found
        return
    from tests.copy_db import copy_tables
    from tests.servers import start_postgres

    server = start_postgres()
    try:
        for case, path in sqlite_files.items():
            name = f"bench_{case.replace('-', '_')}"
            copy_tables(f"sqlite:///{path}", server.create_database(name))
            readonly = server.readonly_url(name)
            found[case, "postgresql"] = Database("postgresql", readonly, readonly)
        yield found
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql",
                        help="comma-separated: sqlite, postgresql (default both)")
    parser.add_argument("--users", type=int, default=400,
                        help="accounts in the per-user case's demo database (default 400)")
    parser.add_argument("--top", type=int, default=200,
                        help="per-user gauges for this many top users (default 200)")
    parser.add_argument("--per-user-database", type=Path,
                        help="a Nextcloud SQLite database for the per-user case instead of a "
                             "demo one (e.g. from bench.generate)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000, help="per target and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=60.0,
                        help="per target and round: the load stops then at the latest")
    parser.add_argument("--query-exporter-python", default=query_exporter_python(),
                        help=f"the Python query-exporter's virtualenv is built from (default "
                             f"${QUERY_EXPORTER_PYTHON}, else this one); "
                             f"{QUERY_EXPORTER_NEWEST}, the newest release, needs 3.12 or later")
    args = parser.parse_args()
    configure("warning")  # the in-process refreshes log as the daemon's config says
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    load = Load(args.clients, args.requests, max_seconds=args.max_seconds)
    bin_dir = query_exporter_bin(args.query_exporter_python)  # before any measurement
    version = query_exporter_version(bin_dir)
    print(version, flush=True)
    now = float(json.loads((FIXTURE / "capture_time.json").read_text())["captured_at_before"])
    directory = Path(tempfile.mkdtemp(prefix="compare-query-exporter-", dir=WORK))
    try:
        fixture = directory / "nextcloud-fixture.db"
        shutil.copyfile(FIXTURE / "nextcloud.db", fixture)
        per_user = directory / "nextcloud-per-user.db"
        if args.per_user_database:
            shutil.copyfile(args.per_user_database, per_user)
        else:
            build_demo_database(per_user, now=now, users=args.users)
        cases = {"default": (fixture, 0), "per-user": (per_user, args.top)}
        results = []
        with databases(backends, {case: path for case, (path, _) in cases.items()}) as found:
            for (case, backend), database in found.items():
                print(f"== {case} on {backend}", flush=True)
                results.append(run_case(case, database, directory / f"{case}-{backend}", now,
                                        cases[case][1], load, args.rounds, bin_dir))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    report(results, load, args, version)
    return 1 if any(any(r["mismatches"].values()) for r in results) else 0


def report(results: Sequence[Mapping[str, Any]], load: Load, args: argparse.Namespace,
           version: str) -> None:
    rows = []
    for result in results:
        for target in TARGETS:
            runs = result["runs"][target]
            samples_served = result["samples"].get(target, result["samples"]["usage-exporter"])
            rows.append((f"{result['case']}/{result['backend']}", target, samples_served,
                         result["median"][target]["body_bytes"],
                         *(spread(m[field] for m in runs)
                           for field in ("p50_ms", "p99_ms", "per_second")),
                         sum(m["errors"] for m in runs)))
    print(f"\n{version}; /metrics under load: {load.clients} clients, {load.requests} requests "
          f"per target and round, median (min-max) of {args.rounds} interleaved rounds")
    print_table(("case", "target", "samples", "bytes", "p50 ms", "p99 ms", "req/s", "errors"),
                rows)
    print()
    print_table(("case", "QE interval p50/ours", "QE interval p99/ours",
                 "QE at-scrape p50/ours", "QE at-scrape p99/ours", "ours p99/floor p99",
                 "values equal"),
                [(f"{r['case']}/{r['backend']}",
                  *(Spread(**r["ratios"][key]) for key in (
                      "qe_interval_p50_over_ours", "qe_interval_p99_over_ours",
                      "qe_at_scrape_p50_over_ours", "qe_at_scrape_p99_over_ours",
                      "ours_p99_over_floor_p99")),
                  "yes" if not any(r["mismatches"].values()) else "NO")
                 for r in results])
    print("\none refresh without load, ms, median (min-max) of the rounds: ours every collector "
          "in turn; query-exporter one at-scrape scrape and its queries' own query_latency sum")
    print_table(("case", *(f"{side} ms" for side in REFRESH_SIDES), "QE queries/ours"),
                [(f"{r['case']}/{r['backend']}",
                  *(spread(1000 * v for v in r["refresh_seconds"][side])
                    for side in REFRESH_SIDES),
                  Spread(**r["refresh_ratio"])) for r in results])
    path = write_results("compare-query-exporter", {
        "load": asdict(load), "rounds": args.rounds, "users": args.users, "top": args.top,
        "query_exporter": version, "results": list(results)})
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    sys.exit(main())
