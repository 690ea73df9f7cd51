"""The drop-in routes' answers, good and bad, conform to the OpenAPI document: every status,
media type, header and body the ownCloud metrics app routes and the Coder routes give on an
ownCloud database (where the ownCloud routes are served) is documented, checked by schemathesis'
response validation. The schemathesis fuzz in test_native.py runs on Nextcloud, where the
ownCloud routes only answer 404."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
import schemathesis

from exporter import api
from exporter.api.openapi import OPENAPI
from exporter.daemon import application
from exporter.http import App, Context, FailedAttempts
from exporter.runner import Runner
from exporter.server import HttpServer
from tests.api.test_owncloud import hostile_db, owncloud_runner
from tests.conftest import API_KEY, NEXTCLOUD_DB, OWNCLOUD_DB, make_config

SCHEMA = schemathesis.openapi.from_dict(json.loads(json.dumps(OPENAPI)))
OCS = "/ocs/v{}.php/apps/metrics/api/v1/metrics"
DOWNLOADS = ["/index.php/apps/metrics/download-api",
             "/index.php/apps/metrics/download-api/users",
             "/index.php/apps/metrics/download-api/system"]
DAUS, STATUS_COUNTS = "/api/v2/insights/daus", "/api/v2/insights/user-status-counts"
OPENL2M = "/api/stats/"
WRONG = "wrong-key-0123456789abcdef"
ALL_FLAGS = "users=true&files=true&shares=true&quota=true&userData=true"


def serve(context: Context) -> tuple[HttpServer, str]:
    server = HttpServer(App(context, api.routes(context)), "127.0.0.1", 0).start()
    return server, f"http://127.0.0.1:{server.port}"


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    path = hostile_db(tmp_path_factory.mktemp("dropins") / "owncloud.db")
    runner = owncloud_runner(f"sqlite:///{path}")
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def base_url(runner: Runner) -> Iterator[str]:
    server, url = serve(Context(lambda: runner.snapshot, runner.config.api_keys, runner.history,
                                runner.clock))
    yield url
    server.stop()


def conforms(base: str, path: str, query: str = "", headers: dict[str, str] | None = None,
             ) -> requests.Response:
    """GET it and check the answer against the document; returns the answer."""
    response = requests.get(f"{base}{path}{'?' + query if query else ''}",
                            headers=headers or {}, timeout=30)
    SCHEMA[path]["GET"].validate_response(response)
    return response


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(("query", "headers", "status"), [
    (f"{ALL_FLAGS}&format=json", {"OC-MetricsApiKey": API_KEY}, 200),
    (f"{ALL_FLAGS}&format=xml", {"OC-MetricsApiKey": API_KEY}, 200),
    ("users=true", {"OC-MetricsApiKey": API_KEY, "Accept": "application/json"}, 200),
    ("", {"Authorization": f"Bearer {API_KEY}"}, 200),
    ("format=json", {"OC-MetricsApiKey": WRONG}, None),
    ("format=xml", {}, None),
    ("format=yaml", {"OC-MetricsApiKey": API_KEY}, 500),
])
def test_ocs_answers_are_documented(base_url, version, query, headers, status):
    """A refusal is HTTP 200 on v1 (meta.statuscode 996) and 500 on v2."""
    response = conforms(base_url, OCS.format(version), query, headers)
    assert response.status_code == (status or (200 if version == 1 else 500))


@pytest.mark.parametrize("path", DOWNLOADS)
@pytest.mark.parametrize(("headers", "status"), [
    ({"OC-MetricsApiKey": API_KEY}, 200), ({"OC-MetricsApiKey": WRONG}, 500), ({}, 500)])
def test_download_answers_are_documented(base_url, path, headers, status):
    assert conforms(base_url, path, headers=headers).status_code == status


def test_answers_before_the_collectors_ran_are_documented(runner):
    fresh = Runner(runner.config, clock=runner.clock)
    server, url = serve(Context(lambda: fresh.snapshot, fresh.config.api_keys))
    key = {"OC-MetricsApiKey": API_KEY}
    try:
        for path in DOWNLOADS:
            assert conforms(url, path, headers=key).json() == ["Could not get csv data."]
        assert conforms(url, OCS.format(2), f"{ALL_FLAGS}&format=json", key).status_code == 500
        for path in (DAUS, STATUS_COUNTS):  # no history store
            assert conforms(url, path, headers={"Coder-Session-Token": API_KEY}).status_code == 404
    finally:
        server.stop()
        fresh.close()


@pytest.mark.parametrize(("path", "query", "headers", "status"), [
    (DAUS, "tz_offset=-4", {"Coder-Session-Token": API_KEY}, 200),
    (STATUS_COUNTS, "timezone=UTC&interval=86400", {"Authorization": f"Bearer {API_KEY}"}, 200),
    (DAUS, "", {}, 401),
    (STATUS_COUNTS, "", {"Coder-Session-Token": WRONG}, 401),
    (DAUS, "tz_offset=x&days=7", {"Coder-Session-Token": API_KEY}, 400),
    (STATUS_COUNTS, "timezone=Nowhere/Land", {"Coder-Session-Token": API_KEY}, 400),
    (STATUS_COUNTS, "timezone=UTC&tz_offset=2", {"Coder-Session-Token": API_KEY}, 400),
    (STATUS_COUNTS, "timezone=Asia/Tokyo", {"Coder-Session-Token": API_KEY}, 400),
])
def test_coder_answers_are_documented(base_url, path, query, headers, status):
    assert conforms(base_url, path, query, headers).status_code == status


@pytest.mark.parametrize(("headers", "status"), [
    ({"Authorization": f"Token {API_KEY}"}, 404), ({"Authorization": f"Token {WRONG}"}, 401),
    ({}, 401)])
def test_openl2m_answers_on_a_platform_without_events_are_documented(base_url, headers, status):
    """The 200 is checked against the document by tests/platforms/test_custom.py."""
    response = conforms(base_url, OPENL2M, headers=headers)
    assert response.status_code == status


@pytest.mark.parametrize("path", [OCS.format(1), OCS.format(2), *DOWNLOADS, DAUS, STATUS_COUNTS,
                                  OPENL2M])
def test_too_many_wrong_keys_are_documented(runner, path):
    attempts = FailedAttempts(limit=1, window=3600)
    context = Context(lambda: runner.snapshot, runner.config.api_keys, runner.history,
                      runner.clock, attempts=attempts)
    server, url = serve(context)
    try:
        conforms(url, path, "format=json", {"OC-MetricsApiKey": WRONG})
        response = conforms(url, path, "format=json", {"OC-MetricsApiKey": API_KEY})
        assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    finally:
        server.stop()


def test_the_owncloud_routes_elsewhere_answer_the_documented_404():
    nextcloud = Runner(make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud"))
    server, url = serve(Context(lambda: nextcloud.snapshot, nextcloud.config.api_keys))
    try:
        for path in (OCS.format(1), OCS.format(2), *DOWNLOADS):
            response = conforms(url, path, headers={"OC-MetricsApiKey": API_KEY})
            assert response.status_code == 404 and response.json()["code"] == 404.1
    finally:
        server.stop()
        nextcloud.close()


@pytest.mark.parametrize("version", ["1.4.0", "legacy"])
def test_both_app_shapes_on_the_real_fixture_are_documented(version, owncloud_now):
    config = make_config(f"sqlite:///{OWNCLOUD_DB}", "owncloud",
                         database={"metrics_app_version": version})
    runner = Runner(config, clock=lambda: owncloud_now)
    assert runner.run_all().failures == {}
    server = HttpServer(application(runner, FailedAttempts()), "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        body = conforms(url, OCS.format(1), f"{ALL_FLAGS}&format=json",
                        {"OC-MetricsApiKey": API_KEY}).json()
        sessions = {type(entry["activeSessions"])
                    for entry in body["ocs"]["data"]["userData"].values()}
        assert sessions == ({list} if version == "legacy" else {int})
    finally:
        server.stop()
        runner.close()
