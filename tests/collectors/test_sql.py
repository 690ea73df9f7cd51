"""Custom SQL metrics on SQLite, PostgreSQL and MariaDB: values from the platform's own tables
equal the platform's own answer, a result that does not fit fails the run with its YAML path
(old values kept, usage_collector_success 0, logged), the database is never written, and a query
past its timeout is cancelled in the database."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from structlog.testing import capture_logs

from exporter.config import ConfigError
from exporter.exposition import metric_rows, snapshot_json
from exporter.runner import Runner, StartupError
from tests.conftest import (
    NEXTCLOUD,
    NEXTCLOUD_DB,
    SERVER_FIXTURES,
    make_config,
    read_json,
)

SERVERINFO = read_json(NEXTCLOUD / "serverinfo.json")["ocs"]["data"]["nextcloud"]
PERMISSIONS_SQL = ("SELECT share_type, permissions, COUNT(*) AS nextcloud_share_permissions "
                   "FROM oc_share GROUP BY share_type, permissions")


def query(sql: str, *metrics: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {"name": "q", "sql": sql, "interval": "1h", "timeout": "20s", **settings,
            "metrics": list(metrics)}


def gauge(name: str, *labels: str, **settings: Any) -> dict[str, Any]:
    return {"name": name, "help": f"{name} from SQL.", "labels": list(labels), **settings}


def runner(url: str, *queries: dict[str, Any]) -> Runner:
    return Runner(make_config(url, "custom", custom_metrics=list(queries)))


def run_once(url: str, *queries: dict[str, Any]) -> tuple[Runner, Any]:
    r = runner(url, *queries)
    try:
        return r, r.run("sql:q")
    finally:
        r.close()


def samples(body: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode())
            for s in family.samples}


def test_a_labelled_gauge_equals_nextclouds_own_share_statistics(nextcloud_url):
    """serverinfo's permissions_<type>_<perm> is this very GROUP BY (ShareStatistics)."""
    _, snapshot = run_once(nextcloud_url, query(
        PERMISSIONS_SQL, gauge("nextcloud_share_permissions", "share_type", "permissions")))
    found = {f"permissions_{labels['share_type']}_{labels['permissions']}": value
             for (name, labels_set), value in samples(snapshot.bodies.text).items()
             if name == "nextcloud_share_permissions"
             for labels in [dict(labels_set)]}
    expected = {k: v for k, v in SERVERINFO["shares"].items() if k.startswith("permissions_")}
    assert found == expected


def test_counters_with_units_and_help_render_under_the_users_names(nextcloud_url):
    """serverinfo's num_storages counts oc_storages; num_files the file cache rows of them."""
    _, snapshot = run_once(nextcloud_url, query(
        "SELECT (SELECT COUNT(*) FROM oc_storages) AS nextcloud_storages, "
        "(SELECT COUNT(*) FROM oc_filecache f JOIN oc_storages s ON s.numeric_id = f.storage) "
        "AS nextcloud_filecache_entries",
        gauge("nextcloud_storages"),
        gauge("nextcloud_filecache_entries", type="counter", unit="entries")))
    body = snapshot.bodies.text.decode()
    assert "# HELP nextcloud_storages nextcloud_storages from SQL.\n" in body
    assert "# TYPE nextcloud_filecache_entries_total counter\n" in body
    found = samples(snapshot.bodies.text)
    assert found["nextcloud_storages", frozenset()] == SERVERINFO["storage"]["num_storages"]
    assert found["nextcloud_filecache_entries_total", frozenset()] == \
        SERVERINFO["storage"]["num_files"]
    assert "# UNIT nextcloud_filecache_entries entries\n" in \
        snapshot.bodies.openmetrics.decode()
    assert snapshot.collectors["sql:q"].state == "ok"


def test_the_query_appears_in_the_snapshot_api_json(nextcloud_url):
    _, snapshot = run_once(nextcloud_url, query(
        "SELECT COUNT(*) AS nextcloud_storages FROM oc_storages", gauge("nextcloud_storages")))
    body = snapshot_json(snapshot)
    assert body["collectors"]["sql:q"]["state"] == "ok"
    assert body["metrics"]["nextcloud_storages"] == [{
        "sample": "nextcloud_storages", "labels": {},
        "value": SERVERINFO["storage"]["num_storages"]}]
    # system.csv and `collect --format csv`: one row per sample, under the sample's name.
    assert [row for row in metric_rows(snapshot) if row[0] == "nextcloud_storages"] == \
        [("nextcloud_storages", "", SERVERINFO["storage"]["num_storages"])]


# --- a result that does not fit ---


def failed_run(url: str, *queries: dict[str, Any]) -> tuple[str, list[dict[str, Any]], bytes]:
    with capture_logs() as logs:
        _, snapshot = run_once(url, *queries)
    status = snapshot.collectors["sql:q"]
    assert status.state == "failed"
    assert samples(snapshot.bodies.text)["usage_collector_success",
                                         frozenset({("collector", "sql:q")})] == 0
    failures = [e for e in logs if e["event"] == "collector_failed"]
    assert [e["error"] for e in failures] == [status.last_error]
    return status.last_error or "", failures, snapshot.bodies.text


def test_a_wrong_column_names_the_metric_and_the_columns_found(nextcloud_url):
    error, _, _ = failed_run(nextcloud_url, query(
        "SELECT COUNT(*) AS storages FROM oc_storages", gauge("nextcloud_storages")))
    assert ("custom_metrics[0].metrics[0]: column nextcloud_storages not in the result of "
            "custom_metrics[0] (columns: storages)") in error


def test_a_wrong_label_column_stops_the_daemon_at_start_up(nextcloud_url):
    r = runner(nextcloud_url, query("SELECT COUNT(*) AS n FROM oc_storages",
                                    gauge("n", "kind")))
    try:
        with pytest.raises(StartupError, match=r"custom_metrics\[0\]\.metrics\[0\]: column "
                           r"kind not in the result"):
            r.preflight()
    finally:
        r.close()


def test_a_non_numeric_value_names_the_metric_the_value_and_the_row(nextcloud_url):
    error, _, _ = failed_run(nextcloud_url, query(
        "SELECT uid AS account, uid AS nextcloud_user FROM oc_users WHERE uid = 'alice'",
        gauge("nextcloud_user", "account")))
    assert ("custom_metrics[0].metrics[0]: column nextcloud_user is not a number: 'alice' "
            "(row account=alice)") in error


def test_two_rows_for_one_series_are_refused(nextcloud_url):
    error, _, _ = failed_run(nextcloud_url, query(
        "SELECT share_type, COUNT(*) AS n FROM oc_share GROUP BY share_type, permissions",
        gauge("n", "share_type")))
    assert "custom_metrics[0].metrics[0]: two rows for the series (row share_type=" in error


def test_more_series_than_the_cap_fail_the_run_visibly(nextcloud_url):
    permissions = len([k for k in SERVERINFO["shares"] if k.startswith("permissions_")])
    error, failures, body = failed_run(nextcloud_url, query(
        PERMISSIONS_SQL, gauge("nextcloud_share_permissions", "share_type", "permissions"),
        max_series=permissions - 1))
    assert (f"custom_metrics[0]: {permissions} series, over the cap of {permissions - 1} "
            "(max_series)") in error
    assert failures[0]["collector"] == "sql:q"
    assert "nextcloud_share_permissions" not in body.decode()  # never a partial set


def test_a_failed_run_keeps_the_last_good_values(tmp_path):
    copy = tmp_path / "nc.db"
    shutil.copyfile(NEXTCLOUD_DB, copy)
    r = runner(f"sqlite:///{copy}", query(
        "SELECT appid, COUNT(*) AS app_settings FROM oc_appconfig GROUP BY appid",
        gauge("app_settings", "appid"), max_series=100))
    try:
        good = samples(r.run("sql:q").bodies.text)
        with sqlite3.connect(copy) as db:  # the platform adds many apps
            db.executemany("INSERT INTO oc_appconfig (appid, configkey, configvalue) "
                           "VALUES (?, 'k', 'v')", [(f"app{i}",) for i in range(100)])
        db.close()
        after = r.run("sql:q")
    finally:
        r.close()
    assert after.collectors["sql:q"].state == "failed"
    kept = samples(after.bodies.text)
    assert {k: v for k, v in kept.items() if k[0] == "app_settings"} == \
        {k: v for k, v in good.items() if k[0] == "app_settings"}
    assert len([k for k in good if k[0] == "app_settings"]) > 0


# --- read-only ---

WRITES = {
    "insert": "INSERT INTO oc_storages (id, numeric_id) VALUES ('written-by-a-query', 999999)",
    "update": "UPDATE oc_storages SET id = 'written-by-a-query'",
    "ddl": "CREATE TABLE written_by_a_query (n INTEGER)",
}


@pytest.mark.parametrize("statement", WRITES)
def test_a_write_in_a_custom_query_is_refused_by_its_yaml_path_and_nothing_is_written(
        statement, nextcloud_url, tmp_path):
    """Refused in the config, before any connection (tests/test_readonly.py shows each session
    refusing writes that reach it anyway)."""
    url = nextcloud_url
    if url.startswith("sqlite"):  # a copy of its own, so a write could only land there
        copy = tmp_path / "nc.db"
        shutil.copyfile(NEXTCLOUD_DB, copy)
        url = f"sqlite:///{copy}"
    before = table_state(url)
    with pytest.raises(ConfigError) as refused:
        run_once(url, query(WRITES[statement], gauge("n")))
    assert [p for p in refused.value.problems
            if p.startswith("custom_metrics[0].sql: must be a SELECT")]
    assert table_state(url) == before


def table_state(url: str) -> tuple[Any, ...]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            storages = conn.execute(text("SELECT id, numeric_id FROM oc_storages "
                                         "ORDER BY numeric_id")).all()
            try:
                conn.execute(text("SELECT 1 FROM written_by_a_query"))
                table = True
            except Exception:
                table = False
        return tuple(storages), table
    finally:
        engine.dispose()


# --- timeouts ---

SLOW = {
    "postgresql": "SELECT pg_sleep(30) AS n",
    # A statement reading rows is interrupted with an error ...
    "mariadb": "SELECT COUNT(*) AS n FROM information_schema.columns a, "
               "information_schema.columns b, information_schema.columns c",
    # ... SLEEP() returns 1 when killed: the run is still a timeout, its value unused.
    "mariadb-sleep": "SELECT SLEEP(30) AS n",
}
RUNNING = {
    "postgresql": "SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' "
                  "AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
    "mariadb": "SELECT COUNT(*) FROM information_schema.processlist WHERE command = 'Query' "
               "AND info LIKE '%information_schema.columns c%' AND id <> CONNECTION_ID()",
    "mariadb-sleep": "SELECT COUNT(*) FROM information_schema.processlist WHERE command = "
                     "'Query' AND info LIKE '%SLEEP(30)%' AND id <> CONNECTION_ID()",
}


@pytest.mark.parametrize("backend", SLOW)
def test_a_query_past_its_timeout_is_cancelled_in_the_database(backend, request):
    server = request.getfixturevalue(SERVER_FIXTURES[backend.removesuffix("-sleep")])
    url = server.create_database(f"custom_slow_{backend.replace('-', '_')}")
    started = time.monotonic()
    _, snapshot = run_once(url, query(SLOW[backend], gauge("n"), timeout="1s"))
    elapsed = time.monotonic() - started
    status = snapshot.collectors["sql:q"]
    assert status.state == "failed"
    assert status.last_error.startswith("timed out after 1s")
    assert "n" not in {name for name, _ in samples(snapshot.bodies.text)}
    assert elapsed < 10
    assert wait_for(lambda: still_running(url, RUNNING[backend])) == 0


def still_running(url: str, sql: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        engine.dispose()


def wait_for(count: Callable[[], int], seconds: float = 5) -> int:
    deadline = time.monotonic() + seconds
    while (found := count()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_a_slow_sqlite_query_is_interrupted_at_its_timeout():
    started = time.monotonic()
    _, snapshot = run_once(f"sqlite:///{NEXTCLOUD_DB}", query(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) "
        "SELECT COUNT(*) AS n FROM c", gauge("n"), timeout="0.5s"))
    assert snapshot.collectors["sql:q"].last_error.startswith("timed out after 0.5s")
    assert time.monotonic() - started < 5


# --- query-exporter semantics over several runs ---


def query_exporter_runner(tmp_path, metric: str, sql: str, clock: list[float] | None = None,
                          *, dsn: str | None = None, **settings: Any) -> Runner:
    """A query-exporter file with one metric m (`metric` in YAML) and one query q (`sql` and
    `settings`) on `dsn`, by default a copy of Nextcloud."""
    from collectors import available
    from exporter.config import load_config

    if dsn is None:
        shutil.copyfile(NEXTCLOUD_DB, tmp_path / "nc.db")
        dsn = f"sqlite:///{tmp_path / 'nc.db'}"
    path = tmp_path / "qe.yaml"
    path.write_text(yaml.safe_dump({
        "databases": {"db": {"dsn": dsn}}, "metrics": {"m": yaml.safe_load(metric)},
        "queries": {"q": {"databases": ["db"], "metrics": ["m"], "sql": sql, **settings}}}))
    config = load_config(path, collector_options={n: c.options for n, c in available().items()})
    return Runner(config, clock=(lambda: clock[0]) if clock else time.time)


def preflight_error(runner: Runner) -> str:
    try:
        with pytest.raises(StartupError) as raised:
            runner.preflight()
    finally:
        runner.close()
    return str(raised.value)


def test_a_query_exporter_files_query_gets_the_start_up_check_ours_get(nextcloud_url,
                                                                       tmp_path):
    """The same LIMIT 0 read of the columns at start-up: a wrong column stops the daemon with
    its YAML path, as one in custom_metrics does, where query-exporter would start and fail the
    query at each run."""
    missing = preflight_error(query_exporter_runner(
        tmp_path, "{type: gauge, labels: [kind]}", "SELECT COUNT(*) AS m FROM oc_storages",
        dsn=nextcloud_url))
    assert missing == "metrics.m: column kind not in the result of queries.q (columns: m)"
    extra = preflight_error(query_exporter_runner(
        tmp_path, "{type: gauge}", "SELECT COUNT(*) AS m, 1 AS n FROM oc_storages",
        dsn=nextcloud_url))
    assert extra == "queries.q: unexpected column n (expected m)"
    broken = preflight_error(query_exporter_runner(
        tmp_path, "{type: gauge}", "SELECT COUNT(*) AS m FROM oc_no_such_table",
        dsn=nextcloud_url))
    assert broken.startswith("queries.q.sql: ") and "oc_no_such_table" in broken


def test_the_start_up_check_sends_a_query_exporter_query_with_its_parameters(nextcloud_url,
                                                                             tmp_path):
    """Bound to the first parameter set, as its runs bind each: a query that uses the sets'
    names passes (a trailing ';' too), one naming a parameter no set has is stopped."""
    sql = "SELECT COUNT(*) AS m FROM oc_share WHERE share_type = :share_type;"
    sets = [{"share_type": 0}, {"share_type": 3}]
    r = query_exporter_runner(tmp_path, "{type: gauge}", sql, dsn=nextcloud_url,
                              parameters=sets)
    try:
        r.preflight()
        assert r.run("sql:q").collectors["sql:q"].state == "ok"
    finally:
        r.close()
    unbound = preflight_error(query_exporter_runner(
        tmp_path, "{type: gauge}", sql.replace(":share_type", ":kind"), dsn=nextcloud_url,
        parameters=sets))
    assert unbound.startswith("queries.q.sql: ") and "kind" in unbound


def m_samples(snapshot: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {k: v for k, v in samples(snapshot.bodies.text).items() if k[0].startswith("m")}


def test_histograms_accumulate_and_a_failed_run_adds_nothing(tmp_path):
    clock = [1000.0]
    r = query_exporter_runner(tmp_path, "{type: histogram, buckets: [1, 15]}",
                              "SELECT permissions AS m FROM oc_share", clock)
    shares = sum(v for k, v in SERVERINFO["shares"].items() if k.startswith("permissions_"))
    try:
        first = m_samples(r.run("sql:q"))
        sqlite3.connect(tmp_path / "nc.db").execute(
            "ALTER TABLE oc_share RENAME TO oc_share_gone").connection.commit()
        assert r.run("sql:q").collectors["sql:q"].state == "failed"
        sqlite3.connect(tmp_path / "nc.db").execute(
            "ALTER TABLE oc_share_gone RENAME TO oc_share").connection.commit()
        third = m_samples(r.run("sql:q"))
    finally:
        r.close()
    count = ("m_count", frozenset({("database", "db")}))
    assert first[count] == shares
    assert third[count] == 2 * shares  # two good runs observed; the failed one added nothing
    assert all(third[key] == 2 * value for key, value in first.items())


@pytest.mark.parametrize(("expiration", "kept"), [("", True), (", expiration: 60", False)])
def test_a_series_gone_from_the_result_stays_until_its_expiration(tmp_path, expiration, kept):
    clock = [1000.0]
    r = query_exporter_runner(
        tmp_path, f"{{type: gauge, labels: [share_type]{expiration}}}",
        "SELECT share_type, COUNT(*) AS m FROM oc_share GROUP BY share_type", clock)
    try:
        before = m_samples(r.run("sql:q"))
        with sqlite3.connect(tmp_path / "nc.db") as db:
            db.execute("DELETE FROM oc_share WHERE share_type = 3")
        db.close()
        clock[0] += 120
        after = m_samples(r.run("sql:q"))
    finally:
        r.close()
    link = ("m", frozenset({("database", "db"), ("share_type", "3")}))
    assert before[link] == SERVERINFO["shares"]["num_shares_link"]
    assert (link in after) is kept
    assert after.get(link) == (before[link] if kept else None)
