"""The native API over a real socket: users paging and ordering, the streamed CSV files, the
OpenL2M-style stats, the audit log (also as the daemon wires it), the OpenAPI document checked
against the route table and by schemathesis, and hostile requests."""

from __future__ import annotations

import base64
import csv
import http.client
import io
import json
import socket
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from collectors.base import CollectorResult
from exporter import api
from exporter.api.audit import AuditLog
from exporter.api.csvout import safe_cell
from exporter.api.openapi import OPENAPI
from exporter.api.paging import sort_key
from exporter.config import ApiKey
from exporter.exposition import metric_rows, snapshot_json
from exporter.history import HistoryError
from exporter.http import App, Context, Request
from exporter.runner import Runner
from exporter.server import HttpServer
from exporter.snapshot import Bodies, SnapshotStore
from exporter.usercolumns import user_columns
from tests.conftest import API_KEY, NEXTCLOUD_DB, make_config
from tests.test_cli import api_get, free_port, running_daemon, write_config

KEYS = (ApiKey("tests", API_KEY),)
BEARER = {"Authorization": f"Bearer {API_KEY}"}


class Clock:
    """The audit log's clock, moved by the tests."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def request(base: str, path: str, headers: Mapping[str, str] | None = None,
            method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """One request with http.client, which sends the path exactly as given."""
    parts = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(method, path, headers=dict(BEARER if headers is None else headers))
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def get_json(base: str, path: str, status: int = 200) -> Any:
    code, headers, body = request(base, path)
    assert code == status, body
    assert headers["Content-Type"] == "application/json"
    return json.loads(body)


def serve(context: Context, today_zone: str = "UTC") -> tuple[HttpServer, str]:
    server = HttpServer(App(context, api.routes(context, today_zone)), "127.0.0.1", 0).start()
    return server, f"http://127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def runner(nextcloud_now) -> Iterator[Runner]:
    config = make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud",
                         collectors={"users": {"windows": ["1h", "1d", "7d", "31d"]}})
    runner = Runner(config, clock=lambda: nextcloud_now)
    runner.run_all()
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def clock(nextcloud_now) -> Clock:
    return Clock(nextcloud_now)


@pytest.fixture(scope="module")
def stats_runner(nextcloud_now) -> Iterator[tuple[str, Runner]]:
    """The daemon's context (live reads included) over a runner keeping only the 1h window."""
    config = make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud",
                         collectors={"users": {"windows": ["1h"]}})
    runner = Runner(config, clock=lambda: nextcloud_now)
    runner.run_all()
    server, url = serve(Context(lambda: runner.snapshot, KEYS, runner.history, runner.clock,
                                read=runner.read))
    yield url, runner
    server.stop()
    runner.close()


@pytest.fixture(scope="module")
def base_url(runner, clock) -> Iterator[str]:
    context = Context(lambda: runner.snapshot, KEYS, runner.history, runner.clock,
                      audit=AuditLog(runner.history, clock))
    server, url = serve(context)
    yield url
    server.stop()


def fake_store(columns: Mapping[str, Mapping[str, Any]]) -> SnapshotStore:
    store = SnapshotStore("custom", ["fake"], lambda snapshot: Bodies())
    store.record_success("fake", CollectorResult(metrics=(), users=columns), 0.0)
    return store


@pytest.fixture(scope="module")
def mixed_url() -> Iterator[str]:
    """Users whose `value` column mixes types and nulls; `zed` has no value at all."""
    store = fake_store({
        "value": {"a": 3, "b": "x", "c": None, "d": 1.5, "e": True, "f": "X", "g": Decimal("2"),
                  "h": "apple", "j": date(2026, 1, 1)},
        "display_name": {"a": "Ann =1+1", "b": "Bär", "zed": "=HYPERLINK(\"http://x\")"},
    })
    server, url = serve(Context(lambda: store.current, KEYS))
    yield url
    server.stop()


def walk(base: str, query: str, limit: int) -> tuple[list[str], list[int]]:
    """Every page of /api/v1/users: the user ids in order and each page's total."""
    ids: list[str] = []
    totals: list[int] = []
    token = None
    while True:
        suffix = f"&from={token}" if token else ""
        page = get_json(base, f"/api/v1/users?limit={limit}&{query}{suffix}")
        ids += [row["user_id"] for row in page["users"]]
        totals.append(page["total"])
        token = page.get("next_token")
        if token is None:
            assert len(page["users"]) <= limit
            return ids, totals
        assert len(page["users"]) == limit


# --- /api/v1/users ----------------------------------------------------------------------------


def test_pages_walk_every_user_once_in_order(runner, base_url):
    rows = list(runner.snapshot.user_rows())
    for order_by, direction in (("user_id", "f"), ("used_bytes", "b"), ("last_login", "f"),
                                ("display_name", "b")):
        ids, totals = walk(base_url, f"order_by={order_by}&dir={direction}", limit=4)
        assert sorted(ids) == sorted(row["user_id"] for row in rows)
        assert set(totals) == {len(rows)}
        present = [row for row in rows if row[order_by] is not None]
        expected = sorted(present, key=lambda r: sort_key(r[order_by], r["user_id"], False),
                          reverse=direction == "b")
        assert ids[:len(present)] == [row["user_id"] for row in expected], order_by


def test_rows_carry_every_column_and_total_counts_the_search(runner, base_url):
    page = get_json(base_url, "/api/v1/users?search_term=ALI&limit=1")
    assert page["total"] == 1 and "next_token" not in page
    [row] = page["users"]
    assert row == next(r for r in runner.snapshot.user_rows() if r["user_id"] == "alice")
    by_name = get_json(base_url, "/api/v1/users?search_term=anderson")
    assert [r["user_id"] for r in by_name["users"]] == ["alice"]
    assert get_json(base_url, "/api/v1/users?search_term=nobody-at-all") == {"users": [],
                                                                              "total": 0}


def test_mixed_types_and_nulls_sort_deterministically(mixed_url):
    forwards, _ = walk(mixed_url, "order_by=value", limit=2)
    # numbers (true = 1), text case-insensitively, other values by their text, nulls last
    assert forwards == ["e", "d", "g", "a", "h", "f", "b", "j", "c", "zed"]
    backwards, _ = walk(mixed_url, "order_by=value&dir=b", limit=3)
    assert backwards == ["j", "b", "f", "h", "a", "g", "d", "e", "zed", "c"]
    page = get_json(mixed_url, "/api/v1/users?order_by=value&search_term=b%C3%84R")
    assert page == {"users": [{"user_id": "b", "value": "x", "display_name": "Bär"}],
                    "total": 1}


def test_nan_and_decimals_get_keys_of_their_own_rank():
    assert sort_key(float("nan"), "u", False)[1:3] == (2, "nan")
    assert sort_key(Decimal("2.5"), "u", False)[2] == 2.5
    assert sort_key(None, "u", True) < sort_key(-1, "u", True)


def test_a_page_resumes_after_its_token_when_rows_change():
    store = fake_store({"used_bytes": {f"u{i}": i for i in range(6)}})
    server, url = serve(Context(lambda: store.current, KEYS))
    try:
        first = get_json(url, "/api/v1/users?order_by=used_bytes&limit=3")
        store.record_success("fake", CollectorResult(metrics=(), users={
            "used_bytes": {"new": 0, **{f"u{i}": i for i in range(1, 6)}}}), 0.0)
        second = get_json(url, f"/api/v1/users?order_by=used_bytes&limit=3&from="
                          f"{first['next_token']}")
    finally:
        server.stop()
    assert [r["user_id"] for r in first["users"]] == ["u0", "u1", "u2"]
    assert [r["user_id"] for r in second["users"]] == ["u3", "u4", "u5"]


def forged(position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


@pytest.mark.parametrize("token", [
    "not-a-token", "%00", "eyJ", "a" * 20000, forged([1, 2]), forged({"o": "user_id"}),
    forged({"o": "used_bytes", "d": False, "q": "", "k": [0, 1, "a", "a", "a"]}),
    forged({"o": "user_id", "d": False, "q": "", "k": [0, 0, "text", "", "a"]}),
    forged({"o": "user_id", "d": False, "q": "", "k": [0, 1, 5, "", "a"]}),
    forged({"o": "user_id", "d": False, "q": "", "k": [True, 1, "a", "a", "a"]}),
    forged({"o": "user_id", "d": False, "q": "", "k": [0, 0, float("nan"), "", "a"]}),
    base64.urlsafe_b64encode(b"[" * 5000).decode(),
])
def test_a_token_that_is_not_ours_is_refused(base_url, token):
    body = get_json(base_url, f"/api/v1/users?from={token}", status=400)
    assert body["code"] == 400.5 and body["message"].startswith("Parameter from ")


def test_a_token_only_continues_its_own_query(base_url):
    token = get_json(base_url, "/api/v1/users?limit=1&order_by=files")["next_token"]
    body = get_json(base_url, f"/api/v1/users?limit=1&order_by=used_bytes&from={token}", 400)
    assert "repeat its order_by, dir and search_term" in body["message"]


def test_bad_users_parameters_get_json_errors(base_url):
    body = get_json(base_url, "/api/v1/users?order_by=password", status=400)
    assert body["code"] == 400.6
    assert body["message"].startswith("Parameter order_by must be one of: user_id, ")
    assert "used_bytes" in body["message"]
    assert get_json(base_url, "/api/v1/users?dir=up", 400)["code"] == 400.7
    for limit in ("0", "1001", "-1", "ten", "9" * 5000):
        assert get_json(base_url, f"/api/v1/users?limit={limit}", 400)["code"] == 400.2
    assert get_json(base_url, "/api/v1/users?search_term=" + "x" * 257, 400)["code"] == 400.8


# --- CSV ----------------------------------------------------------------------------------------


def parse_csv(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode(), newline="")))


def test_users_csv_is_streamed_rfc4180_with_every_user(runner, base_url):
    status, headers, body = request(base_url, "/api/v1/users.csv")
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv")
    assert headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in headers
    assert 'filename="users.csv"' in headers["Content-Disposition"]
    header, *rows = parse_csv(body)
    users = list(runner.snapshot.user_rows())
    assert header == list(users[0])
    assert [row[0] for row in rows] == [user["user_id"] for user in users]
    alice = next(row for row in rows if row[0] == "alice")
    expected = next(user for user in users if user["user_id"] == "alice")
    assert alice[header.index("display_name")] == expected["display_name"] == "Alice Anderson"
    assert alice[header.index("used_bytes")] == str(expected["used_bytes"])
    assert alice[header.index("quota_bytes")] == str(expected["quota_bytes"])


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(mixed_url):
    header, *rows = parse_csv(request(mixed_url, "/api/v1/users.csv")[2])
    names = {row[0]: row[header.index("display_name")] for row in rows}
    assert names["zed"] == safe_cell('=HYPERLINK("http://x")') != '=HYPERLINK("http://x")'
    assert names["a"] == "Ann =1+1"


class CountingIds(Mapping[str, int]):
    """A per-user column that counts how many user ids were read from it."""

    def __init__(self, size: int) -> None:
        self.size, self.read = size, 0

    def __getitem__(self, user_id: str) -> int:
        return int(user_id[1:])

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[str]:
        for i in range(self.size):
            self.read += 1
            yield f"u{i}"


def test_users_csv_reads_users_only_as_it_writes_them():
    ids = CountingIds(200_000)
    store = fake_store({"used_bytes": ids})
    routes = api.routes(Context(lambda: store.current, KEYS))
    environ = {"PATH_INFO": "/api/v1/users.csv", "REQUEST_METHOD": "GET",
               "HTTP_AUTHORIZATION": f"Bearer {API_KEY}"}
    body = routes["/api/v1/users.csv"](Request.from_environ(environ)).body
    assert not isinstance(body, bytes)
    chunks = iter(body)
    first = next(chunks)
    assert first.startswith(b"user_id,used_bytes\nu0,0\n")
    assert ids.read < 100_000
    assert sum(chunk.count(b"\n") for chunk in chunks) + first.count(b"\n") == 200_001


def test_the_snapshot_with_users_is_the_same_json_written_a_batch_at_a_time():
    columns: dict[str, Mapping[str, Any]] = user_columns(
        [(f"u{n:04d}", f"Ünï {n} \"q\"", n * 1.5) for n in range(1300)], ("name", "score"))
    columns["sessions"] = {"u0007": 2, "zed": 1}
    store = fake_store(columns)
    server, url = serve(Context(lambda: store.current, KEYS))
    try:
        status, _, body = request(url, "/api/v1/snapshot?users=true")
    finally:
        server.stop()
    expected = snapshot_json(store.current, users=True)
    assert status == 200
    assert body == json.dumps(expected, ensure_ascii=False, default=str).encode()
    assert len(expected["users"]) == 1301


def test_the_snapshot_with_users_reads_users_only_as_it_writes_them():
    ids = CountingIds(200_000)
    store = fake_store({"used_bytes": ids})
    routes = api.routes(Context(lambda: store.current, KEYS))
    environ = {"PATH_INFO": "/api/v1/snapshot", "QUERY_STRING": "users=true",
               "REQUEST_METHOD": "GET", "HTTP_AUTHORIZATION": f"Bearer {API_KEY}"}
    chunks = iter(routes["/api/v1/snapshot"](Request.from_environ(environ)).body)
    assert b'"users": [' in next(chunks)
    assert next(chunks).startswith(b'{"user_id": "u0", "used_bytes": 0}')
    assert ids.read < 100_000


def test_system_csv_has_a_row_per_sample(runner, base_url):
    status, headers, body = request(base_url, "/api/v1/system.csv")
    assert status == 200 and "Content-Length" not in headers
    header, *rows = parse_csv(body)
    assert header == ["metric", "label", "value"]
    expected = list(metric_rows(runner.snapshot))
    assert rows == [[name, label, str(value)] for name, label, value in expected]
    # Labels keep their names; the values are the snapshot's.
    active = snapshot_json(runner.snapshot)["metrics"]["usage_users_active"]
    assert ["usage_users_active", "window=31d", str(active["31d"])] in rows


# --- /api/v1/stats --------------------------------------------------------------------------


def test_stats_are_openl2ms_windows_whatever_the_metrics_windows(stats_runner):
    """The users collector keeps only 1h here, yet all four windows answer, each counted from
    the activity relation as OpenL2M defines it; sessions and shares from the snapshot."""
    stats_url, runner = stats_runner
    now = runner.clock()
    rows = runner.read(["activity"], lambda conn, relations: conn.execute(
        select(relations["activity"])).all())
    midnight = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0).timestamp()

    def users(start: float, end: float = float("inf")) -> int:
        return len({user for user, last_active in rows if start <= last_active < end})

    body = get_json(stats_url, "/api/v1/stats")
    metrics = snapshot_json(runner.snapshot)["metrics"]
    assert set(metrics["usage_users_active"]) == {"1h"}
    assert body["timezone"] == "UTC"
    assert {key: item["value"] for key, item in body["usage"].items()} == {
        "users_last_hour": users(now - 3600), "users_today": users(midnight, midnight + 86400),
        "users_last_7_days": users(midnight - 7 * 86400),
        "users_last_31_days": users(midnight - 31 * 86400),
        "sessions_now": sum(metrics["usage_sessions"].values()),
        "shares_now": sum(metrics["usage_shares"].values())}
    assert 0 < body["usage"]["users_last_hour"]["value"] < body["usage"]["users_last_31_days"][
        "value"]
    assert all(isinstance(item["label"], str) for item in body["usage"].values())


def test_stats_read_the_activity_once_per_snapshot_and_day(nextcloud_now, tmp_path):
    """503.4 while the database cannot be read; once read, the same snapshot answers without
    it, until its "today" is another day."""
    database = tmp_path / "nextcloud.db"
    database.write_bytes(NEXTCLOUD_DB.read_bytes())
    runner = Runner(make_config(f"sqlite:///{database}", "nextcloud"),
                    clock=lambda: nextcloud_now)
    runner.run_all()
    clock = Clock(nextcloud_now)
    server, url = serve(Context(lambda: runner.snapshot, KEYS, clock=clock, read=runner.read))
    try:
        database.rename(tmp_path / "away.db")
        refused = get_json(url, "/api/v1/stats", status=503)
        assert refused["code"] == 503.4
        assert refused["message"].startswith("The database cannot be read: ")
        (tmp_path / "away.db").rename(database)
        answered = get_json(url, "/api/v1/stats")
        database.rename(tmp_path / "away.db")
        assert get_json(url, "/api/v1/stats") == answered
        clock.now += 86400
        assert get_json(url, "/api/v1/stats", status=503)["code"] == 503.4
    finally:
        server.stop()
        runner.close()


def test_stats_without_a_database_or_collectors_say_null(mixed_url):
    usage = get_json(mixed_url, "/api/v1/stats")["usage"]
    assert {item["value"] for item in usage.values()} == {None}


# --- /api/v1/audits -------------------------------------------------------------------------


def test_each_authorized_use_is_audited_without_secrets(runner, base_url, clock):
    clock.now = datetime(2030, 1, 2, 3, 4, 5, 678000, UTC).timestamp()
    request(base_url, f"/api/v1/users?limit=2&access_token=abc&note=Bearer+{API_KEY}&x=1&x=2")
    request(base_url, "/api/v1/users", headers={"Authorization": "Bearer wrong-key-123456"})
    request(base_url, "/api/v1/stats", headers={})
    clock.now += 1
    entries = get_json(base_url, "/api/v1/audits?limit=2")
    assert entries == [
        {"actorId": "tests", "action": "/api/v1/audits", "acteeId": None,
         "details": {"limit": "2"}, "loggedAt": "2030-01-02T03:04:06.678Z"},
        {"actorId": "tests", "action": "/api/v1/users", "acteeId": None,
         "details": {"limit": "2", "access_token": None, "note": None, "x": ["1", "2"]},
         "loggedAt": "2030-01-02T03:04:05.678Z"}]
    history_file = runner.config.history.url.removeprefix("sqlite:///")
    with open(history_file, "rb") as db:
        assert API_KEY.encode() not in db.read()


def test_audits_filter_by_action_and_time_and_page(base_url, clock):
    for day in (10, 11, 12):
        clock.now = datetime(2031, 5, day, 23, 30, tzinfo=UTC).timestamp()
        request(base_url, f"/api/v1/system.csv?day={day}")
        request(base_url, "/api/v1/stats")
    clock.now = datetime(2031, 6, 1, tzinfo=UTC).timestamp()
    days = get_json(base_url, "/api/v1/audits?action=/api/v1/system.csv&start=2031-05-11z"
                              "&end=2031-05-12")
    assert [e["details"]["day"] for e in days] == ["12", "11"]
    # 2031-05-12 01:00 in UTC+2 is 2031-05-11 23:00 UTC: the entries of the 11th at 23:30 on.
    later = get_json(base_url, "/api/v1/audits?start=2031-05-12T01:00%2B02:00&end=2031-05-11z")
    assert [e["action"] for e in later] == ["/api/v1/stats", "/api/v1/system.csv"]
    paged = get_json(base_url, "/api/v1/audits?start=2031-05-10&end=2031-05-12T23:59:59.999Z"
                               "&limit=2&offset=1")
    assert [(e["action"], e["loggedAt"][:10]) for e in paged] == [
        ("/api/v1/system.csv", "2031-05-12"), ("/api/v1/stats", "2031-05-11")]


@pytest.mark.parametrize("query", ["start=yesterday", "end=2031-13-01", "start=2031-05-10%00",
                                   "start=0001-01-01T00:00%2B01:00", "end=9999-12-31-14"])
def test_bad_audit_bounds_are_refused(base_url, query):
    assert get_json(base_url, f"/api/v1/audits?{query}", 400)["code"] == 400.9


def test_bad_audit_paging_is_refused(base_url):
    for query in ("offset=-1", "limit=0", "limit=100000", f"offset={2**63}"):
        assert get_json(base_url, f"/api/v1/audits?{query}", 400)["code"] == 400.2


def test_a_request_that_cannot_be_audited_is_refused(runner):
    def broken() -> Any:
        raise HistoryError("history store sqlite:///gone.db: disk I/O error")

    context = Context(lambda: runner.snapshot, KEYS, audit=AuditLog(broken))
    server, url = serve(context)
    try:
        body = get_json(url, "/api/v1/users", status=503)
        assert body["code"] == 503.2
        assert get_json(url, "/api/v1/audits", status=503)["code"] == 503.2
    finally:
        server.stop()


def test_without_an_audit_log_the_route_says_so(mixed_url):
    assert get_json(mixed_url, "/api/v1/audits", 404)["code"] == 404.3


def test_the_daemon_audits_and_takes_today_from_its_first_zone(tmp_path, nextcloud_now):
    port = free_port()
    config = write_config(tmp_path / "config.yaml", f"sqlite:///{NEXTCLOUD_DB}", port,
                          "collectors:\n  dau:\n    timezones: [Pacific/Kiritimati, UTC]\n")
    with running_daemon(config, port, nextcloud_now) as (url, _):
        stats = api_get(url + "/api/v1/stats")
        entries = api_get(url + "/api/v1/audits")
    assert stats["timezone"] == "Pacific/Kiritimati"
    assert stats["usage"]["users_today"]["value"] > 0
    assert [e["action"] for e in entries] == ["/api/v1/audits", "/api/v1/stats"]
    # real time, not --as-of
    assert abs(datetime.fromisoformat(entries[0]["loggedAt"]).timestamp() - time.time()) < 60
    assert API_KEY.encode() not in (tmp_path / "history.db").read_bytes()


# --- OpenAPI ----------------------------------------------------------------------------------


def test_openapi_documents_exactly_the_routes_served(runner, base_url):
    context = Context(lambda: runner.snapshot, KEYS)
    app = App(context, api.routes(context))
    assert set(OPENAPI["paths"]) == set(app.routes)
    assert get_json(base_url, "/api/v1/openapi.json") == json.loads(json.dumps(OPENAPI))


def test_openapi_is_a_valid_3_1_document():
    from openapi_spec_validator import validate

    validate(json.loads(json.dumps(OPENAPI)))
    for path, item in OPENAPI["paths"].items():
        assert set(item) == {"get"}, path
        assert item["get"]["responses"], path


def documented_integers() -> list[tuple[str, str, int, int]]:
    return [(path, parameter["name"], parameter["schema"]["minimum"],
             parameter["schema"]["maximum"])
            for path, item in OPENAPI["paths"].items() if path.startswith("/api/v1/")
            for parameter in item["get"].get("parameters", ())
            if parameter["schema"].get("type") == "integer"]


def test_the_documented_bounds_of_every_integer_parameter_are_the_ones_enforced(base_url):
    checked = documented_integers()
    assert {name for _, name, _, _ in checked} == {"limit", "offset", "days", "tz_offset"}
    for path, name, low, high in checked:
        for inside in (low, high):
            status, _, body = request(base_url, f"{path}?{name}={inside}")
            assert status != 400 or json.loads(body)["code"] != 400.2, (path, name, inside)
        for outside in (low - 1, high + 1):
            status, _, body = request(base_url, f"{path}?{name}={outside}")
            assert (status, json.loads(body)) == (400, {
                "code": 400.2, "message": f"Parameter {name} must be between {low} and "
                                          f"{high}."}), (path, name, outside)


def fuzz(base_url: str, operation: Any, mode: GenerationMode, checks: list[Any]) -> None:
    @settings(max_examples=12, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=base_url, headers=BEARER, checks=checks)

    check()


def test_schemathesis_finds_no_server_error_and_no_schema_violation(base_url):
    """Every operation, a few generated examples each, against the served document: valid
    requests, and invalid ones (which must be refused with a documented 4xx). Valid-looking
    values the schema cannot tell apart (an unknown column, a foreign token, a zone without
    history) are refused too, so schemathesis' positive_data_acceptance does not apply."""
    schema = schemathesis.openapi.from_url(base_url + "/api/v1/openapi.json", headers=BEARER)
    operations = [result.ok() for result in schema.get_all_operations()]
    # schemathesis leaves out the document it was loaded from
    assert {op.path for op in operations} | {"/api/v1/openapi.json"} == set(OPENAPI["paths"])
    conformance = [not_a_server_error, status_code_conformance, content_type_conformance,
                   response_headers_conformance, response_schema_conformance, ignored_auth]
    runs = [(op, GenerationMode.POSITIVE, conformance) for op in operations]
    runs += [(op, GenerationMode.NEGATIVE, [*conformance, negative_data_rejection])
             for op in operations if op.query]
    for operation, mode, checks in runs:
        fuzz(base_url, operation, mode, checks)


# --- hostile requests -------------------------------------------------------------------------

NATIVE_API = [path for path in OPENAPI["paths"] if path.startswith("/api/v1/")]
HOSTILE_QUERIES = [
    "limit=" + "9" * 100, "limit=-5", "limit=1e3", "limit=%00", "offset=-1",
    "offset=99999999999999999999999", "days=0", "days=" + "1" * 5000, "tz_offset=99",
    "from=" + "A" * 16000, "from=%FF%FE", "from=..%2F..%2Fetc%2Fpasswd",
    "order_by=%00", "order_by=../../etc/passwd", "order_by=%F0%9F%92%A9", "dir=%0D%0A",
    "search_term=" + "%E2%82%AC" * 300, "search_term=%00%00", "search_term=%F0%9F%92%A9",
    "tz=..%2F..%2F..%2Fetc%2Fpasswd", "tz=%00", "tz=UTC&tz_offset=1", "users=%00",
    "action=%00", "start=%00", "end=" + "9" * 300, "start=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%96",
    "dir=f%0D%0ASet-Cookie:%20evil=1", "x=%0D%0ALocation:%20http://evil",
    "&&&==&=", "%zz=%zz", "a[]=1&a[]=2", "limit=1&limit=2&limit=x",
]


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_hostile_parameters_get_4xx_json_or_a_normal_answer(base_url, query):
    for path in NATIVE_API:
        status, headers, body = request(base_url, f"{path}?{query}")
        assert status < 500, (path, query, body[:300])
        assert "Set-Cookie" not in headers and "Location" not in headers
        assert b"Traceback" not in body
        if status >= 400:
            assert headers["Content-Type"] == "application/json", (path, query)
            error = json.loads(body)
            assert set(error) == {"code", "message"} and int(error["code"]) == status


@pytest.mark.parametrize("path", [
    "/api/v1/../../etc/passwd", "/api/v1/users/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
    "/api/v1/users%00.csv", "/api/v1/users.csv/..", "/api/v1//users", "/API/V1/USERS",
    "/api/v1/users%0D%0ASet-Cookie:%20x=1", "/" + "a" * 8000, "/api/v1/\u00fcsers",
])
def test_hostile_paths_are_not_found(base_url, path):
    status, headers, body = request(base_url, urllib.parse.quote(path, safe="/%:"))
    assert status == 404 and json.loads(body) == {"code": 404.1, "message": "Not found."}
    assert "Set-Cookie" not in headers


def raw_exchange(base: str, data: bytes) -> bytes:
    parts = urllib.parse.urlsplit(base)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize("head", [
    b"GET /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + API_KEY.encode()
    + b"\rX-Injected: 1\r\nConnection: close\r\n\r\n",
    b"GET /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \x00"
    + API_KEY.encode() + b"\r\nConnection: close\r\n\r\n",
    b"GET /api/v1/users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
    b"Connection: close\r\n\r\n",
    b"GET /api/v1/users HTTP/1.1\r\nHost: x\r\nOC-MetricsApiKey: " + b"k" * 100_000
    + b"\r\nConnection: close\r\n\r\n",
    b"GET /api/v1/users?search_term=" + b"x" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n"
    b"Connection: close\r\n\r\n",
])
def test_hostile_headers_are_refused_without_a_traceback(base_url, head):
    answer = raw_exchange(base_url, head)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:300]
    head_lines = answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert b"Traceback" not in answer
    assert not any(line.startswith(b"X-Injected") for line in head_lines)
    assert request(base_url, "/api/v1/users?limit=1")[0] == 200  # still serving


def test_custom_queries_are_in_the_snapshot_beside_the_collectors(nextcloud_now):
    from exporter.daemon import application
    from exporter.http import FailedAttempts

    sql = "SELECT share_type, COUNT(*) AS nextcloud_shares FROM oc_share GROUP BY share_type"
    config = make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud", custom_metrics=[{
        "name": "shares", "sql": sql, "metrics": [{"name": "nextcloud_shares", "help": "Shares.",
                                                   "labels": ["share_type"]}]}])
    runner = Runner(config, clock=lambda: nextcloud_now)
    runner.run_all()
    server = HttpServer(application(runner, FailedAttempts()), "127.0.0.1", 0).start()
    try:
        body = get_json(f"http://127.0.0.1:{server.port}", "/api/v1/snapshot")
        _, _, metrics = request(f"http://127.0.0.1:{server.port}", "/metrics")
    finally:
        server.stop()
        runner.close()
    assert body["collectors"]["sql:shares"]["state"] == "ok"
    assert body["collectors"]["users"]["state"] == "ok"
    with sqlite3.connect(f"file:{NEXTCLOUD_DB}?mode=ro", uri=True) as db:
        expected = {str(t): n for t, n in db.execute(sql)}
    shares = {s["labels"]["share_type"]: s["value"] for s in body["metrics"]["nextcloud_shares"]}
    assert shares == expected
    for share_type, count in shares.items():
        assert f'nextcloud_shares{{share_type="{share_type}"}} {float(count)}' in metrics.decode()
