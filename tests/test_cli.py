"""The real daemon process, end to end: start, scrape, lint with promtool, stop on SIGTERM; and
the one-line errors a bad config, a wrong URL or a missing table give at start-up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import API_KEY, NEXTCLOUD, NEXTCLOUD_DB, ROOT, read_json, sqlite_execute
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
    assert "usage_shares,email,2" in table.stdout.splitlines()


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
    result = subprocess.run([sys.executable, "-m", "exporter", "check-config", "--config",
                             "config.example.yaml"], cwd=ROOT, env=env, text=True,
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
    assert error.startswith("cannot connect to the nextcloud database: OperationalError: "
                            "unable to open database file")


def test_an_unreachable_server_stops_start_up_with_one_message(tmp_path):
    error = startup_error(tmp_path, f"postgresql+psycopg://u:p@127.0.0.1:{free_port()}/nc")
    assert error.startswith("cannot connect to the nextcloud database: OperationalError")
    assert ":p@" not in error


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
