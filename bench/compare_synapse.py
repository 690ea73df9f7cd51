"""Side by side with Synapse (issue 6, item 6; issue 17, item 4): GET
/_synapse/admin/v1/statistics/users/media answered by the real Synapse admin API and by our drop-in
route (`usage-exporter run`) on the same database, SQLite or PostgreSQL; the answers are compared
and each route's latency measured under the same load, interleaved, next to the static-bytes floor
of our HttpServer.

    python -m bench.compare_synapse [--backend sqlite|postgresql] [--users 10000,100000]
                                    [--requests 200] [--rounds 3]

Databases: the real fixture of the backend (tests/fixtures/synapse's homeserver.db, or
tests/fixtures/synapse_pg's pg_dump restored into a PostgreSQL server of tests.servers, under
$TMPDIR), both made by Synapse 1.163.2 (schema 94), then copies of it with bench.generate's
synthetic accounts, profiles and media added (Pareto skewed: a few heavy uploaders, many accounts
without media). bench.generate's own databases hold only the tables the exporter reads, which
Synapse cannot start on, hence its rows in the fixture's schema. Synapse is the version the
fixture was made with (its manifest), installed with its PostgreSQL driver into its own virtualenv
under /tmp; the script stops if that version's schema differs from the fixture's. Synapse gets a
generated homeserver.yaml, an admin made with register_new_matrix_user and the registration shared
secret, and is measured once its background updates are done. Ours reads PostgreSQL as a role that
may only SELECT. Every server is stopped by its PID at the end.

Each parameter set is served by our route either from the snapshot (no from_ts or until_ts: the
collectors' per-user media and display names, sorted once per snapshot; a search_term filters
those rows) or live, by one aggregate query on the database (a time window); the table says which.
Every distinct body either side sent while being timed is compared with the other side's answer;
any difference stops the run with the two answers.

Synapse orders by the requested column alone, so rows with equal values may come in any order:
an answer that differs from Synapse's only in the order of such rows (or, at a page edge, in
which of them made the page) is reported as "equal up to ties", anything else as DIFFERENT.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.generate import SynapseData, postgres_conninfo
from bench.sidebyside import (
    API_KEY,
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
from exporter.api.synapse import MEDIA_STATISTICS, MediaQuery
from tests.servers import (
    HOST,
    PostgresServer,
    Server,
    free_port,
    start_postgres,
    started,
    virtualenv,
)

FIXTURE = Path(__file__).resolve().parent.parent / "tests/fixtures/synapse"
FIXTURE_PG = FIXTURE.with_name("synapse_pg")
MEDIA_TABLES = ("users", "profiles", "local_media_repository")
SERVER_NAME = "test.local"  # the fixture's: Synapse refuses a database of another server's users
SEARCH_TERM = "ann"
ADMIN = "bench_admin"


class OnFixtureServer(SynapseData):
    """bench.generate's Synapse accounts, named on the fixture's server."""

    def mxid(self, i: int) -> str:
        return f"@{self.localpart(i)}:{SERVER_NAME}"


# --- databases -------------------------------------------------------------------------------


def synapse_version() -> str:
    return str(json.loads((FIXTURE / "manifest.json").read_text())["pinned_version"])


@dataclass(frozen=True)
class Database:
    """One database both servers read: Synapse's `database` config section and our URL."""

    name: str
    synapse: dict[str, Any]
    url: str
    rows_added: dict[str, int]


def check_schema(bin_dir: Path, recorded: int) -> int:
    """The fixture's schema version, if the installed Synapse has the same one."""
    installed = int(subprocess.run(
        [bin_dir / "python", "-c",
         "from synapse.storage.schema import SCHEMA_VERSION; print(SCHEMA_VERSION)"],
        check=True, capture_output=True, text=True).stdout)
    if installed != recorded:
        raise SystemExit(f"the installed Synapse has schema {installed}, the fixture {recorded}: "
                         f"install the version the fixture was made with")
    return recorded


def generated_rows(users: int) -> dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]]:
    """bench.generate's accounts, profiles and media of `users` users: columns and rows per
    table."""
    tables = {table.name: table for table in OnFixtureServer(users).dataset().tables}
    return {name: (tables[name].columns, list(tables[name].rows())) for name in MEDIA_TABLES}


def sqlite_databases(sizes: Sequence[int], directory: Path) -> Iterator[Database]:
    """The fixture's homeserver.db, then a copy of it per size with the generated rows added."""
    fixture = directory / "fixture" / "homeserver.db"
    fixture.parent.mkdir()
    shutil.copyfile(FIXTURE / "homeserver.db", fixture)
    databases = [("fixture", fixture, 0)]
    for users in sizes:
        copy = directory / f"{users}-users" / "homeserver.db"
        copy.parent.mkdir()
        shutil.copyfile(fixture, copy)
        databases.append((f"fixture+{users} users", copy, users))
    for name, path, users in databases:
        counts = {}
        with closing(sqlite3.connect(path)) as db:
            for table, (columns, rows) in generated_rows(users).items() if users else ():
                db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                               f"VALUES ({', '.join('?' * len(columns))})", rows)
                counts[table] = len(rows)
            db.commit()
        yield Database(name, {"name": "sqlite3", "args": {"database": str(path)}},
                       f"sqlite:///{path}", counts)


def postgres_databases(server: PostgresServer, sizes: Sequence[int]) -> Iterator[Database]:
    """The fixture's pg_dump restored, then once more per size with the generated rows added
    (COPY, then VACUUM ANALYZE, as after bench.generate's load)."""
    import psycopg

    for users in (0, *sizes):
        name = f"synapse_{users}"
        url = server.restore_dump(name, FIXTURE_PG / "dump.sql")
        counts = {}
        with psycopg.connect(postgres_conninfo(url), autocommit=True) as conn:
            for table, (columns, rows) in generated_rows(users).items() if users else ():
                with conn.cursor() as cur, cur.copy(
                        f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                counts[table] = len(rows)
            conn.execute("VACUUM (ANALYZE)")
        yield Database(
            "fixture" if not users else f"fixture+{users} users",
            {"name": "psycopg2", "args": {"user": server.user, "password": server.password,
                                          "dbname": name, "host": server.host,
                                          "port": server.port, "cp_min": 5, "cp_max": 10}},
            server.readonly_url(name), counts)


def one_row(database: Database, sql: str) -> tuple[Any, ...]:
    from sqlalchemy import create_engine, text

    engine = create_engine(database.url)
    try:
        with engine.connect() as conn:
            return tuple(conn.execute(text(sql)).one())
    finally:
        engine.dispose()


def combinations(database: Database) -> dict[str, dict[str, str]]:
    """The parameter sets compared; the time window is the middle half of the uploads."""
    first, last = one_row(database, "SELECT min(created_ts), max(created_ts) "
                                    "FROM local_media_repository")
    quarter = (last - first) // 4
    window = {"from_ts": str(first + quarter), "until_ts": str(last - quarter)}
    return {
        "default": {},
        "order_by=media_length&dir=b": {"order_by": "media_length", "dir": "b"},
        "limit=100&order_by=displayname": {"limit": "100", "order_by": "displayname"},
        "limit=1000000": {"limit": "1000000"},
        f"search_term={SEARCH_TERM}": {"search_term": SEARCH_TERM},
        "from_ts&until_ts": window,
        "from_ts&until_ts&order_by=media_length&dir=b": {**window, "order_by": "media_length",
                                                         "dir": "b"},
        f"from_ts&search_term={SEARCH_TERM}": {"from_ts": window["from_ts"],
                                               "search_term": SEARCH_TERM},
        "until_ts&order_by=displayname&limit=1000000": {
            "until_ts": window["until_ts"], "order_by": "displayname", "limit": "1000000"},
    }


def served(query: Mapping[str, str]) -> str:
    """Where our route takes the answer from: the route's own rule (MediaQuery's
    filtered_by_time), live for a time window, else the snapshot."""
    until_ts = query.get("until_ts")
    window = MediaQuery(query.get("order_by", "user_id"), 0, 100, int(query.get("from_ts", 0)),
                        None if until_ts is None else int(until_ts), query.get("search_term"),
                        query.get("dir") == "b")
    if window.filtered_by_time:
        return "live SQL"
    return "snapshot, searched" if window.search_term is not None else "snapshot"


# --- Synapse ---------------------------------------------------------------------------------


def post_json(url: str, body: Mapping[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def homeserver_config(bin_dir: Path, directory: Path, database: Mapping[str, Any],
                      port: int) -> Path:
    """Synapse's own generated config, on loopback, with no federation key servers."""
    path = directory / "homeserver.yaml"
    subprocess.run([bin_dir / "python", "-m", "synapse.app.homeserver", "--server-name",
                    SERVER_NAME, "--config-path", path, "--generate-config",
                    "--report-stats=no", "--data-directory", directory],
                   check=True, capture_output=True, cwd=directory)
    config = yaml.safe_load(path.read_text())
    config.update({
        "listeners": [{"port": port, "bind_addresses": [HOST], "type": "http", "tls": False,
                       "x_forwarded": False,
                       "resources": [{"names": ["client"], "compress": False}]}],
        "database": dict(database),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
    })
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def synapse(bin_dir: Path, database: Database,
            directory: Path) -> Iterator[tuple[Server, str]]:
    """Synapse on `database`, and an admin's access token, once its background updates are
    done."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = homeserver_config(bin_dir, directory, database.synapse, port)
    with started("synapse", [bin_dir / "python", "-m", "synapse.app.homeserver", "-c", config],
                 port, "/health", directory / "synapse.out", cwd=directory) as server:
        password = secrets.token_urlsafe(16)
        subprocess.run([bin_dir / "register_new_matrix_user", "-u", ADMIN, "-p", password,
                        "-a", "-c", config, server.url], check=True, capture_output=True)
        token = post_json(f"{server.url}/_matrix/client/v3/login", {
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": ADMIN},
            "password": password})["access_token"]
        wait_for_background_updates(server, token)
        yield server, token


def wait_for_background_updates(server: Server, token: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = json.loads(get(f"{server.url}/_synapse/admin/v1/background_updates/status",
                                {"Authorization": f"Bearer {token}"}))
        if not status["current_updates"]:
            return
        time.sleep(1)
    raise SystemExit(f"Synapse's background updates were still running after {timeout:g}s")


# --- answers ---------------------------------------------------------------------------------


def answer(server_url: str, path: str, token: str) -> Any:
    return json.loads(get(server_url + path, {"Authorization": f"Bearer {token}"}))


def agreement(theirs: Mapping[str, Any], ours: Mapping[str, Any], order_by: str) -> str:
    """"equal", "equal up to ties" (see the module's doc) or what differs."""
    if theirs == ours:
        return "equal"
    if {k: v for k, v in theirs.items() if k != "users"} != \
            {k: v for k, v in ours.items() if k != "users"}:
        return (f"DIFFERENT: total/next_token {theirs.get('total')}/"
                f"{theirs.get('next_token')} vs {ours.get('total')}/{ours.get('next_token')}")
    a, b = theirs["users"], ours["users"]
    if [u[order_by] for u in a] != [u[order_by] for u in b]:
        return "DIFFERENT: the rows are not in the same order"
    for start, end in tie_groups(a, order_by):
        # Which of the tied rows at the end of a page make it is up to the database.
        at_page_end = end == len(a) and "next_token" in theirs
        if not at_page_end and \
                sorted(map(canonical, a[start:end])) != sorted(map(canonical, b[start:end])):
            return f"DIFFERENT: rows {start}-{end - 1}"
    return "equal up to ties"


def tie_groups(users: Sequence[Mapping[str, Any]], key: str) -> list[tuple[int, int]]:
    """[start, end) of each run of rows with the same value of `key`."""
    groups: list[tuple[int, int]] = []
    for i, user in enumerate(users):
        if groups and users[groups[-1][0]][key] == user[key]:
            groups[-1] = (groups[-1][0], i + 1)
        else:
            groups.append((i, i + 1))
    return groups


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# --- one database ----------------------------------------------------------------------------


def compared(theirs: bytes, ours: bytes, label: str, query: Mapping[str, str]) -> str:
    """agreement() of two bodies; stops the run with both answers if they differ."""
    verdict = agreement(json.loads(theirs), json.loads(ours), query.get("order_by", "user_id"))
    if verdict.startswith("DIFFERENT"):
        raise SystemExit(f"{label}: Synapse and usage-exporter answer differently ({verdict})\n"
                         f"Synapse: {theirs[:2000]!r}\nours: {ours[:2000]!r}")
    return verdict


def run_database(database: Database, directory: Path, bin_dir: Path, load: Load,
                 rounds: int) -> dict[str, Any]:
    queries = combinations(database)
    with ExitStack() as stack:
        real, token = stack.enter_context(synapse(bin_dir, database, directory / "synapse"))
        ours = stack.enter_context(usage_exporter(
            exporter_config(database.url, "synapse", directory, ("users", "media"),
                            logging={"level": "info", "format": "json"}), directory))
        paths = {label: f"{MEDIA_STATISTICS}?{urllib.parse.urlencode(query)}".rstrip("?")
                 for label, query in queries.items()}
        targets = {"synapse": (real.port, token), "usage-exporter": (ours.port, API_KEY)}
        headers = {target: {"Authorization": f"Bearer {key}"}
                   for target, (_, key) in targets.items()}
        default_body = get(ours.url + paths["default"], headers["usage-exporter"])
        floor = stack.enter_context(static_floor(default_body, "application/json", directory))
        agreements: dict[str, set[str]] = {label: set() for label in paths}
        totals = {}
        for label, path in paths.items():  # before any timing: a difference stops the run early
            theirs = get(real.url + path, headers["synapse"])
            agreements[label].add(compared(theirs, get(ours.url + path, headers["usage-exporter"]),
                                           label, queries[label]))
            totals[label] = json.loads(theirs)["total"], len(json.loads(theirs)["users"])
        runs: dict[str, dict[str, list[Measurement]]] = {label: {} for label in paths}
        for _ in range(rounds):
            for label, path in paths.items():
                bodies: dict[str, dict[bytes, bytes]] = {target: {} for target in targets}
                for target, (port, _) in targets.items():
                    runs[label].setdefault(target, []).append(
                        measure(port, path, load, headers[target], bodies[target]))
                agreements[label].update(
                    compared(theirs, mine, label, queries[label])
                    for theirs in bodies["synapse"].values()
                    for mine in bodies["usage-exporter"].values())
            runs["default"].setdefault("floor", []).append(
                measure(floor.port, "/metrics", load))
    return {"database": database.name, "rows_added": database.rows_added, "combinations": {
        label: {"agreement": " and ".join(sorted(agreements[label])),
                "served": served(queries[label]), "total": totals[label][0],
                "rows": totals[label][1], "query": queries[label],
                "rounds": {t: [asdict(m) for m in ms] for t, ms in by_target.items()},
                "median": {t: asdict(median(ms)) for t, ms in by_target.items()},
                "spread": {t: {field: asdict(spread(getattr(m, field) for m in ms))
                               for field in ("p50_ms", "p99_ms")}
                           for t, ms in by_target.items()}}
        for label, by_target in runs.items()}}


def databases(backend: str, sizes: Sequence[int], directory: Path,
              stack: ExitStack) -> Iterator[Database]:
    if backend == "sqlite":
        return sqlite_databases(sizes, directory)
    server = start_postgres()
    stack.callback(server.stop)
    return postgres_databases(server, sizes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the database both servers run on (PostgreSQL: a server of "
                             "tests.servers, its data under $TMPDIR)")
    parser.add_argument("--users", default="10000,100000",
                        help="comma-separated sizes of the generated databases (accounts added "
                             "to the fixture's; default 10000,100000; 0 for the fixture only)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200, help="per route and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=20.0,
                        help="per route and round: the load stops then at the latest")
    args = parser.parse_args()
    sizes = [int(n) for n in args.users.split(",") if int(n) > 0]
    load = Load(args.clients, args.requests, warmup=5, max_seconds=args.max_seconds)
    version = synapse_version()
    bin_dir = virtualenv(f"synapse-{version}", (f"matrix-synapse[postgres]=={version}",))
    directory = Path(tempfile.mkdtemp(prefix="compare-synapse-", dir=WORK))
    results = []
    schema = 0
    try:
        with ExitStack() as stack:
            for database in databases(args.backend, sizes, directory, stack):
                schema = check_schema(bin_dir, int(one_row(
                    database, "SELECT version FROM schema_version")[0]))
                print(f"== {database.name}", flush=True)
                here = directory / database.name.replace(" ", "-")
                here.mkdir(parents=True, exist_ok=True)
                results.append(run_database(database, here, bin_dir, load, args.rounds))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    report(results, load, args, version, schema)
    return 0


def report(results: Sequence[Mapping[str, Any]], load: Load, args: argparse.Namespace,
           version: str, schema: int) -> None:
    rows = []
    for result in results:
        for label, combination in result["combinations"].items():
            ranges = combination["spread"]
            theirs, ours = ranges["synapse"], ranges["usage-exporter"]
            median_of = combination["median"]
            rows.append((result["database"], label, combination["served"], combination["total"],
                         combination["rows"], Spread(**theirs["p50_ms"]),
                         Spread(**theirs["p99_ms"]), Spread(**ours["p50_ms"]),
                         Spread(**ours["p99_ms"]),
                         round(theirs["p50_ms"]["median"] / ours["p50_ms"]["median"], 1),
                         round(theirs["p99_ms"]["median"] / ours["p99_ms"]["median"], 1),
                         f"{median_of['synapse']['requests']}/"
                         f"{median_of['usage-exporter']['requests']}",
                         median_of["synapse"]["errors"] + median_of["usage-exporter"]["errors"],
                         combination["agreement"]))
    print(f"\nSynapse {version} (schema {schema}, {args.backend}) vs usage-exporter, "
          f"{MEDIA_STATISTICS}; {load.clients} clients, up to {load.requests} requests or "
          f"{load.max_seconds:g}s per route, {args.rounds} round(s) interleaved: median "
          f"(min-max) ms")
    print_table(("database", "parameters", "ours from", "total", "rows", "Synapse p50", "p99",
                 "ours p50", "p99", "p50 x", "p99 x", "requests", "errors", "answers"), rows)
    print("\nour static floor (our default answer's bytes served by HttpServer):")
    print_table(("database", "floor p50 ms", "floor p99 ms"),
                [(r["database"], Spread(**f["p50_ms"]), Spread(**f["p99_ms"]))
                 for r in results for f in [r["combinations"]["default"]["spread"]["floor"]]])
    path = write_results(f"compare-synapse-{args.backend}", {
        "synapse": version, "schema_version": schema, "backend": args.backend,
        "load": asdict(load), "rounds": args.rounds, "results": list(results)})
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    sys.exit(main())
