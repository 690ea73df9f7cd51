"""On the two real Synapse 1.163 homeservers, the exporter's numbers equal each Synapse's own
answers (admin API, phone-home stats as of its now_ms, /metrics): the one on SQLite, read there
and copied into PostgreSQL and MariaDB, and the one on PostgreSQL, restored from its dump."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select, text

from exporter.exposition import snapshot_json
from exporter.platforms import profile_for
from exporter.runner import Runner
from tests.conftest import collect_json, make_config
from tests.synapse_fixtures import SETUPS, Homeserver, Setup

DAY_MS = 86_400_000


def listed_in(homeserver: Homeserver, name: str) -> set[str]:
    """The user ids an admin user-list answer holds (each fits in one page: len == total)."""
    body = homeserver.api(name)
    assert len(body["users"]) == body["total"], name
    return {user["name"] for user in body["users"]}


def synapse_gauge(homeserver: Homeserver, name: str) -> dict[str, float]:
    """A gauge of Synapse's own /metrics, by its app_service label."""
    families = text_string_to_metric_families((homeserver.folder / "metrics.prom").read_text())
    family = next(f for f in families if f.name == name)
    return {s.labels.get("app_service", ""): s.value for s in family.samples}


def answers_by_user(homeserver: Homeserver, name: str) -> dict[str, Any]:
    """An admin API answer captured for every user (api/<name>.json), each user's body."""
    return {user: answer["body"] for user, answer in homeserver.read(f"api/{name}.json").items()}


def expected_status(homeserver: Homeserver, user: str) -> str:
    """The documented precedence, applied to the flags Synapse's admin API reports."""
    details = homeserver.read("api/user_details_v2__all.json")[user]
    approved = next(row["approved"] for row in homeserver.rows["users"] if row["name"] == user)
    for flag, status in (("deactivated", "deactivated"), ("locked", "locked"),
                         ("suspended", "suspended")):
        if details[flag]:
            return status
    if approved is not None and not approved:
        return "awaiting_approval"
    if details["shadow_banned"]:
        return "shadow_banned"
    if details["is_guest"]:
        return "guest"
    if details["user_type"]:
        return details["user_type"]
    return "bridged" if details["appservice_id"] else "enabled"


@pytest.fixture(scope="module", params=SETUPS, ids=lambda s: s.id)
def setup(request: pytest.FixtureRequest) -> Setup:
    return request.param


@pytest.fixture(scope="module")
def homeserver(setup: Setup) -> Homeserver:
    return setup.homeserver


@pytest.fixture(scope="module")
def synapse_url(request: pytest.FixtureRequest, setup: Setup) -> str:
    return setup.url(request, "synapse_platform")


@pytest.fixture(scope="module")
def stats(homeserver: Homeserver) -> dict[str, Any]:
    """Phone-home stats as Synapse's own code computed them at the fixture's now_ms."""
    return homeserver.phone_home["phone_home_payload"]


@pytest.fixture(scope="module")
def details(homeserver: Homeserver) -> dict[str, Any]:
    return homeserver.read("api/user_details_v2__all.json")


@pytest.fixture(scope="module")
def snapshot(synapse_url: str, homeserver: Homeserver) -> dict[str, Any]:
    return collect_json(synapse_url, "synapse", homeserver.now_ms / 1000)


@pytest.fixture(scope="module")
def metrics(snapshot: dict[str, Any]) -> dict[str, Any]:
    return snapshot["metrics"]


@pytest.fixture(scope="module")
def rows(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["user_id"]: row for row in snapshot["users"]}


def test_totals_and_active_users_equal_phone_home_stats(metrics, stats, homeserver):
    users = metrics["usage_users"]
    assert sum(users.values()) == stats["total_users"]
    assert users["bridged"] == stats["total_users"] - stats["total_nonbridged_users"]
    assert metrics["usage_users_active"]["1d"] == stats["daily_active_users"]
    assert metrics["usage_users_active"]["30d"] == stats["monthly_active_users"]
    assert metrics["usage_users_active"]["1d"] == \
        synapse_gauge(homeserver, "synapse_admin_daily_active_users")[""]


def test_statuses_equal_admin_user_lists(metrics, rows, homeserver):
    def having(*statuses: str) -> set[str]:
        return {user for user, row in rows.items() if row["status"] in statuses}

    def listed(name: str) -> set[str]:
        return listed_in(homeserver, name)

    every = listed("users_v3__all_incl_locked")
    assert every == listed("users_v2__deactivated_true_locked_true") == set(rows)
    # v2 lists neither deactivated nor locked accounts unless asked to.
    default = listed("users_v2__default")
    assert default == every - having("deactivated", "locked")
    assert having("deactivated") == listed("users_v3__deactivated_true")
    assert having("locked") == listed("users_v2__locked_true") - default
    # Neither guest here is also suspended or shadow-banned, so all keep the guest status.
    assert having("guest") == default - listed("users_v2__guests_false")
    assert having("bot") == default - listed("users_v2__not_user_type_bot")
    assert having("support") == (listed("users_v2__not_user_type_bot")
                                 - listed("users_v2__not_user_type_bot_support"))
    assert {u for u in default if rows[u]["is_admin"]} == listed("users_v2__admins_true")
    for status, count in metrics["usage_users"].items():
        assert count == len(having(status)), status


def test_every_status_follows_the_precedence_over_synapses_flags(rows, homeserver, details):
    assert set(rows) == set(details)
    for user in details:
        assert rows[user]["status"] == expected_status(homeserver, user), user


def test_backends_equal_synapses_non_deactivated_user_count(rows, homeserver):
    counts: dict[str, int] = {}
    for row in rows.values():
        if row["status"] != "deactivated":
            counts[row["backend"]] = counts.get(row["backend"], 0) + 1
    assert counts == synapse_gauge(homeserver, "synapse_non_deactivated_user_count")


def test_per_user_rows_equal_user_details(metrics, rows, homeserver, details):
    creation_ms = {u["name"]: u["creation_ts"]
                   for u in homeserver.api("users_v3__all_incl_locked")["users"]}
    for user, answer in details.items():
        row = rows[user]
        assert row["display_name"] == answer["displayname"], user
        assert row["is_admin"] == answer["admin"], user
        assert row["backend"] == (answer["appservice_id"] or "native"), user
        # creation_ts is seconds in the database and in this answer, ms in the user list.
        assert row["created_at"] == answer["creation_ts"], user
        assert row["created_at"] * 1000 == creation_ms[user], user
        seen = answer["last_seen_ts"]
        assert row["last_login"] == (None if seen is None else seen // 1000), user
    assert metrics["usage_users_seen"] == sum(d["last_seen_ts"] is not None
                                              for d in details.values())


def test_sessions_equal_admin_devices_api(metrics, rows, homeserver):
    every_users_devices = answers_by_user(homeserver, "devices_v2__all")
    for user, devices in every_users_devices.items():
        assert (rows[user]["sessions"] or 0) == devices["total"] == len(devices["devices"]), user
    assert sum(metrics["usage_sessions"].values()) == \
        sum(d["total"] for d in every_users_devices.values())
    assert metrics["usage_users_concurrent"] == \
        sum(d["total"] > 0 for d in every_users_devices.values())


def test_per_user_media_equals_media_statistics_api(metrics, rows, homeserver):
    stats = homeserver.api("media_stats__default")
    assert len(stats["users"]) == stats["total"]  # one page holds every user
    with_media = {user for user, row in rows.items() if row["media_count"]}
    assert with_media == {entry["user_id"] for entry in stats["users"]}
    for entry in stats["users"]:
        row = rows[entry["user_id"]]
        assert row["media_count"] == entry["media_count"], entry["user_id"]
        assert row["media_bytes"] == entry["media_length"], entry["user_id"]
    histogram = metrics["usage_user_media_bytes"]
    assert histogram["count"] == stats["total"]
    assert histogram["sum"] == sum(entry["media_length"] or 0 for entry in stats["users"])


def test_media_equals_each_users_media_list(metrics, rows, homeserver):
    user_media = answers_by_user(homeserver, "user_media_v1__all")
    media = [item for body in user_media.values() for item in body["media"]]
    for user, body in user_media.items():
        lengths = [item["media_length"] for item in body["media"]]
        assert len(lengths) == body["total"], user
        assert (rows[user]["media_count"] or 0) == body["total"], user
        sized = [n for n in lengths if n is not None]
        assert rows[user]["media_bytes"] == (sum(sized) if sized else None), user
    assert metrics["usage_media_files"] == len(media)
    assert metrics["usage_media_bytes"] == sum(item["media_length"] or 0 for item in media)
    assert metrics["usage_media_pending_uploads"] == \
        sum(item["media_length"] is None for item in media)
    assert metrics["usage_media_pending_uploads"] > 0  # the fixture has a pending upload


@pytest.mark.parametrize("window", ["1d", "30d"])
def test_window_edges_are_strict_to_the_millisecond(synapse_url, homeserver, window):
    """With the window's start exactly on a recorded request, and 1 ms either side, the count
    is Synapse's: user_ips rows with last_seen > now_ms - window_ms (fixture rows, its SQL)."""
    window_ms = {"1d": DAY_MS, "30d": 30 * DAY_MS}[window]
    now_ms = 0
    runner = Runner(make_config(synapse_url, "synapse"), clock=lambda: now_ms / 1000)
    try:
        user_ips = homeserver.rows["user_ips"]
        for last_seen in sorted({row["last_seen"] for row in user_ips}):
            for shift in (-1, 0):
                now_ms = last_seen + window_ms + shift
                expected = len({row["user_id"] for row in user_ips
                                if row["last_seen"] > now_ms - window_ms})
                runner.run("users")
                status = runner.snapshot.collectors["users"]
                assert status.state == "ok", status.last_error
                active = snapshot_json(runner.snapshot)["metrics"]["usage_users_active"]
                assert active[window] == expected, (now_ms, shift)
    finally:
        runner.close()


def test_daily_visits_give_synapses_r30v2(synapse_url, homeserver, stats):
    """The daily_activity relation, counted as phone-home's r30v2 counts user_daily_visits:
    users seen on days more than 30 days apart within the last 60 days."""
    now_s = homeserver.now_ms // 1000
    config = make_config(synapse_url, "synapse")
    runner = Runner(config)
    try:
        with runner.database.connect(30) as conn:
            daily = profile_for(config.database).relation("daily_activity", conn).subquery()
            retained = (select(daily.c.user_id)
                        .where(daily.c.day > now_s - 60 * 86400, daily.c.day < now_s + 86400)
                        .group_by(daily.c.user_id)
                        .having(func.max(daily.c.day) - func.min(daily.c.day) > 30 * 86400)
                        .subquery())
            count = conn.execute(select(func.count()).select_from(retained)).scalar_one()
            days = set(conn.execute(select(daily.c.day).distinct()).scalars())
    finally:
        runner.close()
    assert count == stats["r30v2_users_all"]
    assert days == {row["timestamp"] // 1000 for row in homeserver.rows["user_daily_visits"]}


def test_platform_version_is_the_schema_version(snapshot, synapse_url):
    engine = create_engine(synapse_url)
    try:
        with engine.connect() as db:
            version = db.execute(text("SELECT version FROM schema_version")).scalar_one()
    finally:
        engine.dispose()
    assert snapshot["platform"] == "synapse"
    assert snapshot["platform_version"] == str(version)
