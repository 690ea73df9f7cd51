"""The admin page at / in Debian's headless Chromium, driven by Playwright, over the real server:
it asks for a key, shows the API's refusal of a wrong one, and with the right one shows the
snapshot, collector health, top users (hostile display names stay text) and the DAU chart.
For Nextcloud and Synapse the run saves screenshots at 1280 and 390 px wide to tests/artifacts/
(admin-<platform>-<width>.png); at both widths no table cell's content overflows it."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Page,
    Request,
    expect,
    sync_playwright,
)

from exporter import api
from exporter.exposition import snapshot_json
from exporter.http import App, Context
from exporter.runner import Runner
from exporter.server import HttpServer
from tests.conftest import (
    API_KEY,
    NEXTCLOUD_DB,
    ROOT,
    SYNAPSE,
    fixture_copy,
    make_config,
    read_json,
)
from tests.servers import _require

HOSTILE = "<img src=x onerror=alert(1)>\u202e=cmd|' /C calc'!A0"
LONG = "W" * 10_240
# Root in a closed network: no sandbox, nothing that phones home; Playwright adds --headless and
# passes the fresh profile directory as --user-data-dir.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ARTIFACTS = ROOT / "tests" / "artifacts"
WIDTHS = (1280, 390)
SYNAPSE_DB = fixture_copy(SYNAPSE / "homeserver.db")


@pytest.fixture(scope="module")
def runner(tmp_path_factory, nextcloud_now) -> Iterator[Runner]:
    tmp = tmp_path_factory.mktemp("admin")
    db = tmp / "nextcloud.db"
    shutil.copyfile(NEXTCLOUD_DB, db)
    # erin and bob use the most storage, so both names are among the top users.
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executemany("UPDATE oc_users SET displayname = ? WHERE uid = ?",
                         [(HOSTILE, "erin"), (LONG, "bob")])
    now = [float(nextcloud_now)]
    runner = Runner(make_config(f"sqlite:///{db}", "nextcloud",
                                history={"url": f"sqlite:///{tmp / 'history.db'}"}),
                    clock=lambda: now[0])
    # The exporter ran through the last month (each day's run records who logged in that day),
    # except for a week it was down, which has no data.
    for days_ago in [*range(29, 22, -1), *range(15, 0, -1)]:
        now[0] = nextcloud_now - days_ago * 86400
        runner.run("dau")
    now[0] = nextcloud_now
    runner.run_all()
    yield runner
    runner.close()


@contextmanager
def serving(runner: Runner) -> Iterator[str]:
    context = Context(lambda: runner.snapshot, runner.config.api_keys, runner.history,
                      runner.clock)
    server = HttpServer(App(context, api.routes(context)), "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def served(request) -> Iterator[Callable[[str], str]]:
    """The URL of the real server over a runner fixture (by name), started once a module."""
    with ExitStack() as stack:
        urls: dict[str, str] = {}

        def url(runner_fixture: str) -> str:
            if runner_fixture not in urls:
                runner = request.getfixturevalue(runner_fixture)
                urls[runner_fixture] = stack.enter_context(serving(runner))
            return urls[runner_fixture]

        yield url


@pytest.fixture(scope="module")
def base_url(served) -> str:
    return served("runner")


@pytest.fixture(scope="module")
def synapse_runner(tmp_path_factory) -> Iterator[Runner]:
    """The Synapse fixture at the instant its answers were captured, its past days read back."""
    tmp = tmp_path_factory.mktemp("admin-synapse")
    captured = read_json(SYNAPSE / "manifest.json")["finished_at_s"]
    runner = Runner(make_config(f"sqlite:///{SYNAPSE_DB}", "synapse",
                                history={"url": f"sqlite:///{tmp / 'history.db'}"}),
                    clock=lambda: float(captured))
    runner.run_all()
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[BrowserContext]:
    chromium = _require(shutil.which("chromium"), "chromium")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            tmp_path_factory.mktemp("chromium-profile"), executable_path=chromium,
            args=CHROMIUM_ARGS, headless=True, locale="en-US", timezone_id="Europe/Berlin",
            viewport={"width": 1280, "height": 900})
        yield context
        context.close()


@dataclass
class Tab:
    page: Page
    requests: list[Request] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.set_default_timeout(10_000)
        self.page.on("request", lambda request: self.requests.append(request))
        self.page.on("dialog", self.on_dialog)
        self.page.on("console", self.on_console)

    def on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.csp_violations.append(message.text)

    def api_requests(self) -> list[str]:
        urls = (urlsplit(request.url) for request in self.requests)
        return [f"{url.path}?{url.query}".rstrip("?") for url in urls
                if url.path.startswith("/api/")]


@pytest.fixture
def tab(browser) -> Iterator[Tab]:
    """A new tab, so a new sessionStorage; any dialog or CSP violation fails the test."""
    tab = Tab(browser.new_page())
    yield tab
    tab.page.close()
    assert tab.dialogs == [], "a script from the data ran"
    assert tab.csp_violations == []


def enter_key(page: Page, key: str) -> None:
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Show usage").click()


def api_get(base_url: str, path: str):
    request = urllib.request.Request(base_url + path,
                                     headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def iec(value: float) -> str:
    """A byte count as the page writes it (powers of 1024, at most one decimal)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    unit = 0
    while abs(value) >= 1024 and unit < len(units) - 1:
        value, unit = value / 1024, unit + 1
    return f"{round(value, 1):g} {units[unit]}"


def overflowing_cells(page: Page) -> list[str]:
    """Table cells (and the page itself) whose content is wider than they are."""
    return page.evaluate("""() => {
      const wide = [...document.querySelectorAll("#dashboard td, #dashboard th")]
        .filter((cell) => cell.scrollWidth > cell.clientWidth + 1)
        .map((cell) => cell.textContent.slice(0, 60));
      const root = document.documentElement;
      return root.scrollWidth > root.clientWidth ? [...wide, "<the page>"] : wide;
    }""")


def screenshots(page: Page, platform: str) -> None:
    """At each width: no cell overflows, and a full-page screenshot in tests/artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_function(f"() => document.documentElement.clientWidth === {width}")
        page.wait_for_timeout(100)  # the chart redraws on resize
        assert overflowing_cells(page) == [], f"{platform} at {width} px"
        page.screenshot(path=ARTIFACTS / f"admin-{platform}-{width}.png", full_page=True)
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def summary_words(name: str, histogram: dict) -> dict[str, str]:
    """What the page says of a gauge histogram: count, total, and the bounds that hold half and
    nine tenths of it, read from its cumulative buckets."""
    bounds = sorted((float(le), n) for le, n in histogram["buckets"].items())
    words = {"count": f"count {histogram['count']:,}", "total": f"total {iec(histogram['sum'])}"}
    for label, share in (("median", 0.5), ("90th percentile", 0.9)):
        index = next(i for i, (_, n) in enumerate(bounds) if n >= share * histogram["count"])
        bound = bounds[index][0]
        words[label] = (f"{label} more than {iec(bounds[index - 1][0])}" if bound == float("inf")
                        else f"{label} at most {iec(bound)}")
    return words


def test_the_page_is_self_contained_and_sent_with_strict_headers(base_url):
    with urllib.request.urlopen(base_url + "/", timeout=10) as response:
        headers, body = response.headers, response.read()
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    csp = headers["Content-Security-Policy"]
    assert csp.startswith("default-src 'none'; script-src 'sha256-")
    assert "unsafe" not in csp and "frame-ancestors 'none'" in csp
    assert (headers["X-Content-Type-Options"], headers["X-Frame-Options"],
            headers["Referrer-Policy"], headers["Cache-Control"]) == (
        "nosniff", "DENY", "no-referrer", "no-store")
    assert not re.search(rb"(src|href)=\"(https?:)?//", body)
    assert b".innerHTML" not in body and b"insertAdjacentHTML" not in body


def test_the_page_asks_for_a_key_and_shows_the_apis_refusal(tab, base_url):
    page = tab.page
    page.goto(base_url + "/")
    expect(page.get_by_role("heading", name="usage-exporter")).to_be_visible()
    expect(page.get_by_role("link", name="Metrics")).to_have_attribute("href", "/metrics")
    expect(page.get_by_label("API key")).to_be_focused()
    assert tab.api_requests() == []

    enter_key(page, "wrong-key-0123456789")
    expect(page.get_by_role("alert")).to_have_text("The API key is not valid.")
    expect(page.locator("#dashboard")).to_be_hidden()
    # Refused at the first request: no per-user data was ever asked for, and the key is dropped.
    assert tab.api_requests() == ["/api/v1/snapshot"]
    assert page.evaluate("sessionStorage.length") == 0


def test_the_right_key_shows_the_snapshot_with_hostile_names_as_text(tab, base_url, runner):
    page = tab.page
    page.goto(base_url + "/")
    enter_key(page, API_KEY)
    expect(page.locator("#updated")).to_have_text(re.compile("^Updated "))
    snapshot = snapshot_json(runner.snapshot, users=True)
    metrics = snapshot["metrics"]

    # Per-user rows only after the key was accepted, and every request carried it.
    api_requests = tab.api_requests()
    assert api_requests[0] == "/api/v1/snapshot"
    assert "/api/v1/snapshot?users=true" in api_requests
    assert {request.headers["authorization"] for request in tab.requests
            if "/api/" in request.url} == {f"Bearer {API_KEY}"}
    assert page.evaluate("Object.keys(sessionStorage)") == ["usage-exporter-api-key"]
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []

    expect(page.locator("#platform")).to_have_text("Nextcloud")
    tile = page.locator("#tiles > div")
    expect(tile.filter(has_text="Accounts").locator(".tile-value")).to_have_text(
        str(sum(metrics["usage_users"].values())))
    expect(tile.filter(has_text="last 24 hours").locator(".tile-value")).to_have_text(
        str(metrics["usage_users_active"]["1d"]))

    def metric(name: str):
        return page.locator(f'#metrics tr[data-metric="{name}"] td').nth(1)

    # Each system value is labelled in words (its description), its metric name beneath.
    for name, words in snapshot["metric_help"].items():
        label = page.locator(f'#metrics tr[data-metric="{name}"] td').first
        expect(label).to_have_text(words + name)
        assert "Refreshed on a schedule" not in words

    expect(metric("usage_files")).to_have_text(f"{metrics['usage_files']:,}")
    for status, count in metrics["usage_users"].items():
        expect(metric("usage_users").locator(f'[data-label="{status}"]')).to_have_text(
            f"{status} {count:,}")
    expect(metric("usage_storage_used_bytes").locator("span")).to_have_attribute(
        "title", f"{metrics['usage_storage_used_bytes']:,} bytes")
    name = "usage_user_storage_used_bytes"
    for label, words in summary_words(name, metrics[name]).items():
        expect(metric(name).locator(f'[data-label="{label}"]')).to_have_text(words)
    # A ratio histogram reads in percent, its mean instead of a meaningless total.
    ratios = metric("usage_user_quota_utilization_ratio")
    expect(ratios.locator('[data-label="mean"]')).to_have_text(re.compile(r"^mean [\d.]+%$"))
    expect(ratios.locator('[data-label="median"]')).to_have_text(re.compile(r"%$"))

    for name, status in snapshot["collectors"].items():
        expect(page.locator(f'#collectors tr[data-collector="{name}"] .badge')).to_have_text(
            status["state"].replace("_", " "))
    expect(page.locator("#collectors")).to_contain_text(snapshot["collectors"]["media"]
                                                        ["last_error"])

    by_storage = sorted((u for u in snapshot["users"] if u["used_bytes"] is not None),
                        key=lambda u: -u["used_bytes"])[:10]
    names = page.locator("#users tr td:first-child bdi:first-child")
    expect(names).to_have_count(10)
    assert names.all_text_contents() == [u["display_name"] or u["user_id"] for u in by_storage]
    assert names.all_text_contents()[:2] == [HOSTILE, LONG]
    assert names.first.evaluate("node => node.childElementCount") == 0
    assert page.locator("img").count() == 0
    # The 10 kB name stays on one line inside its card.
    long_name = names.nth(1).bounding_box()
    card = page.locator("#users").bounding_box()
    assert long_name is not None and card is not None
    assert long_name["height"] < 40 and long_name["x"] + long_name["width"] <= card["x"] + \
        card["width"]

    history = api_get(base_url, "/api/v1/history/dau?days=30&tz=UTC")
    entries = history["entries"]
    assert len(entries) >= 3
    bars = page.locator("#dau rect.bar")
    expect(bars).to_have_count(len(entries))
    assert [(bar.get_attribute("data-date"), int(bar.get_attribute("data-amount") or -1))
            for bar in bars.all()] == [(e["date"], e["amount"]) for e in entries]
    # The chart runs to today (the exporter's clock, in the history's zone); each day in it
    # without an entry is drawn as having no data, and the week the exporter was down is such.
    today = datetime.fromtimestamp(runner.clock(), ZoneInfo("UTC")).date()
    days = [today - timedelta(days=n) for n in range(29, -1, -1)]
    assert (history["from"], history["to"]) == (days[0].isoformat(), today.isoformat())
    recorded = {e["date"] for e in entries}
    missing = [d.isoformat() for d in days if d.isoformat() not in recorded]
    assert (today - timedelta(days=19)).isoformat() in missing
    no_data = page.locator("#dau rect.no-data")
    assert [r.get_attribute("data-date") for r in no_data.all()] == missing
    expect(no_data.first.locator("title")).to_have_text(f"{missing[0]}: no data recorded")
    expect(page.locator("#dau-note")).to_contain_text("to today")
    expect(page.locator("#dau-note")).to_contain_text("no data recorded")
    # The browser is in Europe/Berlin, which this exporter keeps no days for: UTC is shown.
    expect(page.locator("#dau-note")).to_contain_text("(UTC)")

    screenshots(page, "nextcloud")


def test_synapse_shows_its_schema_as_such_and_top_users_by_media(tab, served, synapse_runner):
    page = tab.page
    page.goto(served("synapse_runner") + "/")
    enter_key(page, API_KEY)
    expect(page.locator("#updated")).to_have_text(re.compile("^Updated "))
    with closing(sqlite3.connect(f"{SYNAPSE_DB.as_uri()}?mode=ro", uri=True)) as db:
        (schema,) = db.execute("SELECT version FROM schema_version").fetchone()
    # Synapse records its database schema, not its release: the page says which it shows.
    expect(page.locator("#platform")).to_have_text(f"Synapse · database schema {schema}")

    snapshot = snapshot_json(synapse_runner.snapshot, users=True)
    by_media = sorted((u for u in snapshot["users"] if u["media_bytes"] is not None),
                      key=lambda u: -u["media_bytes"])[:10]
    expect(page.get_by_role("heading", name="Top users by media")).to_be_visible()
    expect(page.locator("#users-head th")).to_have_text(["User", "Media", "Files", "Last login"])
    rows = page.locator("#users tr")
    expect(rows).to_have_count(len(by_media))
    assert page.locator("#users tr td:first-child bdi:first-child").all_text_contents() == [
        u["display_name"] or u["user_id"] for u in by_media]
    assert rows.first.locator("td").nth(1).get_attribute("title") == \
        f"{by_media[0]['media_bytes']:,} bytes"
    # A metric with several labels: each sample by its label names and values, then its value.
    several = {name: value for name, value in snapshot["metrics"].items()
               if isinstance(value, list) and name.startswith("usage_")}
    assert several
    for name, samples in several.items():
        chips = page.locator(f'#metrics tr[data-metric="{name}"] td').nth(1).locator(".chip")
        expect(chips).to_have_text([
            " · ".join(f"{k} {v}" for k, v in sample["labels"].items()).replace("_", " ")
            + f" {sample['value']:,}" for sample in samples])
    name = "usage_user_media_bytes"
    cell = page.locator(f'#metrics tr[data-metric="{name}"] td').nth(1)
    for label, words in summary_words(name, snapshot["metrics"][name]).items():
        expect(cell.locator(f'[data-label="{label}"]')).to_have_text(words)
    screenshots(page, "synapse")


def test_the_key_lives_in_the_tab_until_forgotten(tab, base_url):
    page = tab.page
    page.goto(base_url + "/")
    enter_key(page, API_KEY)
    expect(page.locator("#users tr")).to_have_count(10)
    page.reload()
    expect(page.locator("#users tr")).to_have_count(10)
    page.get_by_role("button", name="Forget key").click()
    expect(page.get_by_label("API key")).to_be_visible()
    expect(page.locator("#users tr")).to_have_count(0)
    assert page.evaluate("sessionStorage.length") == 0
