"""Side by side with Synapse (issue 6, item 6): GET /_synapse/admin/v1/statistics/users/media
answered by the real Synapse admin API and by our drop-in route (`usage-exporter run`) on the same
SQLite database; the answers are compared and each route's latency measured under the same load,
next to the static-bytes floor of our HttpServer.

    python -m bench.compare_synapse [--users 10000,100000] [--requests 200] [--rounds 1]

Databases: a copy of the real fixture (tests/fixtures/synapse, made by Synapse 1.163.2, schema
94), then copies of it with bench.generate's synthetic accounts, profiles and media added (Pareto
skewed: a few heavy uploaders, many accounts without media). Synapse is the version the fixture
was made with (its manifest), installed into its own virtualenv under /tmp; the script stops if
that version's schema differs from the fixture's. Synapse gets a generated homeserver.yaml, an
admin made with register_new_matrix_user and the registration shared secret, and is measured
once its background updates are done. Every server is stopped by its PID at the end.

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
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from bench.generate import SynapseData
from bench.sidebyside import (
    API_KEY,
    WORK,
    Load,
    Measurement,
    exporter_config,
    get,
    measure,
    median,
    print_table,
    static_floor,
    usage_exporter,
    write_results,
)
from exporter.api.synapse import MEDIA_STATISTICS
from tests.servers import HOST, Server, free_port, started, virtualenv

FIXTURE = Path(__file__).resolve().parent.parent / "tests/fixtures/synapse"
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


def check_schema(bin_dir: Path, database: Path) -> int:
    """The fixture's schema version, if the installed Synapse has the same one."""
    installed = int(subprocess.run(
        [bin_dir / "python", "-c",
         "from synapse.storage.schema import SCHEMA_VERSION; print(SCHEMA_VERSION)"],
        check=True, capture_output=True, text=True).stdout)
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        recorded = db.execute("SELECT version FROM schema_version").fetchone()[0]
    if installed != recorded:
        raise SystemExit(f"the installed Synapse has schema {installed}, the fixture {recorded}: "
                         f"install the version the fixture was made with")
    return int(recorded)


def add_accounts(database: Path, users: int) -> dict[str, int]:
    """Adds bench.generate's accounts, profiles and media of `users` users; rows per table."""
    tables = {table.name: table for table in OnFixtureServer(users).dataset().tables}
    counts = {}
    with closing(sqlite3.connect(database)) as db:
        for name in ("users", "profiles", "local_media_repository"):
            table = tables[name]
            rows = list(table.rows())
            db.executemany(f"INSERT INTO {name} ({', '.join(table.columns)}) "
                           f"VALUES ({', '.join('?' * len(table.columns))})", rows)
            counts[name] = len(rows)
        db.commit()
    return counts


def combinations(database: Path) -> dict[str, dict[str, str]]:
    """The parameter sets compared; the time window is the middle half of the uploads."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        first, last = db.execute("SELECT min(created_ts), max(created_ts) "
                                 "FROM local_media_repository").fetchone()
    quarter = (last - first) // 4
    return {
        "default": {},
        "order_by=media_length&dir=b": {"order_by": "media_length", "dir": "b"},
        f"search_term={SEARCH_TERM}": {"search_term": SEARCH_TERM},
        "from_ts&until_ts": {"from_ts": str(first + quarter), "until_ts": str(last - quarter)},
        "limit=100&order_by=displayname": {"limit": "100", "order_by": "displayname"},
        "limit=1000000": {"limit": "1000000"},
    }


# --- Synapse ---------------------------------------------------------------------------------


def post_json(url: str, body: Mapping[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def homeserver_config(bin_dir: Path, directory: Path, database: Path, port: int) -> Path:
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
        "database": {"name": "sqlite3", "args": {"database": str(database)}},
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
    })
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def synapse(bin_dir: Path, database: Path, directory: Path) -> Iterator[tuple[Server, str]]:
    """Synapse on `database`, and an admin's access token, once its background updates are
    done."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = homeserver_config(bin_dir, directory, database, port)
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


def run_database(name: str, database: Path, directory: Path, bin_dir: Path, load: Load,
                 rounds: int) -> dict[str, Any]:
    queries = combinations(database)
    with ExitStack() as stack:
        real, token = stack.enter_context(synapse(bin_dir, database, directory / "synapse"))
        ours = stack.enter_context(usage_exporter(
            exporter_config(f"sqlite:///{database}", "synapse", directory, ("users", "media"),
                            logging={"level": "info", "format": "json"}), directory))
        paths = {label: f"{MEDIA_STATISTICS}?{urllib.parse.urlencode(query)}".rstrip("?")
                 for label, query in queries.items()}
        default_body = get(ours.url + paths["default"], {"Authorization": f"Bearer {API_KEY}"})
        floor = stack.enter_context(static_floor(default_body, "application/json", directory))
        compared = {}
        for label, path in paths.items():
            theirs, mine = answer(real.url, path, token), answer(ours.url, path, API_KEY)
            compared[label] = {"agreement": agreement(theirs, mine,
                                                      queries[label].get("order_by", "user_id")),
                               "total": theirs.get("total"), "rows": len(theirs["users"])}
        targets = {"synapse": (real.port, token), "usage-exporter": (ours.port, API_KEY)}
        runs: dict[str, dict[str, list[Measurement]]] = {label: {} for label in paths}
        for _ in range(rounds):
            for label, path in paths.items():
                for target, (port, key) in targets.items():
                    runs[label].setdefault(target, []).append(
                        measure(port, path, load, {"Authorization": f"Bearer {key}"}))
            runs["default"].setdefault("floor", []).append(
                measure(floor.port, "/metrics", load))
    return {"database": name, "combinations": {
        label: {**compared[label], "query": queries[label],
                "median": {t: asdict(median(ms)) for t, ms in by_target.items()}}
        for label, by_target in runs.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", default="10000,100000",
                        help="comma-separated sizes of the generated databases (accounts added "
                             "to the fixture's; default 10000,100000; 0 for the fixture only)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200, help="per route and round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=20.0,
                        help="per route and round: the load stops then at the latest")
    args = parser.parse_args()
    sizes = [int(n) for n in args.users.split(",") if int(n) > 0]
    load = Load(args.clients, args.requests, warmup=5, max_seconds=args.max_seconds)
    version = synapse_version()
    bin_dir = virtualenv(f"synapse-{version}", (f"matrix-synapse=={version}",))
    directory = Path(tempfile.mkdtemp(prefix="compare-synapse-", dir=WORK))
    results = []
    try:
        fixture = directory / "fixture" / "homeserver.db"
        fixture.parent.mkdir()
        shutil.copyfile(FIXTURE / "homeserver.db", fixture)
        schema = check_schema(bin_dir, fixture)
        databases: dict[str, tuple[Path, dict[str, int]]] = {"fixture": (fixture, {})}
        for users in sizes:
            copy = directory / f"{users}-users" / "homeserver.db"
            copy.parent.mkdir()
            shutil.copyfile(fixture, copy)
            databases[f"fixture+{users} users"] = (copy, add_accounts(copy, users))
        for name, (database, added) in databases.items():
            print(f"== {name}", flush=True)
            result = run_database(name, database, database.parent, bin_dir, load, args.rounds)
            results.append({**result, "rows_added": added})
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    report(results, load, args, version, schema)
    return 1 if any(c["agreement"].startswith("DIFFERENT") for r in results
                    for c in r["combinations"].values()) else 0


def report(results: Sequence[Mapping[str, Any]], load: Load, args: argparse.Namespace,
           version: str, schema: int) -> None:
    rows = []
    for result in results:
        for label, combination in result["combinations"].items():
            median_of = combination["median"]
            theirs, ours = median_of["synapse"], median_of["usage-exporter"]
            rows.append((result["database"], label, combination["total"], combination["rows"],
                         theirs["p50_ms"], theirs["p99_ms"], ours["p50_ms"], ours["p99_ms"],
                         round(theirs["p50_ms"] / ours["p50_ms"], 1),
                         round(theirs["p99_ms"] / ours["p99_ms"], 1),
                         f"{theirs['requests']}/{ours['requests']}",
                         theirs["errors"] + ours["errors"], combination["agreement"]))
    print(f"\nSynapse {version} (schema {schema}, SQLite) vs usage-exporter, {MEDIA_STATISTICS}; "
          f"{load.clients} clients, up to {load.requests} requests or {load.max_seconds:g}s per "
          f"route, {args.rounds} round(s)")
    print_table(("database", "parameters", "total", "rows", "Synapse p50", "p99", "ours p50",
                 "p99", "p50 x", "p99 x", "requests", "errors", "answers"), rows)
    print("\nour static floor (our default answer's bytes served by HttpServer):")
    print_table(("database", "floor p50 ms", "floor p99 ms", "ours p99 / floor p99"),
                [(r["database"], f["p50_ms"], f["p99_ms"],
                  round(r["combinations"]["default"]["median"]["usage-exporter"]["p99_ms"]
                        / f["p99_ms"], 2))
                 for r in results
                 for f in [r["combinations"]["default"]["median"]["floor"]]])
    path = write_results("compare-synapse", {
        "synapse": version, "schema_version": schema, "load": asdict(load),
        "rounds": args.rounds, "results": list(results)})
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    sys.exit(main())
