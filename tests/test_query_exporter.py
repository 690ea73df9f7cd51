"""query-exporter compatibility: a query-exporter 5.x file runs unchanged, and our /metrics carries
the samples query-exporter (installed from PyPI into a virtualenv of its own) serves for the same
file on the same database: the same names, types, help, labels and values.

query-exporter's own metrics (queries, query_latency, ...) and ours (usage_*) have no
counterpart in the other and are left out; counters' _created series are off in both.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from tests.conftest import NEXTCLOUD_DB, ROOT
from tests.servers import free_port, query_exporter_process, terminate, wait_daemon_ready

QUERY_EXPORTER_OWN = ("queries", "query_latency", "query_timestamp", "query_interval",
                      "database_errors", "python_", "process_")
# query-exporter's repository at the release we install, for its own examples: set by whoever
# has a checkout (git archive 5.0.2 examples); a clone of ours carries no copy of them.
EXAMPLES = os.environ.get("QUERY_EXPORTER_EXAMPLES")

# Every kind of query and metric query-exporter has, on Nextcloud's own tables: gauges with
# labels, counters set and incremented, histograms with and without buckets, a summary, an
# enum, parameter sets, database labels, an on-scrape query, and each of its YAML tags.
CONFIG = """
databases:
  nextcloud:
    dsn: !env NEXTCLOUD_DSN
    labels: {instance_name: fixture}
    connection-pool: {size: 1}
metrics: !include metrics.yaml
queries:
  shares:
    databases: [nextcloud]
    interval: 1h
    timeout: 10
    metrics: [nextcloud_shares, nextcloud_share_permissions_max]
    sql: !file shares.sql
  files:
    databases: [nextcloud]
    interval: 1h
    metrics: [nextcloud_file_size_bytes, nextcloud_file_size_default_bytes,
              nextcloud_file_size_summary_bytes]
    sql: SELECT size AS nextcloud_file_size_bytes, size AS nextcloud_file_size_default_bytes,
      size AS nextcloud_file_size_summary_bytes FROM oc_filecache
  accounts:
    databases: [nextcloud]
    interval: 1h
    metrics: [nextcloud_account_enabled]
    sql: SELECT userid AS account, configvalue AS nextcloud_account_enabled
      FROM oc_preferences WHERE appid = 'core' AND configkey = 'enabled'
  typed_shares:
    databases: [nextcloud]
    interval: 1h
    metrics: [nextcloud_shares_of_types]
    parameters:
      - {share_type: 0}
      - {share_type: 3}
    sql: SELECT COUNT(*) AS nextcloud_shares_of_types FROM oc_share
      WHERE share_type = :share_type
  storages:
    databases: [nextcloud]
    metrics: [nextcloud_storages, nextcloud_empty]
    sql: SELECT COUNT(*) AS nextcloud_storages, MAX(NULL) AS nextcloud_empty FROM oc_storages
"""
METRICS = """
nextcloud_shares:
  type: gauge
  description: Shares by type.
  labels: [share_type]
  expiration: 2h
nextcloud_share_permissions_max:
  type: counter
  description: Highest permission bits by share type.
  labels: [share_type]
nextcloud_file_size_bytes:
  type: histogram
  description: File cache entries by size.
  buckets: [0, 1024, 1048576, 16777216]
nextcloud_file_size_default_bytes:
  type: histogram
nextcloud_file_size_summary_bytes:
  type: summary
  description: Sizes.
nextcloud_account_enabled:
  type: enum
  description: Whether the account is enabled.
  labels: [account]
  states: ["true", "false"]
nextcloud_shares_of_types:
  type: counter
  description: Shares of the given types, added up.
  increment: true
nextcloud_storages:
  type: gauge
  description: Storages.
nextcloud_empty:
  type: gauge
"""
SHARES_SQL = ("SELECT share_type, COUNT(*) AS nextcloud_shares, "
              "MAX(permissions) AS nextcloud_share_permissions_max FROM oc_share "
              "GROUP BY share_type\n")

Families = dict[str, tuple[str, str, dict[tuple[str, frozenset[tuple[str, str]]], float]]]


def families(body: str, *, leave_out: tuple[str, ...]) -> Families:
    found: Families = {}
    for family in text_string_to_metric_families(body):
        if family.name.startswith(leave_out):
            continue
        found[family.name] = (family.type, family.documentation,
                              {(s.name, frozenset(s.labels.items())): s.value
                               for s in family.samples})
    return found


def collected(config: Path, env: dict[str, str]) -> Families:
    """`usage-exporter collect --config FILE --format prometheus`: one refresh, and the very
    bytes /metrics serves."""
    done = subprocess.run([sys.executable, "-m", "exporter", "collect", "--config", str(config),
                           "--format", "prometheus"], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return families(done.stdout, leave_out=("usage_",))


def served(config: Path, env: dict[str, str], log: Path) -> Families:
    """`usage-exporter run --config FILE --web.listen-address 127.0.0.1:PORT`, the file as
    query-exporter reads it, scraped once every query has its first result."""
    port = free_port()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "run", "--config", str(config),
             "--web.listen-address", f"127.0.0.1:{port}"], cwd=ROOT, env={**os.environ, **env},
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_daemon_ready(url, process, log)
        with urllib.request.urlopen(f"{url}/metrics", timeout=60) as response:
            body = response.read().decode()
    finally:
        terminate(process)
    return families(body, leave_out=("usage_", "process_", "python_"))


def theirs(config: Path, env: dict[str, str], log: Path) -> Families:
    with query_exporter_process(config, log, env) as server, \
            urllib.request.urlopen(f"{server.url}/metrics", timeout=60) as response:
        return families(response.read().decode(), leave_out=QUERY_EXPORTER_OWN)


def write_config(directory: Path) -> Path:
    (directory / "metrics.yaml").write_text(METRICS)
    (directory / "shares.sql").write_text(SHARES_SQL)
    path = directory / "query-exporter.yaml"
    path.write_text(CONFIG)
    return path


def test_our_samples_equal_query_exporters_on_the_same_file_and_database(nextcloud_url,
                                                                           tmp_path):
    env = {"NEXTCLOUD_DSN": nextcloud_url}
    config = write_config(tmp_path)
    expected = theirs(config, env, tmp_path / "query-exporter.log")
    found = served(config, env, tmp_path / "usage-exporter.log")
    assert set(found) == set(expected)
    for name, family in expected.items():
        assert found[name] == family, name
    # Not an empty agreement: every query reported, with the fixture's share types.
    assert len(expected) == 9
    shares = expected["nextcloud_shares"][2]
    assert {dict(labels)["share_type"] for _, labels in shares} == share_types(nextcloud_url)


def share_types(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {str(t) for t in conn.execute(text("SELECT DISTINCT share_type "
                                                      "FROM oc_share")).scalars()}
    finally:
        engine.dispose()


# --- query-exporter's own example ---

# Statistics the two exporters' own queries move (each counts reads and transactions in the
# whole database), so the two, reading one after the other, cannot agree on them.
MOVED_BY_READING = ("pg_process", "pg_db_numbackends", "pg_db_xact_commit", "pg_db_blks_hit",
                    "pg_db_blks_read", "pg_db_tup_returned", "pg_db_tup_fetched",
                    "pg_db_xact_rollback")


# query-exporter bug: prometheus_client's summaries and histograms cannot observe a Decimal
# (PostgreSQL's numeric, which SUM() returns), so query-exporter counts the observation without
# its value and raises, and the rest of the row is never recorded. We publish the numbers.
DECIMAL_QUERIES = {
    "cache.sql": ("pg_cache_heap_read", "pg_cache_heap_hit", "pg_cache_hit_ratio"),
    "idx-cache.sql": ("pg_idx_cache_read", "pg_idx_cache_hit", "pg_idx_cache_hit_ratio"),
}
DECIMAL_SUMS_LOST = frozenset(name for names in DECIMAL_QUERIES.values() for name in names)
DATABASE_LABEL = frozenset({("database", "pg")})


@pytest.mark.skipif(EXAMPLES is None, reason="set QUERY_EXPORTER_EXAMPLES to the examples/ of "
                    "query-exporter 5.0.2 (git archive 5.0.2 examples)")
def test_query_exporters_postgresql_stats_example_runs_unchanged(postgres_server,
                                                                server_database, tmp_path):
    """examples/postgresql-stats, as query-exporter ships it, on the Nextcloud tables in
    PostgreSQL: every family, type and help the same; every value the same except the
    database-wide counters of the exporters' own reading (the same series there) and the numeric
    sums query-exporter loses (DECIMAL_QUERIES: there we serve what the database answers)."""
    url = server_database("postgresql", "qe_example", NEXTCLOUD_DB)
    settle(url)
    env = {"PG_DATABASE_DSN": url}
    config = Path(str(EXAMPLES)) / "postgresql-stats" / "config.yaml"
    expected = theirs(config, env, tmp_path / "query-exporter.log")
    found = collected(config, env)
    assert set(found) == set(expected)
    for name, (kind, help_text, samples) in expected.items():
        assert found[name][:2] == (kind, help_text), name
        if name.startswith(MOVED_BY_READING):
            assert set(found[name][2]) == set(samples), name
        elif name not in DECIMAL_SUMS_LOST:
            assert found[name][2] == samples, name
    for query_file, names in DECIMAL_QUERIES.items():
        row = read_row(url, Path(str(EXAMPLES)) / "postgresql-stats" / query_file)
        first = names[0]  # query-exporter counts its observation and loses the value ...
        assert expected[first][2] == {(f"{first}_count", DATABASE_LABEL): 1.0,
                                      (f"{first}_sum", DATABASE_LABEL): 0.0}
        assert all(expected[name][2] == {} for name in names[1:])  # ... and the row's rest
        for name in names:  # we publish what the database answered
            kind = found[name][0]
            value = float(row[name])
            assert found[name][2] == ({(f"{name}_count", DATABASE_LABEL): 1.0,
                                       (f"{name}_sum", DATABASE_LABEL): value}
                                      if kind == "summary" else {(name, DATABASE_LABEL): value})
    assert len(expected) > 40


def read_row(url: str, sql_file: Path) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(text(sql_file.read_text())).mappings().one())
    finally:
        engine.dispose()


def settle(url: str) -> None:
    """VACUUM ANALYZE the freshly loaded tables, so autovacuum does not change their statistics
    between the two reads, and wait until the statistics of the tables stop moving (a backend
    reports its reads a while after it ran)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    statistics = text("SELECT SUM(heap_blks_read), SUM(heap_blks_hit), SUM(idx_blks_read) "
                      "FROM pg_statio_user_tables")
    try:
        with engine.connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))
        seen = None
        for _ in range(30):
            time.sleep(1)
            with engine.connect() as conn:
                now = conn.execute(statistics).one()
            if now == seen:
                return
            seen = now
        raise AssertionError("the table statistics kept moving for 30 s")
    finally:
        engine.dispose()


def test_an_unchanged_file_is_what_check_config_accepts(tmp_path):
    config = write_config(tmp_path)
    done = subprocess.run([sys.executable, "-m", "exporter", "check-config", "--config",
                           str(config)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NEXTCLOUD_DSN": f"sqlite:///{NEXTCLOUD_DB}"},
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{config}: OK: config valid, database reachable")
    assert any(line.startswith("  platform: custom") for line in done.stdout.splitlines())
    assert any(line.startswith("  custom queries: sql:") for line in done.stdout.splitlines())

