"""The daemon process and its signals: a bad config never starts it, SIGHUP applies a valid config
while the server keeps serving and keeps the running one otherwise, SIGTERM stops it at once even
while a query is running."""

from __future__ import annotations

import copy
import http.client
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, text

from exporter.api.native import HISTORY_PENDING, HISTORY_RETRY_AFTER
from tests.conftest import API_KEY, NEXTCLOUD_DB, ROOT
from tests.daemon_process import DaemonProcess, collectors, config_yaml, wait_until
from tests.servers import free_port, wait_daemon_ready

ROTATED_KEY = "rotated-key-0123456789abcdef"
SYNTAX_ERROR = "database: [url, platform\n"

# (what is wrong, a change to a good config or a whole bad document, the message naming it)
BAD_CONFIGS = [
    pytest.param({"collectors": {"users": {"interval": "often"}}},
                 "collectors.users.interval: expected a duration such as 30s, 5m or 1h, "
                 "got 'often'", id="a value"),
    pytest.param({"collectors": {"users": {"interval": "10s", "timeout": "20s"}}},
                 "collectors.users.timeout: must not exceed the interval", id="a timeout"),
    pytest.param({"api": {"keys": [{"name": "tests", "secret": "short"}]}},
                 "api.keys[0]: a secret must be a string of at least 16 characters",
                 id="a secret"),
    pytest.param({"api": {"keys": [{"name": "tests", "secret_file": "missing.txt"}]}},
                 "api.keys[0].secret_file: cannot read missing.txt: No such file or directory",
                 id="a secret file"),
    pytest.param({"histroy": {"retention_days": 30}},
                 "histroy: unknown section (known: api, collectors, custom_metrics, database, "
                 "history, logging, per_user_metrics, server)", id="a misspelt section"),
    pytest.param(SYNTAX_ERROR, "not valid YAML at line 2, column 1: expected ',' or ']', but "
                 "got '<stream end>'", id="the YAML"),
]


@pytest.fixture
def nextcloud(tmp_path: Path) -> dict[str, Any]:
    """A good config: a copy of the Nextcloud database, users and shares refreshed hourly."""
    database = tmp_path / "nextcloud.db"
    shutil.copy(NEXTCLOUD_DB, database)
    return config_yaml({"url": f"sqlite:///{database}", "platform": "nextcloud"}, tmp_path,
                       collectors=collectors("1h", "30s", only=("users", "shares")))


def in_file(path: Path, change: dict[str, Any] | str, message: str) -> str:
    """The message as given for the config file at `path`: a YAML error names the file."""
    return f"{path}: {message}" if isinstance(change, str) else message


def listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as probe:
        return probe.connect_ex((host, int(port))) == 0


def document(good: dict[str, Any], change: dict[str, Any] | str) -> str:
    return change if isinstance(change, str) else yaml.safe_dump({**good, **change})


@pytest.mark.parametrize(("change", "message"), BAD_CONFIGS)
def test_a_bad_config_stops_start_up_with_one_message_naming_the_yaml_path(
        tmp_path, nextcloud, change, message):
    path = tmp_path / "config.yaml"
    path.write_text(document(nextcloud, change))
    result = subprocess.run([sys.executable, "-m", "exporter", "run", "--config", str(path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert result.stderr == f"{path}: invalid configuration:\n  {in_file(path, change, message)}\n"
    # Nothing was started: no history store, nobody listening.
    assert not (tmp_path / "history.db").exists()
    assert not listening(nextcloud["server"]["listen"])


def test_a_history_store_in_the_platform_database_stops_start_up_and_check_config(
        tmp_path, nextcloud):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({**nextcloud, "history": {"url": nextcloud["database"]["url"]}}))
    platform = Path(nextcloud["database"]["url"].removeprefix("sqlite:///"))
    before = platform.read_bytes()
    message = ("history.url: names the platform database (database.url): the history store "
               "writes its tables, and the platform database is never written; give the "
               "history its own SQLite file or database")
    for command in ("run", "check-config"):
        result = subprocess.run([sys.executable, "-m", "exporter", command, "--config",
                                 str(path)], cwd=ROOT, capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        assert result.returncode == 2, command
        assert message in result.stderr, command
    assert platform.read_bytes() == before
    assert not listening(nextcloud["server"]["listen"])


def test_per_user_metrics_are_announced_with_a_warning_at_start_up(
        tmp_path, nextcloud, nextcloud_now):
    nextcloud["per_user_metrics"] = {"enabled": True}
    with DaemonProcess(tmp_path, nextcloud, as_of=nextcloud_now).start() as daemon:
        warning = daemon.wait_for_event("per_user_metrics_expose_user_ids")
    assert warning["level"] == "warning"
    assert (warning["route"], warning["basic_auth"]) == ("/metrics", False)
    assert "basic_auth_users" in warning["advice"]


@contextmanager
def scraping(daemon: DaemonProcess) -> Iterator[list[tuple[int, int, bool]]]:
    """Scrape /metrics and /-/ready in the background for the length of the block: each answer's
    statuses, and whether the metrics had the users' values."""
    answers: list[tuple[int, int, bool]] = []
    done = threading.Event()

    def scrape() -> None:
        while not done.is_set():
            status, body = daemon.get("/metrics")
            answers.append((status, daemon.get("/-/ready")[0],
                            b'usage_users{status="enabled"}' in body))

    thread = threading.Thread(target=scrape)
    thread.start()
    try:
        yield answers
    finally:
        done.set()
        thread.join()


def test_sighup_applies_a_new_interval_and_new_keys_while_the_server_keeps_serving(
        tmp_path, nextcloud, nextcloud_now):
    with DaemonProcess(tmp_path, nextcloud, as_of=nextcloud_now).start() as daemon:
        wait_until(lambda: daemon.all_succeeded(("users", "shares")))
        runs = daemon.collector_metric("runs_total", "users")
        values = daemon.values()
        before = daemon.get("/api/v1/snapshot", ROTATED_KEY)[0]
        changed = copy.deepcopy(nextcloud)
        changed["collectors"]["users"].update(interval="1s", timeout="1s")
        changed["api"]["keys"] = [{"name": "rotated", "secret": ROTATED_KEY}]
        daemon.write_config(changed)
        with scraping(daemon) as answers:
            daemon.send(signal.SIGHUP)
            reloaded = daemon.wait_for_event("config_reloaded")
            wait_until(lambda: daemon.collector_metric("runs_total", "users") >= runs + 3, 30,
                       "users to run every second")
        rotated = daemon.get("/api/v1/snapshot", ROTATED_KEY)[0]
        old = daemon.get("/api/v1/snapshot", API_KEY)[0]
        assert daemon.values() == values
    assert runs == 1  # the hourly interval, before the reload
    assert (before, rotated, old) == (403, 200, 403)
    assert reloaded["config"] == str(daemon.config_path)
    assert answers and set(answers) == {(200, 200, True)}


BAD_RELOADS = [
    *BAD_CONFIGS,
    pytest.param({"database": {"table_prefix": "nc_"}},
                 "the database does not look like nextcloud (table prefix 'nc_'): relation "
                 "activity: OperationalError: no such table: nc_users",
                 id="a database that does not look like Nextcloud"),
]


@pytest.mark.parametrize(("change", "message"), BAD_RELOADS)
def test_sighup_with_a_bad_config_logs_one_line_and_keeps_the_running_config(
        tmp_path, nextcloud, nextcloud_now, change, message):
    if isinstance(change, dict) and "database" in change:
        change = {"database": {**nextcloud["database"], **change["database"]}}
    with DaemonProcess(tmp_path, nextcloud, as_of=nextcloud_now).start() as daemon:
        wait_until(lambda: daemon.all_succeeded(("users", "shares")))
        values = daemon.values()
        daemon.config_path.write_text(document(nextcloud, change))
        daemon.send(signal.SIGHUP)
        failed = daemon.wait_for_event("reload_failed")
        kept = daemon.get("/api/v1/snapshot", API_KEY)[0], daemon.values()
        # And a good config is still taken afterwards.
        daemon.write_config(nextcloud)
        daemon.send(signal.SIGHUP)
        daemon.wait_for_event("config_reloaded")
    assert failed["config"] == str(daemon.config_path)
    assert failed["error"] == in_file(daemon.config_path, change, message)
    assert len(daemon.events("reload_failed")) == 1
    assert kept == (200, values)
    assert "Traceback" not in daemon.log_text()


def test_sighup_with_a_new_listen_address_says_it_needs_a_restart(
        tmp_path, nextcloud, nextcloud_now):
    with DaemonProcess(tmp_path, nextcloud, as_of=nextcloud_now).start() as daemon:
        moved = copy.deepcopy(nextcloud)
        moved["server"]["listen"] = f"127.0.0.1:{free_port()}"
        daemon.write_config(moved)
        daemon.send(signal.SIGHUP)
        warning = daemon.wait_for_event("restart_needed")
        daemon.wait_for_event("config_reloaded")
        still = daemon.get("/-/healthy")[0]
        elsewhere = listening(moved["server"]["listen"])
    assert warning["config"] == str(daemon.config_path)
    assert "takes effect at the next start" in warning["reason"]
    assert still == 200
    assert not elsewhere


def test_sigterm_stops_the_daemon_at_once_while_a_query_runs(
        tmp_path, postgres_server):
    url = postgres_server.create_database("signals")
    # A relation that takes two minutes to read, under a one-minute timeout.
    config = config_yaml(
        {"url": url, "platform": "custom", "relations": {
            "shares": "SELECT 'alice' AS owner, 'link' AS type, 0 AS password_protected "
                      "FROM pg_sleep(120)"}},
        tmp_path, collectors=collectors("2m", "1m", only=("shares",)))
    engine = create_engine(url)
    try:
        def running() -> int:
            with engine.connect() as conn:
                return int(conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                    "AND application_name = 'usage-exporter'")).scalar_one())

        with DaemonProcess(tmp_path, config).start(ready=False) as daemon:
            # Listening first: the start-up check also runs the relation (with LIMIT 0), and a
            # SIGTERM before the daemon listens meets Python's default handler.
            daemon.wait_for_event("listening")
            wait_until(running, 30, "the slow query to run")
            # The bound is the requirement: far less than the query's one-minute timeout.
            code = daemon.stop(seconds=10)
            left = running()
    finally:
        engine.dispose()
    assert code == 0
    assert left == 0
    assert [e["event"] for e in daemon.events()][-2:] == ["collector_cancelled", "stopped"]


def scrape_until_stopped(url: str, stop: threading.Event) -> None:
    """Scrapes on one keep-alive connection until `stop` or until the daemon has gone."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        while not stop.is_set():
            connection.request("GET", "/metrics")
            connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        pass
    finally:
        connection.close()


def test_sigterm_while_clients_are_being_answered_stops_cleanly(tmp_path, nextcloud):
    """The signal lands while the server's event loop is busy with requests: the daemon still
    ends at once, with exit code 0 and no traceback, round after round."""
    daemon = DaemonProcess(tmp_path, nextcloud)
    for _ in range(5):
        daemon.start()
        stop = threading.Event()
        clients = [threading.Thread(target=scrape_until_stopped, args=(daemon.url, stop))
                   for _ in range(4)]
        for client in clients:
            client.start()
        try:
            code = daemon.stop(seconds=10)
        finally:
            stop.set()
            for client in clients:
                client.join(10)
        assert code == 0
        assert daemon.events()[-1]["event"] == "stopped"
    assert "Traceback" not in daemon.log_text()


HISTORY_ROUTES = {  # route: the error body it answers in its own format before the first write
    "/api/v1/history/dau": {"code": 503.3, "message": HISTORY_PENDING},
    "/api/v1/history/user-status": {"code": 503.3, "message": HISTORY_PENDING},
    "/api/v2/insights/daus": {"message": HISTORY_PENDING},
    "/api/v2/insights/user-status-counts": {"message": HISTORY_PENDING},
}


def answer(url: str, path: str) -> tuple[int, dict[str, str], Any]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {API_KEY}"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        conn.close()


def test_history_routes_answer_503_until_the_first_history_write(tmp_path, postgres_server):
    """Each history route's first request, sent while the dau collector's first run (three
    seconds of reading) has not written the history: 503 with Retry-After in the route's own
    error format, and /-/ready not ready; once ready, every route answers the day recorded."""
    url = postgres_server.create_database("first_second")
    config = config_yaml({"url": url, "platform": "custom", "relations": {
        "activity": "SELECT 'ann' AS user_id, extract(epoch FROM now())::float8 - 60 "
                    "AS last_active FROM pg_sleep(3)",
        "status_changes": "SELECT 'ann' AS user_id, 'active' AS status, 0::float8 AS changed_at",
    }}, tmp_path, collectors=collectors("1h", "30s", only=("dau",)))
    with DaemonProcess(tmp_path, config).start(ready=False) as daemon:
        daemon.wait_for_event("listening")
        for path, error in HISTORY_ROUTES.items():
            status, headers, body = answer(daemon.url, path)
            assert (status, body) == (503, error), path
            assert headers["Retry-After"] == str(HISTORY_RETRY_AFTER), path
        assert daemon.get("/-/ready")[0] == 503  # so the answers came before the write
        wait_daemon_ready(daemon.url, daemon.process, daemon.log_path)
        today = daemon.api("/api/v1/history/dau")["entries"][-1]
        assert today["amount"] == 1
        assert daemon.api("/api/v1/history/user-status")["status_counts"]["active"][-1][
            "count"] == 1
        assert daemon.api("/api/v2/insights/daus")["entries"][-1]["amount"] == 1
        assert daemon.api("/api/v2/insights/user-status-counts")["status_counts"]["active"][-1][
            "count"] == 1
