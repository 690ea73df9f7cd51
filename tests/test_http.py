"""The HTTP server over a real socket: content negotiation, gzip, health, keys, JSON errors."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter import api
from exporter.config import ApiKey
from exporter.http import App, Context, authenticate
from exporter.runner import Runner
from exporter.server import HttpServer
from tests.conftest import API_KEY, NEXTCLOUD_DB, make_config


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def app(runner: Runner, keys: tuple[ApiKey, ...]) -> App:
    context = Context(lambda: runner.snapshot, keys, runner.history, runner.clock)
    return App(context, api.routes(context))


@pytest.fixture(scope="module")
def runner(nextcloud_now) -> Iterator[Runner]:
    runner = Runner(make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud"),
                    clock=lambda: nextcloud_now)
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def base_url(runner) -> Iterator[str]:
    server = HttpServer(app(runner, runner.config.api_keys), "127.0.0.1", 0)
    server.start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


def test_not_ready_until_every_collector_ran_once(runner, base_url):
    assert get(base_url + "/-/healthy")[0] == 200
    assert get(base_url + "/-/ready")[0] == 503
    runner.run_all()
    assert get(base_url + "/-/ready")[0] == 200


def test_metrics_in_text_format_by_default(runner, base_url):
    runner.run_all()
    status, headers, body = get(base_url + "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in parse_text(body.decode())}
    assert {"usage_users", "usage_users_active", "usage_shares", "usage_collector_success",
            "usage_exporter_build_info"} <= names


def test_openmetrics_when_asked_and_gzip_when_accepted(runner, base_url):
    runner.run_all()
    status, headers, body = get(base_url + "/metrics", Accept="application/openmetrics-text",
                                **{"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    text = gzip.decompress(body).decode()
    assert text.endswith("# EOF\n")
    types = {family.name: family.type for family in parse_om(text)}
    assert types["usage_user_storage_used_bytes"] == "gaugehistogram"
    assert types["usage_collector_runs"] == "counter"


def test_scrapes_serve_the_bytes_rendered_at_refresh(runner, base_url):
    runner.run_all()
    assert get(base_url + "/metrics")[2] == runner.snapshot.bodies.text


SCRAPE_HEADERS = [{}, {"Accept-Encoding": "gzip"},
                  {"Accept": "application/openmetrics-text; version=1.0.0"},
                  {"Accept": "application/openmetrics-text; version=1.0.0",
                   "Accept-Encoding": "gzip"}]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("headers", SCRAPE_HEADERS)
@pytest.mark.parametrize("path", ["/metrics", "/-/healthy", "/-/ready"])
def test_scrapes_answered_in_the_loop_as_by_the_app(runner, base_url, method, headers, path):
    # A percent-encoded path is left to the WSGI app: the server's fast path must answer alike.
    runner.run_all()
    encoded = path[:-1] + f"%{ord(path[-1]):02X}"
    answers = []
    for target in (path, encoded):
        request = urllib.request.Request(base_url + target, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            answers.append((response.status, response.read(),
                            sorted((k, v) for k, v in response.headers.items() if k != "Date")))
    assert answers[0] == answers[1]
    status, body, head = answers[0]
    whole = get(base_url + path, **headers)[2]
    assert status == 200 and int(dict(head)["Content-Length"]) == len(whole) > 0
    assert body == (b"" if method == "HEAD" else whole)


def test_api_refuses_without_a_key_and_with_a_wrong_one(base_url):
    status, _, body = get(base_url + "/api/v1/snapshot")
    assert (status, json.loads(body)["code"]) == (401, 401.1)
    status, _, body = get(base_url + "/api/v1/snapshot", Authorization="Bearer wrong-key")
    assert (status, json.loads(body)["code"]) == (403, 403.1)


def test_api_answers_with_a_valid_key(runner, base_url):
    runner.run_all()
    status, headers, body = get(base_url + "/api/v1/snapshot?users=true",
                                Authorization=f"Bearer {API_KEY}")
    assert status == 200 and headers["Content-Type"] == "application/json"
    snapshot = json.loads(body)
    assert snapshot["metrics"]["usage_users"]["disabled"] == 2
    assert {row["user_id"] for row in snapshot["users"]} >= {"alice", "dave", "victor"}


def test_api_fails_closed_when_no_key_is_configured(runner):
    server = HttpServer(app(runner, ()), "127.0.0.1", 0).start()
    try:
        status, _, body = get(f"http://127.0.0.1:{server.port}/api/v1/snapshot",
                              Authorization=f"Bearer {API_KEY}")
    finally:
        server.stop()
    assert status == 403
    assert json.loads(body)["message"].startswith("The API is disabled")


def test_bad_parameters_and_unknown_routes_get_json_errors(base_url):
    status, _, body = get(base_url + "/api/v1/snapshot?users=maybe",
                          Authorization=f"Bearer {API_KEY}")
    assert (status, json.loads(body)["code"]) == (400, 400.1)
    status, headers, body = get(base_url + "/nope/../../etc/passwd")
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"code": 404.1, "message": "Not found."}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
@pytest.mark.parametrize("path", ["/metrics", "/api/v1/snapshot", "/-/healthy"])
def test_other_methods_are_refused_with_the_methods_allowed(base_url, method, path):
    request = urllib.request.Request(base_url + path, data=b"x", method=method)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 405
    assert caught.value.headers["Allow"] == "GET, HEAD"
    assert json.loads(caught.value.read())["code"] == 405.1


def test_every_key_is_compared_and_the_matching_one_named():
    keys = [ApiKey("reports", "a" * 20), ApiKey("cron", "b" * 20)]
    assert authenticate(keys, "b" * 20).name == "cron"
