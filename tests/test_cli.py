"""The real daemon process, end to end: start, scrape, lint with promtool, stop on SIGTERM; and
the one-line errors a bad config, a wrong URL or a missing table give at start-up."""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import os
import platform
import pty
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from collectors import available
from collectors.base import BYTE_BOUNDS
from exporter import __version__
from exporter.platforms import profile_for
from tests.conftest import (
    API_KEY,
    NEXTCLOUD,
    NEXTCLOUD_DB,
    ROOT,
    SYNAPSE_PG,
    make_config,
    read_json,
    sqlite_execute,
)
from tests.daemon_process import samples, wait_until
from tests.servers import free_port, promtool_path, ready_daemon, start_exporter, wait_daemon_ready

SERVERINFO = read_json(NEXTCLOUD / "serverinfo.json")["ocs"]["data"]


def write_config(path: Path, url: str, port: int, extra: str = "", *,
                 platform: str = "nextcloud", database_extra: str = "") -> Path:
    """A daemon config; `extra` is YAML appended at the end, `database_extra` lines indented into
    the database section."""
    path.write_text(f"""
database:
  url: {url}
  platform: {platform}
{database_extra}
server:
  listen: 127.0.0.1:{port}
api:
  keys:
    - name: tests
      secret: {API_KEY}
history:
  url: sqlite:///{path.parent / "history.db"}
{extra}""")
    return path


def exporter(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exporter", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


@contextmanager
def running_daemon(config: Path, port: int,
                   as_of: float) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The daemon on `config` and its URL; its log in daemon.log next to `config`."""
    url = f"http://127.0.0.1:{port}"
    with ready_daemon(config, config.with_name("daemon.log"), url, as_of=as_of,
                      seconds=30) as process:
        yield url, process


@pytest.fixture
def daemon(tmp_path, nextcloud_now) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    config = write_config(tmp_path / "config.yaml", f"sqlite:///{NEXTCLOUD_DB}", port)
    with running_daemon(config, port, nextcloud_now) as running:
        yield running


def test_daemon_serves_metrics_that_promtool_accepts(daemon, tmp_path):
    url, _ = daemon
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        body = response.read()
    assert b"usage_users_active{window=\"5m\"} " in body
    lint = subprocess.run([promtool_path(), "check", "metrics"], input=body,
                          capture_output=True, timeout=30)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert lint.stdout + lint.stderr == b""


def test_sigterm_stops_the_daemon_within_seconds(daemon, tmp_path):
    _, process = daemon
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)
    assert process.returncode == 0
    assert time.monotonic() - started < 5
    log = (tmp_path / "daemon.log").read_text()
    events = [json.loads(line)["event"] for line in log.splitlines() if line.startswith("{")]
    assert events[0] == "listening" and events[-1] == "stopped"


def test_collect_prints_one_refresh_in_each_format(tmp_path, nextcloud_now):
    config = write_config(tmp_path / "c.yaml", f"sqlite:///{NEXTCLOUD_DB}",
                          free_port())
    as_of = ("--as-of", str(nextcloud_now))
    result = exporter("collect", "--config", str(config), "--format", "json", *as_of)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["usage_shares"]["link"] == SERVERINFO["nextcloud"]["shares"]["num_shares_link"]
    prometheus = exporter("collect", "--config", str(config), "--format", "prometheus", *as_of)
    assert "# TYPE usage_users gauge" in prometheus.stdout
    table = exporter("collect", "--config", str(config), "--format", "csv", *as_of)
    assert table.stdout.splitlines()[0] == "metric,label,value"
    emails = SERVERINFO["nextcloud"]["shares"]["num_shares_mail"]
    assert f"usage_shares,type=email,{emails}" in table.stdout.splitlines()


def test_check_config_prints_every_problem_with_its_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("database:\n  url: sqlite:////x.db\n  platform: sharepoint\n"
                   "collectors:\n  users: {interval: often}\n")
    result = exporter("check-config", "--config", str(bad))
    assert result.returncode == 2
    assert "database.platform: expected one of" in result.stderr
    assert "collectors.users.interval: expected a duration" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_accepts_the_example_config(monkeypatch):
    env = {**os.environ, "USAGE_EXPORTER_API_KEY": "x" * 32}
    result = subprocess.run([sys.executable, "-m", "exporter", "check-config", "--offline",
                             "--config", "config.example.yaml"], cwd=ROOT, env=env, text=True,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config.example.yaml: OK")


def startup_error(tmp_path: Path, url: str) -> str:
    config = write_config(tmp_path / "c.yaml", url, free_port())
    result = exporter("run", "--config", str(config))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [line["event"] for line in lines] == ["startup_failed"]
    return lines[0]["error"]


def test_a_wrong_database_url_stops_start_up_with_one_message(tmp_path):
    error = startup_error(tmp_path, f"sqlite:///{tmp_path / 'missing.db'}")
    missing = tmp_path / "missing.db"
    assert error == f"cannot connect to the nextcloud database sqlite:///{missing}: " \
        f"no such file: {missing}"


def test_an_unreachable_server_stops_start_up_with_one_message(tmp_path):
    port = free_port()
    error = startup_error(tmp_path, f"postgresql+psycopg://u:p@127.0.0.1:{port}/nc")
    assert error.startswith(f"cannot connect to the nextcloud database postgresql+psycopg://u:***@"
                            f"127.0.0.1:{port}/nc: OperationalError")
    assert ":p@" not in error


def test_a_password_given_as_a_url_parameter_is_never_shown(tmp_path):
    port = free_port()
    error = startup_error(tmp_path, f"postgresql+psycopg://u@127.0.0.1:{port}/nc"
                                    "?password=S3cretPW&sslmode=disable")
    assert "S3cretPW" not in error
    assert f"127.0.0.1:{port}/nc?password=REDACTED&sslmode=disable" in error


def test_a_missing_table_stops_start_up_with_one_message(tmp_path):
    copy = tmp_path / "nc.db"
    shutil.copy(NEXTCLOUD_DB, copy)
    sqlite_execute(copy, "DROP TABLE oc_share")
    error = startup_error(tmp_path, f"sqlite:///{copy}")
    assert error == ("the database does not look like nextcloud (table prefix 'oc_'): "
                     "relation shares: OperationalError: no such table: oc_share")


def api_get(url: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_dau_history_survives_a_daemon_restart(tmp_path, nextcloud_now):
    copy = tmp_path / "nextcloud.db"
    shutil.copy(NEXTCLOUD_DB, copy)
    day_before = nextcloud_now - 86400
    login = ("UPDATE oc_preferences SET configvalue = '{}' WHERE userid = 'zoe' "
             "AND appid = 'login' AND configkey = 'lastLogin'")
    sqlite_execute(copy, login.format(int(day_before - 60)))
    port = free_port()
    config = write_config(tmp_path / "config.yaml", f"sqlite:///{copy}", port)
    with running_daemon(config, port, day_before) as (url, _):
        first = api_get(url + "/api/v1/history/dau?days=2")["entries"]
    # zoe logs in again the next day: her last login moves on; the day before must keep her.
    sqlite_execute(copy, login.format(int(nextcloud_now - 60)))
    with running_daemon(config, port, nextcloud_now) as (url, _):
        second = api_get(url + "/api/v1/history/dau?days=2")["entries"]
        statuses = api_get(url + "/api/v1/history/user-status?days=2")["status_counts"]
    assert first == [{"date": "2026-11-22", "amount": 1}]
    assert second[0] == first[0]
    assert second[1]["date"] == "2026-11-23" and second[1]["amount"] > 1
    assert [entry["date"] for entry in statuses["enabled"]] == ["2026-11-22", "2026-11-23"]


def test_the_demo_builds_its_database_and_serves_it(tmp_path):
    port = free_port()
    output = tmp_path / "demo.log"
    process = start_exporter(output, "demo", "--listen", f"127.0.0.1:{port}", "--users", "60",
                             "--directory", str(tmp_path))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_daemon_ready(url, process, output)
        with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
            body = response.read()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    printed = output.read_text()
    key = printed.split("Authorization: Bearer ")[1].split("'")[0]
    assert f"curl {url}/metrics" in printed
    assert len(key) >= 16
    uri = f"file:{tmp_path / 'nextcloud.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        accounts = db.execute("SELECT count(*) FROM oc_users").fetchone()[0]
    db.close()
    assert accounts == 60
    enabled_and_disabled = sum(
        float(line.split()[-1]) for line in body.decode().splitlines()
        if line.startswith("usage_users{"))
    assert enabled_and_disabled == accounts
    lint = subprocess.run([promtool_path(), "check", "metrics"], input=body,
                          capture_output=True, timeout=30)
    assert lint.returncode == 0 and lint.stdout + lint.stderr == b""


# --- flags, the environment and --version ---------------------------------------------------


def check(config: Path, *flags: str, env: dict[str, str] | None = None,
          ) -> subprocess.CompletedProcess[str]:
    """`check-config` on `config` with `flags`, `env` added to the environment."""
    return subprocess.run([sys.executable, "-m", "exporter", "check-config", "--config.file",
                           str(config), *flags], cwd=ROOT, env={**os.environ, **(env or {})},
                          text=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """check-config's `  name: value` lines."""
    assert result.returncode == 0, result.stderr
    return dict(line.strip().split(": ", 1) for line in result.stdout.splitlines()[1:])


def test_flags_replace_the_files_listen_address_log_settings_and_collectors(tmp_path):
    config = write_config(tmp_path / "c.yaml", f"sqlite:///{NEXTCLOUD_DB}", 9999,
                          "logging: {level: warning, format: console}\n")
    as_filed = summary(check(config))
    assert as_filed["listen"] == "127.0.0.1:9999"
    assert as_filed["logging"] == "warning, console"
    assert "shares" in as_filed["collectors"].split(", ")
    flagged = summary(check(config, "--web.listen-address", ":10191", "--log.level", "debug",
                            "--log.format", "json", "--no-collector.shares"))
    assert flagged["listen"] == ":10191"  # a bare :port is every interface
    assert flagged["logging"] == "debug, json"
    assert flagged["collectors"].split(", ") == [
        c for c in as_filed["collectors"].split(", ") if c != "shares"]
    config.write_text(config.read_text() + "collectors: {shares: {enabled: false}}\n")
    assert "shares" in summary(check(config, "--collector.shares"))["collectors"].split(", ")


def test_a_bad_listen_address_flag_is_refused_with_its_reason(tmp_path):
    config = write_config(tmp_path / "c.yaml", f"sqlite:///{NEXTCLOUD_DB}", 9999)
    result = check(config, "--web.listen-address", "10191")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "usage-exporter check-config: error: argument --web.listen-address: expected host:port "
        "such as 127.0.0.1:10191, got '10191'")


def test_the_database_url_comes_from_the_environment_or_a_file(tmp_path):
    config = write_config(tmp_path / "c.yaml", f"sqlite:///{tmp_path / 'not-this.db'}", 9999)
    # The file may leave the URL out altogether.
    config.write_text(config.read_text().replace(f"  url: sqlite:///{tmp_path}/not-this.db\n", ""))
    assert "not-this.db" not in config.read_text()
    assert check(config).returncode == 2
    url = f"sqlite:///{NEXTCLOUD_DB}"
    assert check(config, env={"USAGE_EXPORTER_DATABASE_URL": url}).returncode == 0
    secret = tmp_path / "database-url"
    secret.write_text(url + "\n")
    from_file = check(config, env={"USAGE_EXPORTER_DATABASE_URL_FILE": str(secret)})
    assert from_file.returncode == 0, from_file.stderr
    both = check(config, env={"USAGE_EXPORTER_DATABASE_URL": url,
                              "USAGE_EXPORTER_DATABASE_URL_FILE": str(secret)})
    assert both.returncode == 2
    assert "USAGE_EXPORTER_DATABASE_URL and USAGE_EXPORTER_DATABASE_URL_FILE are both set" \
        in both.stderr
    unreadable = check(config, env={"USAGE_EXPORTER_DATABASE_URL_FILE": str(tmp_path / "none")})
    assert unreadable.returncode == 2
    assert f"USAGE_EXPORTER_DATABASE_URL_FILE ({tmp_path / 'none'}): cannot read: No such file" \
        in unreadable.stderr


def test_the_environments_database_url_wins_over_the_files(tmp_path):
    config = write_config(tmp_path / "c.yaml", f"sqlite:///{tmp_path / 'missing.db'}", 9999)
    assert check(config).returncode == 1
    result = check(config, env={"USAGE_EXPORTER_DATABASE_URL": f"sqlite:///{NEXTCLOUD_DB}"})
    assert result.returncode == 0, result.stderr


def git_head() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_version_prints_version_revision_python_and_platform():
    result = exporter("--version")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"usage-exporter, version {__version__} (revision: {git_head()})"
    assert lines[1].split() == ["python", "version:", platform.python_version(),
                                f"({platform.python_implementation()})"]
    assert lines[2].split() == ["platform:", f"{sys.platform}/{platform.machine().lower()}"]


def test_a_built_wheel_records_the_revision_it_was_built_from(tmp_path):
    # Built from a clone (a build leaves build/ behind), without build isolation: the installed
    # setuptools and wheel (test extras), no download.
    source = tmp_path / "source"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(source)], check=True,
                   timeout=120)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--no-build-isolation", "-q", "-w", str(tmp_path), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("usage_exporter-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read("exporter/REVISION").decode().strip() == git_head()


# --- check-config against the database ------------------------------------------------------


def test_check_config_names_the_file_when_the_sqlite_file_is_missing(tmp_path):
    missing = tmp_path / "missing.db"
    config = write_config(tmp_path / "c.yaml", f"sqlite:///{missing}", 9999)
    result = check(config)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (f"{config}: cannot connect to the nextcloud database "
                             f"sqlite:///{missing}: no such file: {missing}\n")
    offline = check(config, "--offline")
    assert offline.returncode == 0, offline.stderr
    assert offline.stdout.startswith(f"{config}: OK: config valid (database not checked")


def test_check_config_says_in_one_line_that_the_server_cannot_be_reached(tmp_path):
    port = free_port()  # nothing listens there
    config = write_config(tmp_path / "c.yaml", f"postgresql+psycopg://u:p@127.0.0.1:{port}/nc",
                          9999)
    result = check(config)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{config}: cannot connect to the nextcloud database "
                           f"postgresql+psycopg://u:***@127.0.0.1:{port}/nc: OperationalError")
    assert ":p@" not in line and "Traceback" not in result.stderr


def test_check_config_reports_what_it_found_in_a_real_postgresql_synapse(tmp_path, synapse_pg_url):
    config = write_config(tmp_path / "c.yaml", synapse_pg_url, 9999, platform="synapse")
    result = check(config)
    found = summary(result)
    assert result.stdout.startswith(f"{config}: OK: config valid, database reachable")
    rows = read_json(SYNAPSE_PG / "db_tables.json")["row_counts"]
    assert found["users"] == str(rows["users"])
    dump = (SYNAPSE_PG / "dump.sql").read_text().split("COPY public.schema_version ")[1]
    schema = dump.splitlines()[1].split("\t")[1]  # the row under the COPY line: X, version, t
    assert found["platform"] == f"synapse {schema}"
    applicable = [name for name, cls in available().items()
                  if set(cls.relations) <= profile_for(make_config(
                      synapse_pg_url, "synapse").database).provides()]
    assert sorted(found["collectors"].split(", ")) == sorted(applicable)
    assert "storage" not in applicable  # Synapse has no file storage: not listed at all
    assert result.stderr == ""
    assert not (tmp_path / "history.db").exists()  # a check writes nothing anywhere


def test_check_config_warns_when_no_api_key_is_configured(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"database: {{url: 'sqlite:///{NEXTCLOUD_DB}', platform: nextcloud}}\n")
    result = check(config)
    assert result.returncode == 0
    assert result.stderr == (f"{config}: warning: no API key in api.keys: every API route and "
                             "the admin page will refuse\n")


# --- collect and demo polish ----------------------------------------------------------------


def collect(config: Path, as_of: float, *flags: str) -> subprocess.CompletedProcess[str]:
    return exporter("collect", "--config", str(config), "--as-of", str(as_of), *flags)


def test_collect_into_a_closed_pipe_exits_quietly(tmp_path, nextcloud_now):
    config = write_config(tmp_path / "c.yaml", f"sqlite:///{NEXTCLOUD_DB}", 9999)
    process = subprocess.Popen([sys.executable, "-m", "exporter", "collect", "--config",
                                str(config), "--format", "csv"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # as `| head` does once it has its lines
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert stderr == ""


def plain(bound: str) -> str:
    """An exposition's le (1048576.0) as JSON and CSV write it (1048576)."""
    return bound if bound == "+Inf" or not float(bound).is_integer() else str(int(float(bound)))


def test_collect_csv_has_the_samples_of_the_exposition_with_their_label_names(
        tmp_path, nextcloud_now):
    config = write_config(tmp_path / "c.yaml", f"sqlite:///{NEXTCLOUD_DB}", 9999)
    rows = list(csv.reader(collect(config, nextcloud_now, "--format", "csv").stdout
                           .splitlines()))[1:]
    exposition = collect(config, nextcloud_now, "--format", "prometheus").stdout
    expected = []
    for family in text_string_to_metric_families(exposition):
        if family.name.startswith(("usage_collector_", "usage_database", "usage_exporter",
                                   "usage_platform")):
            continue  # the exporter's own, not in the snapshot's metrics
        for sample in family.samples:
            name, _, suffix = sample.name.rpartition("_g")
            if suffix in ("count", "sum"):  # a gauge histogram's (the parser's own family)
                expected.append((name, suffix, sample.value))
                continue
            label = ",".join(f"{k}={plain(v) if k == 'le' else v}"
                             for k, v in sample.labels.items())
            expected.append((family.name, label, sample.value))
    assert sorted((m, label, float(v)) for m, label, v in rows) == sorted(expected)
    assert ("usage_shares", "type=email",
            float(SERVERINFO["nextcloud"]["shares"]["num_shares_mail"])) in expected


def test_histogram_bucket_bounds_read_as_plain_numbers(tmp_path, nextcloud_now):
    config = write_config(tmp_path / "c.yaml", f"sqlite:///{NEXTCLOUD_DB}", 9999)
    metrics = json.loads(collect(config, nextcloud_now).stdout)["metrics"]
    histograms = {name: list(value["buckets"]) for name, value in metrics.items()
                  if isinstance(value, dict) and "buckets" in value}
    assert histograms["usage_user_storage_used_bytes"] == [
        *(str(int(bound)) for bound in BYTE_BOUNDS), "+Inf"]  # 1048576, not 1048576.0
    for keys in histograms.values():
        assert keys[-1] == "+Inf"
        assert all(not key.endswith(".0") and float(key) >= 0 for key in keys[:-1]), keys
    rows = collect(config, nextcloud_now, "--format", "csv").stdout.splitlines()
    assert any(row.startswith("usage_user_storage_used_bytes,le=1048576,") for row in rows)


def test_per_user_share_counts_are_zero_for_a_user_without_shares(tmp_path, nextcloud_now):
    config = write_config(tmp_path / "c.yaml", f"sqlite:///{NEXTCLOUD_DB}", 9999)
    users = json.loads(collect(config, nextcloud_now, "--users").stdout)["users"]
    with sqlite3.connect(f"file:{NEXTCLOUD_DB}?mode=ro", uri=True) as db:
        owners = {owner for (owner,) in db.execute("SELECT DISTINCT uid_owner FROM oc_share")}
    db.close()
    without = [user for user in users if user["user_id"] not in owners]
    assert without and any(user["user_id"] in owners for user in users)
    share_columns = [column for column in users[0] if column.startswith("shares_")]
    assert share_columns
    for user in without:
        assert [user[column] for column in share_columns] == [0] * len(share_columns), user
    assert all(isinstance(user[column], int) for user in users for column in share_columns)


def test_collect_refuses_users_with_csv(tmp_path, nextcloud_now):
    config = write_config(tmp_path / "c.yaml", f"sqlite:///{NEXTCLOUD_DB}", 9999)
    result = collect(config, nextcloud_now, "--format", "csv", "--users")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("usage-exporter collect: --users needs --format json")


def test_demo_explains_its_options():
    result = exporter("demo", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--users N synthetic user accounts to create (default 400;" in text
    assert "removed when the demo stops" in text


# --- run: its flags, its log, its process metrics --------------------------------------------


def log_events(path: Path, event: str | None = None) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if event is None or line["event"] == event]


def scrape(url: str, headers: dict[str, str] | None = None) -> tuple[bytes, dict[str, str]]:
    request = urllib.request.Request(url + "/metrics", headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read(), dict(response.headers)


@pytest.fixture
def flagged_daemon(tmp_path, nextcloud_now) -> Iterator[tuple[str, Path]]:
    """`run` with every kind of flag over a config that says otherwise: the file listens on
    another port, logs warnings only as console text, and has every collector hourly; the flags
    pick a free port, info-level JSON, and leave shares out."""
    config = write_config(tmp_path / "c.yaml", f"sqlite:///{NEXTCLOUD_DB}", 9,
                          "logging: {level: warning, format: console}\n"
                          "collectors:\n" + "".join(f"  {name}: {{interval: 1h}}\n"
                                                    for name in available()))
    log = tmp_path / "daemon.log"
    process = start_exporter(log, "run", "--config.file", str(config), "--as-of",
                             str(nextcloud_now), "--web.listen-address", "127.0.0.1:0",
                             "--log.level", "info", "--log.format", "json",
                             "--no-collector.shares")
    try:
        deadline = time.monotonic() + 30
        while not log_events(log, "listening"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        url = log_events(log, "listening")[0]["url"]
        wait_daemon_ready(url, process, log)
        yield url, log
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)


def test_run_listens_where_the_flag_says_and_logs_the_real_port(flagged_daemon):
    url, _ = flagged_daemon
    host, port = url.removeprefix("http://").rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) not in (0, 9)
    assert samples(scrape(url)[0])["usage_database_up"] == 1


def healthcheck(config: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exporter", "healthcheck", "--config.file",
                           str(config), *flags], cwd=ROOT, text=True, capture_output=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def test_healthcheck_passes_on_the_address_the_daemon_serves_and_fails_where_none_does(
        flagged_daemon, tmp_path):
    url, _ = flagged_daemon
    config = tmp_path / "c.yaml"  # the daemon's file: it says port 9, the flag gave another
    serving = url.removeprefix("http://")
    assert healthcheck(config, "--web.listen-address", serving).returncode == 0
    assert healthcheck(config, "--web.listen-address", serving, "--ready").returncode == 0
    idle = f"127.0.0.1:{free_port()}"
    failed = healthcheck(config, "--web.listen-address", idle)
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"http://{idle}/-/healthy: ") and "refused" in failed.stderr


def test_run_logs_one_line_per_collector_run_and_ready_once(flagged_daemon, nextcloud_now):
    _, log = flagged_daemon
    wait_until(lambda: log_events(log, "ready"), 10, "the ready line")
    applicable = log_events(log, "listening")[0]["collectors"]
    assert "shares" not in applicable  # --no-collector.shares
    runs = {line["collector"]: line for line in log_events(log, "collector_run")}
    assert sorted(runs) == sorted(applicable)
    with sqlite3.connect(f"file:{NEXTCLOUD_DB}?mode=ro", uri=True) as db:
        accounts = db.execute("SELECT count(*) FROM oc_users").fetchone()[0]
    db.close()
    assert runs["users"]["user_rows"] == accounts
    for line in runs.values():
        assert line["level"] == "info" and line["duration_seconds"] >= 0
        # Hourly, from the file: the next run is an hour (and at most the jitter) away.
        next_run = datetime.fromisoformat(line["next_run"])
        ran = datetime.fromisoformat(line["timestamp"])
        assert timedelta(minutes=59) < next_run - ran < timedelta(minutes=61), line
    events = [line["event"] for line in log_events(log)]
    assert events.count("ready") == 1
    assert events.index("ready") > events.index("collector_run")
    assert "collector_succeeded" not in events  # the debug line: --log.level info hides it
    assert all(line.startswith("{") for line in log.read_text().splitlines())  # json


def test_metrics_carry_process_and_python_metrics_and_the_build(flagged_daemon):
    url, _ = flagged_daemon
    body, _ = scrape(url)
    found = samples(body)
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                 "process_open_fds", "process_max_fds", "process_start_time_seconds",
                 'python_gc_objects_collected_total{generation="0"}'):
        assert name in found, name
    assert found["process_resident_memory_bytes"] > 10 * 1024**2
    (info,) = [name for name in found if name.startswith("python_info{")]
    assert f'version="{platform.python_version()}"' in info
    build = (f'usage_exporter_build_info{{python_version="{platform.python_version()}",'
             f'revision="{git_head()}",version="{__version__}"}}')
    assert found[build] == 1
    assert "usage_shares{" not in body.decode()
    lint = subprocess.run([promtool_path(), "check", "metrics"], input=body,
                          capture_output=True, timeout=30)
    assert lint.returncode == 0 and lint.stdout + lint.stderr == b"", lint
    # The same in OpenMetrics (one # EOF, at the end) and gzipped.
    openmetrics, headers = scrape(url, {"Accept": "application/openmetrics-text"})
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    families = {f.name for f in openmetrics_families(openmetrics.decode())}
    assert {"process_cpu_seconds", "python_info", "usage_users"} <= families
    assert openmetrics.count(b"# EOF") == 1 and openmetrics.endswith(b"# EOF\n")
    zipped, headers = scrape(url, {"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert samples(gzip.decompress(zipped)).keys() == found.keys()


def test_process_metrics_stay_fresh_while_collectors_wait(flagged_daemon):
    """Collectors run hourly here; the process metrics are rendered again every few seconds."""
    url, _ = flagged_daemon
    first = samples(scrape(url)[0])

    def newer() -> dict[str, float] | None:
        now = samples(scrape(url)[0])
        cpu = "process_cpu_seconds_total"
        return now if now[cpu] > first[cpu] else None

    # Scraping costs CPU time, so within a few refreshes the counter moves.
    later = wait_until(newer, 30, "a newer process_cpu_seconds_total")
    values = {k: v for k, v in later.items() if k.startswith("usage_") and "collector" not in k}
    assert values == {k: v for k, v in first.items() if k in values}


# --- the demo: progress, and its temporary directory ------------------------------------------


def demo_directories(tmp: Path) -> list[Path]:
    return list(tmp.glob("usage-exporter-demo-*"))


def start_demo(tmp_path: Path, *arguments: str, stderr: int | None = None,
               ) -> tuple[subprocess.Popen[bytes], Path]:
    """`demo` with its temporary directory made under tmp_path/tmp (TMPDIR)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "exporter", "demo", *arguments], cwd=ROOT,
                               env={**os.environ, "TMPDIR": str(tmp)}, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL,
                               stderr=stderr if stderr is not None else subprocess.PIPE)
    return process, tmp


def test_the_demo_shows_a_progress_bar_on_a_terminal_and_cleans_up_after_a_failed_bind(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        terminal, side = pty.openpty()
        process, tmp = start_demo(tmp_path, "--users", "3000", "--listen", f"127.0.0.1:{port}",
                                  stderr=side)
        os.close(side)
        shown = b""
        with contextlib.suppress(OSError):  # EIO once the process has closed the terminal
            while chunk := os.read(terminal, 65536):
                shown += chunk
        os.close(terminal)
        assert process.wait(timeout=120) == 1
    text = shown.decode(errors="replace")
    assert "writing the database" in text and "100%" in text  # the bar, as it ends
    assert "cannot listen on 127.0.0.1" in text
    assert demo_directories(tmp) == []
    assert "Traceback" not in text


def test_the_demo_removes_its_directory_when_interrupted_while_building(tmp_path):
    process, tmp = start_demo(tmp_path, "--users", "20000", "--listen", f"127.0.0.1:{free_port()}")
    assert process.stderr is not None
    # Its log (JSON: stderr is no terminal) says each step as the build gets to it.
    steps = []
    for line in process.stderr:
        event = json.loads(line)
        if event["event"] == "demo_building":
            steps.append(event["step"])
        if event.get("step") == "files":
            break
    assert steps == ["accounts", "files"]
    assert len(demo_directories(tmp)) == 1
    process.send_signal(signal.SIGINT)  # Ctrl-C
    rest = process.stderr.read().decode()
    assert process.wait(timeout=30) == 130
    assert demo_directories(tmp) == []
    assert "Traceback" not in rest


def test_the_demo_removes_its_directory_when_stopped_with_ctrl_c(tmp_path):
    port = free_port()
    process, tmp = start_demo(tmp_path, "--users", "30", "--listen", f"127.0.0.1:{port}")
    try:
        wait_until(lambda: urllib_ok(f"http://127.0.0.1:{port}/-/ready"), 60, "the demo")
        assert len(demo_directories(tmp)) == 1
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    assert demo_directories(tmp) == []


def urllib_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
