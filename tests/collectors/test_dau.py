"""Daily active users land on the calendar day of each configured time zone, DST days included,
and accumulate across runs and restarts."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from exporter.runner import Runner
from tests.conftest import NEXTCLOUD, NEXTCLOUD_DB, make_config, read_json
from tests.synapse_fixtures import POSTGRESQL_HOMESERVER, SQLITE_HOMESERVER, Setup

ZONES = ["UTC", "Europe/Berlin", "America/New_York"]


def at(iso: str) -> float:
    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()


def accounts_db(path: Path, last_logins: dict[str, float]) -> str:
    """The ownCloud tables the users and activity relations read, and nothing else."""
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE oc_accounts (user_id TEXT, display_name TEXT, backend TEXT, state INT,
                                      creation_time INT, last_login INT, quota TEXT);
            CREATE TABLE oc_preferences (userid TEXT, appid TEXT, configkey TEXT,
                                         configvalue TEXT);
            CREATE TABLE oc_group_user (gid TEXT, uid TEXT);
        """)
        db.executemany("INSERT INTO oc_accounts VALUES (?, ?, 'OC\\User\\Database', 1, 0, ?, NULL)",
                       [(uid, uid, int(ts)) for uid, ts in last_logins.items()])
    db.close()
    return f"sqlite:///{path}"


def dau_runner(url: str, now: float, history: Path, platform: str = "owncloud") -> Runner:
    config = make_config(url, platform, history={"url": f"sqlite:///{history}"},
                         collectors={"dau": {"timezones": ZONES}})
    return Runner(config, clock=lambda: now)


def daily(runner: Runner, zone: str, since: date) -> dict[str, int]:
    return {day.isoformat(): n for day, n in runner.history().daily_active(zone, since)}


def test_the_day_berlin_leaves_summer_time_has_25_hours(tmp_path):
    # Europe/Berlin went from UTC+2 to UTC+1 at 01:00 UTC on 2026-10-25.
    url = accounts_db(tmp_path / "oc.db", {
        "early": at("2026-10-24T22:30:00"),   # 00:30 CEST on the 25th in Berlin
        "late": at("2026-10-25T22:59:00"),    # 23:59 CET, still the 25th in Berlin
        "after": at("2026-10-25T23:10:00"),   # 00:10 on the 26th in Berlin
    })
    runner = dau_runner(url, at("2026-10-25T23:30:00"), tmp_path / "h.db")
    snapshot = runner.run("dau")
    assert snapshot.collectors["dau"].state == "ok", snapshot.collectors["dau"].last_error
    since = date(2026, 10, 1)
    assert daily(runner, "Europe/Berlin", since) == {"2026-10-25": 2, "2026-10-26": 1}
    assert daily(runner, "UTC", since) == {"2026-10-24": 1, "2026-10-25": 2}
    assert daily(runner, "America/New_York", since) == {"2026-10-24": 1, "2026-10-25": 2}
    runner.close()


def test_users_are_accumulated_across_runs_and_restarts(tmp_path):
    db, history = tmp_path / "oc.db", tmp_path / "h.db"
    url = accounts_db(db, {"alice": at("2026-11-22T10:00:00"), "bob": at("2026-11-22T11:00:00")})
    first = dau_runner(url, at("2026-11-22T12:00:00"), history)
    first.run("dau")
    first.close()
    # Next day alice is active again: her last login moves on, yet the 22nd keeps her.
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE oc_accounts SET last_login = ? WHERE user_id = 'alice'",
                     (int(at("2026-11-23T08:00:00")),))
    conn.close()
    second = dau_runner(url, at("2026-11-23T09:00:00"), history)
    second.run("dau")
    assert daily(second, "UTC", date(2026, 11, 1)) == {"2026-11-22": 2, "2026-11-23": 1}
    second.close()


def test_users_by_status_are_recorded_for_the_day(tmp_path, nextcloud_now):
    derived = read_json(NEXTCLOUD / "derived_modern_serverinfo.json")
    disabled = next(v for k, v in derived.items() if k.startswith("num_disabled_users"))
    total = next(v for k, v in derived.items() if k.startswith("num_users_total"))
    runner = dau_runner(f"sqlite:///{NEXTCLOUD_DB}", nextcloud_now, tmp_path / "h.db",
                        "nextcloud")
    runner.run("dau")
    today = datetime.fromtimestamp(nextcloud_now, UTC).date()
    counts = runner.history().status_counts("UTC", today)
    assert counts["disabled"] == [(today, disabled)]
    assert counts["enabled"] == [(today, total - disabled)]
    runner.close()


@pytest.mark.parametrize("zone", ZONES)
def test_nextcloud_fixture_days_hold_users_whose_last_login_fell_on_them(tmp_path, zone,
                                                                         nextcloud_now):
    now = nextcloud_now
    runner = dau_runner(f"sqlite:///{NEXTCLOUD_DB}", now, tmp_path / "h.db", "nextcloud")
    runner.run("dau")
    uri = f"file:{NEXTCLOUD_DB}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        logins = [int(v) for (v,) in conn.execute(
            "SELECT configvalue FROM oc_preferences WHERE appid = 'login' "
            "AND configkey = 'lastLogin'")]
    conn.close()
    zone_info = ZoneInfo(zone)
    today = datetime.fromtimestamp(now, zone_info).date()
    expected: dict[str, int] = {}
    for login in logins:
        day = datetime.fromtimestamp(login, zone_info).date()
        if (today - day).days <= 1:
            expected[day.isoformat()] = expected.get(day.isoformat(), 0) + 1
    assert daily(runner, zone, date(2026, 11, 1)) == expected
    runner.close()


def test_two_exporters_sharing_a_postgresql_history_store_keep_identical_rows(
        postgres_server, nextcloud_now):
    url = postgres_server.create_database("shared_history")
    runners = [Runner(make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud",
                                  history={"url": url}, collectors={"dau": {"timezones": ZONES}}),
                      clock=lambda: nextcloud_now) for _ in range(2)]
    for runner in runners:
        runner.run("dau")
    since = date(2026, 11, 1)
    one, two = ({zone: (daily(r, zone, since), r.history().status_counts(zone, since))
                 for zone in ZONES} for r in runners)
    assert one == two
    assert one["UTC"][0]  # something was recorded
    for runner in runners:
        runner.close()


@pytest.mark.parametrize("setup", [Setup(SQLITE_HOMESERVER, "sqlite"),
                                   Setup(POSTGRESQL_HOMESERVER, "postgresql")],
                         ids=lambda s: s.id)
def test_synapse_daily_visits_give_exact_past_utc_days(request, tmp_path, setup):
    """Synapse keeps one user_daily_visits row per user, device and UTC day: every day within the
    backfill is recorded exactly, not only the days the exporter ran (on SQLite and on
    PostgreSQL)."""
    now = setup.homeserver.now_ms / 1000
    config = make_config(setup.url(request, "synapse_dau"), "synapse",
                         history={"url": f"sqlite:///{tmp_path / 'h.db'}"},
                         collectors={"dau": {"backfill_days": 400}})
    runner = Runner(config, clock=lambda: now)
    assert runner.run("dau").collectors["dau"].state == "ok"
    expected: dict[str, set[str]] = {}
    for row in setup.homeserver.rows["user_daily_visits"]:
        day = datetime.fromtimestamp(row["timestamp"] / 1000, UTC).date().isoformat()
        expected.setdefault(day, set()).add(row["user_id"])
    recorded = daily(runner, "UTC", date(2000, 1, 1))
    runner.close()
    # Yesterday and today also hold users sampled from user_ips (guests and bridged users,
    # whom user_daily_visits leaves out); every earlier day is Synapse's own, exactly.
    yesterday = (datetime.fromtimestamp(now, UTC).date() - timedelta(days=1)).isoformat()
    older = {day: len(users) for day, users in expected.items() if day < yesterday}
    assert len(older) > 1
    assert {day: n for day, n in recorded.items() if day < yesterday} == older
    for day, users in expected.items():
        assert recorded[day] >= len(users), day
