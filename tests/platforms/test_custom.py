"""Platform custom, and the recipes of docs/custom-sql.md.

Each recipe is loaded from docs/examples/ (only the database URL replaced), run by the exporter
against a database with the platform's own schema (tests/platforms/custom_platforms.py), and every
number it exports is compared with the platform's own definition, computed here independently with
the platform's SQL (docs/platforms/custom.md) at a fixed instant.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from sqlalchemy import Row, create_engine, select, text

from collectors import available
from exporter import api
from exporter.config import Config, ConfigError, duration_label, parse_config
from exporter.db import Database
from exporter.exposition import snapshot_json
from exporter.http import App, Context
from exporter.platforms import profile_for
from exporter.platforms.custom import CustomProfile
from exporter.relations import RELATIONS
from exporter.runner import Runner, StartupError
from exporter.server import HttpServer
from tests.api.test_openapi_dropins import SCHEMA
from tests.conftest import API_KEY, ROOT, make_config, sqlite_execute
from tests.platforms.custom_platforms import (
    build_coder,
    build_odk_central,
    build_openl2m,
    coder_daus,
    coder_status_counts,
)

EXAMPLES = ROOT / "docs" / "examples"
CODER_NOW = datetime(2026, 11, 1, tzinfo=UTC)  # a UTC midnight, where Coder's days begin
ODK_NOW = datetime(2026, 11, 1, 9, 41, 27, tzinfo=UTC)
HOUR, DAY = 3600, 86400


@dataclass(frozen=True)
class Platform:
    admin_url: str  # builds the database and answers the reference queries
    url: str  # read-only role, as the exporter should be run

    def query(self, sql: str, **params: Any) -> Sequence[Row[Any]]:
        engine = create_engine(self.admin_url)
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SET TIME ZONE 'UTC'")
                return conn.execute(text(sql), params).all()
        finally:
            engine.dispose()

    def scalar(self, sql: str, **params: Any) -> Any:
        return self.query(sql, **params)[0][0]


def example(name: str, url: str, windows: Sequence[float] | None = None, *,
            default_windows: bool = False, dau_zones: Sequence[str] | None = None,
            history: Path | None = None) -> Config:
    """A config from docs/examples, pointed at `url`; optionally other activity windows (or the
    users collector's defaults), dau time zones and the history store's file."""
    raw = yaml.safe_load((EXAMPLES / name).read_text())
    raw["database"]["url"] = url
    if default_windows:
        del raw["collectors"]["users"]["windows"]
    elif windows is not None:
        raw["collectors"]["users"]["windows"] = list(windows)
    if dau_zones is not None:
        raw["collectors"]["dau"] = {"timezones": list(dau_zones)}
    if history is not None:
        raw["history"] = {"url": f"sqlite:///{history}"}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("USAGE_EXPORTER_API_KEY", API_KEY)
        return parse_config(raw, collector_options={n: c.options for n, c in available().items()})


def export(config: Config, now: datetime) -> dict[str, Any]:
    """What the daemon does: the start-up check of every relation, then a run of the users and
    sessions collectors (the dau collector's history is tested by its own suite)."""
    runner = Runner(config, clock=now.timestamp)
    try:
        runner.preflight()
        for name in ("users", "sessions"):
            if name in runner.applicable():
                runner.run(name)
    finally:
        runner.close()
    assert runner.snapshot.failures == {}
    return snapshot_json(runner.snapshot, users=True)


def events_metrics(config: Config, now: datetime) -> dict[tuple[str, ...], Any]:
    """The start-up check and a run of the events collector as of `now`: each sample by
    (metric, kind, window), or (metric, name) for usage_total."""
    runner = Runner(config, clock=now.timestamp)
    try:
        runner.preflight()
        runner.run("events")
    finally:
        runner.close()
    assert runner.snapshot.failures == {}
    metrics = snapshot_json(runner.snapshot)["metrics"]
    samples: dict[tuple[str, ...], Any] = {
        ("usage_total", name): value for name, value in metrics.get("usage_total", {}).items()}
    for name in ("usage_events", "usage_event_users", "usage_event_subjects"):
        samples |= {(name, s["labels"]["kind"], s["labels"]["window"]): s["value"]
                    for s in metrics[name]}
    return samples


def relation_rows(config: Config, name: str) -> list[Row[Any]]:
    """Read a relation through the profile, its columns by their canonical names."""
    database = Database(config.database)
    try:
        with database.connect(30) as conn:
            relation = profile_for(config.database).relation(name, conn).subquery(name)
            return list(conn.execute(select(*(relation.c[c] for c in RELATIONS[name]))))
    finally:
        database.close()


def statuses_at(changes: Sequence[Row[Any]], instant: float) -> dict[str, int]:
    """Users by status at an instant, replayed from status_changes: each user's latest change
    up to it; deleted accounts are not counted."""
    latest = {}
    for user_id, status, changed_at in sorted(changes, key=lambda c: c.changed_at):
        if changed_at <= instant:
            latest[user_id] = status
    return dict(Counter(s for s in latest.values() if s != "deleted"))


def utc_days(rows: Sequence[Row[Any]]) -> Counter[date]:
    """daily_activity rows counted by UTC day."""
    return Counter(datetime.fromtimestamp(day, UTC).date() for _, day in rows)


def timestamp(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@pytest.fixture(scope="module")
def coder(postgres_server: Any) -> Platform:
    admin = postgres_server.create_database("custom_coder")
    build_coder(admin, CODER_NOW)
    return Platform(admin, postgres_server.readonly_url("custom_coder"))


@pytest.fixture(scope="module")
def odk(postgres_server: Any) -> Platform:
    admin = postgres_server.create_database("custom_odk_central")
    build_odk_central(admin, ODK_NOW)
    return Platform(admin, postgres_server.readonly_url("custom_odk_central"))


# --- Coder ----------------------------------------------------------------------------------


def coder_dau_entries(coder: Platform, now: datetime, tz_offset: int) -> dict[date, int]:
    """/api/v2/insights/daus?tz_offset=N as coderd answers it, by date."""
    return {date.fromisoformat(entry["date"]): entry["amount"]
            for entry in coder_daus(coder.admin_url, now, tz_offset)["entries"]}


def coder_active_users(coder: Platform, start: datetime, end: datetime) -> int:
    """Active users of Coder's template insights over [start, end) (GetTemplateInsights)."""
    return coder.scalar(
        "SELECT COUNT(DISTINCT user_id) FROM template_usage_stats "
        "WHERE start_time >= :start AND end_time <= :end", start=start, end=end)


def coder_counts_at(coder: Platform, now: datetime, zone: str) -> dict[datetime, dict]:
    """/api/v2/insights/user-status-counts?timezone=Z as coderd answers it: at each local
    midnight, the statuses anybody held and how many held them."""
    counts: dict[datetime, dict[str, int]] = {}
    for status, series in coder_status_counts(coder.admin_url, now, zone)["status_counts"].items():
        for point in series:
            held = counts.setdefault(datetime.fromisoformat(point["date"]), {})
            if point["count"]:
                held[status] = point["count"]
    return counts


@pytest.fixture(scope="module")
def coder_export(coder: Platform) -> dict[str, Any]:
    return export(example("coder.yaml", coder.url), CODER_NOW)


def test_coder_users_by_status_equal_coders_counts(coder, coder_export):
    """coderd_api_total_user_count{status}: accounts not deleted, system users left out."""
    expected = dict(coder.query("SELECT status::text, count(*) FROM users "
                                "WHERE NOT deleted AND NOT is_system GROUP BY status"))
    expected["deleted"] = coder.scalar("SELECT count(*) FROM users WHERE deleted AND NOT is_system")
    metrics = coder_export["metrics"]
    assert metrics["usage_users"] == expected
    assert set(expected) == {"active", "dormant", "suspended", "deleted"}
    assert metrics["usage_users_seen"] == coder.scalar(
        "SELECT count(*) FROM users WHERE NOT is_system AND last_seen_at > '0001-01-01'")
    admins = {row["user_id"] for row in coder_export["users"] if row["is_admin"]}
    assert admins == {str(u) for u, in coder.query(
        "SELECT id FROM users WHERE 'owner' = ANY (rbac_roles)")}


def test_coder_active_users_equal_coders_dau_and_insights(coder, coder_export):
    """At a UTC midnight the 1d window is yesterday's entry of /insights/daus; 7d and 30d are the
    active users of the template insights for the last 7 and 30 days."""
    active = coder_export["metrics"]["usage_users_active"]
    yesterday = (CODER_NOW - timedelta(days=1)).date()
    assert active["1d"] == coder_dau_entries(coder, CODER_NOW, 0)[yesterday]
    for label, days in (("7d", 7), ("30d", 30)):
        assert active[label] == coder_active_users(
            coder, CODER_NOW - timedelta(days=days), CODER_NOW), label
    assert active["1h"] == coder_active_users(coder, CODER_NOW - timedelta(hours=1), CODER_NOW)
    assert 0 < active["1d"] < active["7d"] < active["30d"]


@pytest.mark.parametrize("tz_offset", [0, 3, -5])
def test_coder_daily_activity_is_coders_daus(coder, tz_offset):
    """Each entry of /api/v2/insights/daus is one UTC day of daily_activity; tz_offset only
    relabels it: a negative offset labels a UTC day with the previous date."""
    days = utc_days(relation_rows(example("coder.yaml", coder.url), "daily_activity"))
    entries = coder_dau_entries(coder, CODER_NOW, tz_offset)
    first = (CODER_NOW - timedelta(days=60)).date()
    shift = timedelta(days=-1 if tz_offset < 0 else 0)
    assert len(entries) == 61
    assert entries == {first + timedelta(days=n) + shift: days[first + timedelta(days=n)]
                       for n in range(61)}
    assert sum(entries.values()) > 100


@pytest.mark.parametrize("zone", ["UTC", "America/St_Johns"])
def test_coder_status_changes_replay_user_status_counts(coder, zone):
    """Replaying status_changes gives, at each local midnight, /insights/user-status-counts."""
    changes = relation_rows(example("coder.yaml", coder.url), "status_changes")
    expected = coder_counts_at(coder, CODER_NOW, zone)
    assert len(expected) == 61
    for instant, counts in expected.items():
        assert statuses_at(changes, instant.timestamp()) == counts, instant
    first, last = (expected[k] for k in (min(expected), max(expected)))
    assert first != last  # statuses changed within the 60 days


@pytest.mark.parametrize("later", [timedelta(0), timedelta(hours=8)])
def test_coder_sessions_are_api_keys_unexpired_by_the_exporters_clock(coder, later):
    """The database's own clock is years away from CODER_NOW: expiry is the exporter's."""
    now = CODER_NOW + later
    live = coder.query("SELECT count(*), count(DISTINCT user_id) FROM api_keys "
                       "WHERE expires_at > :now", now=now)[0]
    metrics = export(example("coder.yaml", coder.url), now)["metrics"]
    assert metrics["usage_sessions"] == {"desktop": 0, "mobile": 0, "web": 0, "other": live[0]}
    assert metrics["usage_users_concurrent"] == live[1]
    assert 0 < live[0] < coder.scalar("SELECT count(*) FROM api_keys")


# --- ODK Central ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def odk_export(odk: Platform) -> dict[str, Any]:
    return export(example("odk-central.yaml", odk.url), ODK_NOW)


def test_odk_active_users_are_centrals_logins(odk, odk_export):
    """DAU, WAU and MAU as docs/platforms/custom.md ("ODK Central", "The numbers") gives them for
    Central: distinct web users with a user.session.create audit in the last 1, 7 and 30 days
    (inclusive)."""
    active = odk_export["metrics"]["usage_users_active"]
    for label, days in (("1d", 1), ("7d", 7), ("30d", 30)):
        assert active[label] == odk.scalar("""
            SELECT count(DISTINCT a."actorId")
            FROM audits a JOIN actors ac ON ac.id = a."actorId"
            WHERE a.action = 'user.session.create' AND ac.type = 'user'
              AND a."loggedAt" >= CAST(:now AS timestamptz) - make_interval(days => :days)""",
            now=ODK_NOW, days=days), label
    assert 0 < active["1d"] < active["7d"] < active["30d"]


def test_odk_users_are_centrals_web_users(odk, odk_export):
    metrics = odk_export["metrics"]
    assert metrics["usage_users"] == {
        "enabled": odk.scalar("""SELECT count(*) FROM actors
                                 WHERE type = 'user' AND "deletedAt" IS NULL"""),
        "deleted": odk.scalar("""SELECT count(*) FROM actors
                                 WHERE type = 'user' AND "deletedAt" IS NOT NULL""")}
    # last_login is Central's users."lastLoginAt"; is_admin its num_admins.
    last_login = dict(odk.query('SELECT "actorId"::text, "lastLoginAt" FROM users'))
    users = {row["user_id"]: row for row in odk_export["users"]}
    assert {u: row["last_login"] for u, row in users.items()} == \
        {u: timestamp(when) for u, when in last_login.items()}
    assert metrics["usage_users_seen"] == sum(when is not None for when in last_login.values())
    assert sum(row["is_admin"] for row in users.values()) == odk.scalar(
        'SELECT count(*) FROM users JOIN assignments a USING ("actorId") WHERE a."roleId" = 1')


@pytest.mark.parametrize("later", [timedelta(0), timedelta(hours=4)])
def test_odk_sessions_are_web_sessions_unexpired_by_the_exporters_clock(odk, later):
    now = ODK_NOW + later
    count, users = odk.query("""
        SELECT count(*), count(DISTINCT s."actorId")
        FROM sessions s JOIN actors ON actors.id = s."actorId"
        WHERE actors.type = 'user' AND s."expiresAt" > :now""", now=now)[0]
    metrics = export(example("odk-central.yaml", odk.url), now)["metrics"]
    assert metrics["usage_sessions"]["other"] == count
    assert metrics["usage_users_concurrent"] == users
    assert 0 < count < odk.scalar("SELECT count(*) FROM sessions")


def test_odk_daily_activity_is_centrals_logins_per_day(odk):
    days = utc_days(relation_rows(example("odk-central.yaml", odk.url), "daily_activity"))
    expected = dict(odk.query("""
        SELECT ("loggedAt" AT TIME ZONE 'UTC')::date AS day, count(DISTINCT "actorId")
        FROM audits a JOIN actors ac ON ac.id = a."actorId"
        WHERE a.action = 'user.session.create' AND ac.type = 'user'
        GROUP BY 1"""))
    assert dict(days) == expected
    assert len(expected) > 100


def test_odk_status_changes_replay_centrals_user_list(odk):
    changes = relation_rows(example("odk-central.yaml", odk.url), "status_changes")
    for days_ago in range(0, 70, 7):
        instant = ODK_NOW - timedelta(days=days_ago)
        expected = odk.scalar("""
            SELECT count(*) FROM actors WHERE type = 'user' AND "createdAt" <= :at
               AND ("deletedAt" IS NULL OR "deletedAt" > :at)""", at=instant)
        assert statuses_at(changes, instant.timestamp()) == {"enabled": expected}, days_ago


# Central's usage report queries (lib/model/query/analytics.js), verbatim but for current_date:
# the date of the test's instant in UTC (the session's TimeZone), not the server's clock.
CUTOFF = "((CAST(:now AS timestamptz) AT TIME ZONE 'UTC')::date - 45)"
RECENT_USERS = f"""(select au."actorId" from audits as au where au."loggedAt" >= {CUTOFF}
                   group by au."actorId") as activeUsers"""
RECENT_SUBMITTERS = f"""(select "submitterId" as "activeActorId" from submissions
                        where "createdAt" >= {CUTOFF} group by "submitterId") as recentsubs"""
CENTRAL_USAGE = {
    "admin": f"""select count(u."actorId") as total, count(activeUsers."actorId") as recent
        from users as u join assignments as a on a."actorId" = u."actorId"
        left join {RECENT_USERS} on activeUsers."actorId" = u."actorId"
        where a."roleId" = 1""",
    "audit": f"""SELECT count(*) AS total, count(CASE WHEN "loggedAt" >= {CUTOFF} THEN 1
        ELSE null END) AS recent FROM audits""",
    # countUsersPerRole, summed over projects (here one project holds every assignment).
    **{kind: f"""select sum(total), sum(recent) from (
        select count(activeUsers."actorId") as recent, count(u."actorId") as total
        from users as u join assignments as a on a."actorId" = u."actorId"
        join roles as r on r."id" = a."roleId"
        join projects as p on a."acteeId" = p."acteeId"
        left join {RECENT_USERS} on activeUsers."actorId" = u."actorId"
        where r."system" = '{system}'
        group by (p."id", r."id", r."name")) s"""
       for kind, system in (("manager", "manager"), ("viewer", "viewer"),
                            ("data_collector", "formfill"))},
    # countForms, countSubmissions and countAppUsers, summed over projects.
    "form": f"""select sum(total), sum(recent) from (
        select f."projectId", count(f."id") as total, count(recentSubs."activeForm") as recent
        from forms as f left join (select "formId" as "activeForm" from submissions
          where "createdAt" >= {CUTOFF} group by "formId") as recentSubs
          on recentSubs."activeForm" = f."id"
        group by f."projectId") s""",
    "submission": f"""select sum(total), sum(recent) from (
        select f."projectId", count(s.id) as total,
          sum(CASE WHEN s."createdAt" >= {CUTOFF} THEN 1 ELSE 0 END) as recent
        from submissions as s join forms as f on s."formId" = f."id"
        group by f."projectId") s""",
    "app_user": f"""select sum(total), sum(recent) from (
        select fk."projectId", count(fk."actorId") as total,
          count(recentsubs."activeActorId") as recent
        from field_keys as fk left join {RECENT_SUBMITTERS}
          on recentsubs."activeActorId" = fk."actorId"
        group by fk."projectId") s""",
}
# Which count of a kind is Central's: its events, or its distinct users or subjects.
CENTRAL_MEASURE = {"admin": "usage_event_users", "audit": "usage_events",
                   "manager": "usage_event_users", "viewer": "usage_event_users",
                   "data_collector": "usage_event_users", "form": "usage_event_subjects",
                   "submission": "usage_events", "app_user": "usage_event_users"}


@pytest.mark.parametrize("later", [timedelta(0), timedelta(hours=15)])
def test_odk_usage_report_total_and_recent_are_centrals(odk, later):
    """Each {total, recent} pair of the system-level usage report, and num_archived_projects,
    equal Central's queries on the same database, at the instant and later the same UTC day
    (Central's cutoff is a date)."""
    now = ODK_NOW + later
    samples = events_metrics(example("odk-central.yaml", odk.url), now)
    for kind, sql in CENTRAL_USAGE.items():
        total, recent = odk.query(sql, now=now)[0]
        measure = CENTRAL_MEASURE[kind]
        assert (samples[measure, kind, "total"], samples[measure, kind, "recent"]) == (
            total, recent), kind
        assert 0 < recent < total, kind
    assert samples["usage_total", "archived_projects"] == odk.scalar(
        "select count(*) as num_archived_projects from projects where archived is true") == 1


def test_odk_unique_role_holders_are_centrals(odk):
    """num_unique_managers, _viewers, _collectors: the role holders' distinct users in total."""
    samples = events_metrics(example("odk-central.yaml", odk.url), ODK_NOW)
    for kind, system in (("manager", "manager"), ("viewer", "viewer"),
                         ("data_collector", "formfill")):
        assert samples["usage_event_users", kind, "total"] == odk.scalar(
            'select count(distinct a."actorId") from assignments as a join roles as r '
            'on r."id" = a."roleId" where r."system" = :system', system=system), kind


# --- OpenL2M --------------------------------------------------------------------------------

OPENL2M_NOWS = {"midnight": datetime(2026, 11, 1, tzinfo=UTC),
                "afternoon": datetime(2026, 11, 1, 13, 30, tzinfo=UTC)}


@pytest.fixture(scope="module", params=list(OPENL2M_NOWS))
def openl2m(request: pytest.FixtureRequest, postgres_server: Any) -> Iterator[tuple]:
    name = f"custom_openl2m_{request.param}"
    admin = postgres_server.create_database(name)
    build_openl2m(admin, OPENL2M_NOWS[request.param])
    yield Platform(admin, postgres_server.readonly_url(name)), OPENL2M_NOWS[request.param]


# OpenL2M's windows as switches/stats.py filters them (TIME_ZONE = :tz), by key suffix.
OPENL2M_WINDOWS = {
    "last_hour": "\"timestamp\" >= CAST(:now AS timestamptz) - interval '1 hour'",
    "today": "(\"timestamp\" AT TIME ZONE :tz)::date = "
             "(CAST(:now AS timestamptz) AT TIME ZONE :tz)::date",
    "last_7_days": "\"timestamp\" >= (((CAST(:now AS timestamptz) AT TIME ZONE 'UTC')"
                   "::date - 7)::timestamp AT TIME ZONE :tz)",
    "last_31_days": "\"timestamp\" >= (((CAST(:now AS timestamptz) AT TIME ZONE 'UTC')"
                    "::date - 31)::timestamp AT TIME ZONE :tz)",
}


def openl2m_usage(openl2m: Platform, now: datetime, key: str, tz: str = "UTC") -> tuple[int, bool]:
    """A users_* value of OpenL2M's /api/stats/ (switches/stats.py, TIME_ZONE = tz), and whether
    a failed login (no user) in its window made it one larger: Django counts the rows of
    SELECT DISTINCT user_id, NULL included."""
    window = OPENL2M_WINDOWS[key.removeprefix("users_")]
    value = openl2m.scalar("SELECT count(*) FROM (SELECT DISTINCT user_id FROM switches_log "
                           f"WHERE type = 5 AND {window}) s", now=now, tz=tz)
    failed = openl2m.scalar("SELECT count(*) > 0 FROM switches_log "
                            f"WHERE type = 5 AND user_id IS NULL AND {window}", now=now, tz=tz)
    return value, failed


def openl2m_windows(now: datetime) -> dict[str, float]:
    """The span each users_* value covers at `now` (TIME_ZONE = UTC): the last hour, today since
    midnight, and N whole days plus today."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    spans = {"users_last_hour": 3600.0,
             "users_today": (now - midnight).total_seconds(),
             "users_last_7_days": (now - midnight + timedelta(days=7)).total_seconds(),
             "users_last_31_days": (now - midnight + timedelta(days=31)).total_seconds()}
    return {key: span for key, span in spans.items() if span > 0}


def test_openl2m_active_users_equal_api_stats_minus_failed_logins(openl2m):
    """With a window set to the span OpenL2M counts, usage_users_active equals its users_* value,
    less the one it adds when a failed login (NULL user) falls in the window."""
    platform, now = openl2m
    spans = openl2m_windows(now)
    active = export(example("openl2m.yaml", platform.url, windows=spans.values()), now)[
        "metrics"]["usage_users_active"]
    quirks = 0
    for key, span in spans.items():
        value, failed = openl2m_usage(platform, now, key)
        assert active[duration_label(span)] == value - failed, key
        quirks += failed
    assert quirks > 0  # the data exercises the NULL-user difference


@pytest.mark.parametrize("openl2m", ["midnight"], indirect=True)
def test_openl2m_example_windows_are_api_stats_at_utc_midnight(openl2m):
    """The example's 7d and 31d are OpenL2M's last 7 and 31 days only at 00:00 UTC."""
    platform, now = openl2m
    active = export(example("openl2m.yaml", platform.url), now)["metrics"]["usage_users_active"]
    for label, key in (("1h", "users_last_hour"), ("7d", "users_last_7_days"),
                       ("31d", "users_last_31_days")):
        value, failed = openl2m_usage(platform, now, key)
        assert active[label] == value - failed, label


@contextmanager
def serving(config: Config, now: datetime, zone: str) -> Iterator[str]:
    """The daemon's API over a real socket after one run of every collector as of `now`, with
    `zone` as the first dau zone; yields its base URL."""
    runner = Runner(config, clock=now.timestamp)
    try:
        runner.preflight()
        runner.run_all()
        assert runner.snapshot.failures == {}
        context = Context(lambda: runner.snapshot, config.api_keys, runner.history,
                          runner.clock, read=runner.read)
        server = HttpServer(App(context, api.routes(context, zone)), "127.0.0.1", 0).start()
        try:
            yield f"http://127.0.0.1:{server.port}"
        finally:
            server.stop()
    finally:
        runner.close()


def get(url: str, authorization: str | None) -> tuple[int, Any, Any]:
    """Status, headers and JSON body of a GET, errors included."""
    headers = {} if authorization is None else {"Authorization": authorization}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=30) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_openl2m_api_stats_windows_with_the_default_config(openl2m, zone, tmp_path):
    """/api/v1/stats with the users collector's default windows (no 31d among them) answers all
    four of OpenL2M's user windows, with OpenL2M's TIME_ZONE the first dau zone: each its users_*
    value less the failed-login row, at midnight (a daemon started at 00:00 included) and in the
    afternoon; and each event kind's count in the same windows (changes as OpenL2M's)."""
    platform, now = openl2m
    config = example("openl2m.yaml", platform.url, default_windows=True, dau_zones=[zone],
                     history=tmp_path / "history.db")
    assert "31d" not in map(duration_label, config.collector("users").options["windows"])
    with serving(config, now, zone) as url:
        body = get(url + "/api/v1/stats", f"Bearer {API_KEY}")[2]
    assert body["timezone"] == zone
    for key in ("users_last_hour", "users_today", "users_last_7_days", "users_last_31_days"):
        value, failed = openl2m_usage(platform, now, key, tz=zone)
        assert body["usage"][key]["value"] == value - failed, key
    assert body["usage"]["users_last_31_days"]["value"] > body["usage"]["users_last_7_days"][
        "value"] > 0
    for window in OPENL2M_WINDOWS:
        assert body["usage"][f"change_events_{window}"]["value"] == platform.scalar(
            f"SELECT count(*) FROM switches_log WHERE type = 1 AND {OPENL2M_WINDOWS[window]}",
            now=now, tz=zone), window
    assert body["usage"]["change_events_total"]["value"] == platform.scalar(
        "SELECT count(*) FROM switches_log WHERE type = 1")


def test_openl2m_users_and_no_sessions(openl2m):
    platform, now = openl2m
    body = export(example("openl2m.yaml", platform.url), now)
    assert body["metrics"]["usage_users"] == dict(platform.query(
        "SELECT CASE WHEN is_active THEN 'enabled' ELSE 'disabled' END, count(*) "
        "FROM auth_user GROUP BY 1"))
    assert sum(row["is_admin"] for row in body["users"]) == platform.scalar(
        "SELECT count(*) FROM auth_user WHERE is_superuser")
    # Django's sessions are opaque to SQL, so the recipe has none and sessions does not apply.
    assert body["collectors"]["sessions"]["state"] == "not_applicable"


def openl2m_api_stats(openl2m: Platform, now: datetime, tz: str) -> dict[str, Any]:
    """OpenL2M's APIStatsView answer, values only: get_database_info and get_usage_info
    (switches/stats.py) transcribed to SQL on its tables, in its key order. users_* less the
    failed-login row, which OpenL2M counts as a user and the exporter does not."""
    def count(sql: str, window: str | None = None) -> int:
        where = f" AND {OPENL2M_WINDOWS[window]}" if window else ""
        return openl2m.scalar(sql + where, now=now, tz=tz)

    distinct_devices = "SELECT count(DISTINCT switch_id) FROM switches_log WHERE "
    groups = openl2m.scalar("SELECT count(*) FROM switches_switchgroup g WHERE (SELECT count(*) "
                            "FROM switches_switchgroupmembership m "
                            "WHERE m.switchgroup_id = g.id) > 0")
    database = {"switches": count("SELECT count(*) FROM switches_switch"),
                **({"switchgroups": groups} if groups else {}),
                **{key: count(f"SELECT count(*) FROM {table}") for key, table in (
                    ("vlans", "switches_vlan"), ("vlan_groups", "switches_vlangroup"),
                    ("snmp_profiles", "switches_snmpprofile"),
                    ("credentials_profiles", "switches_netmikoprofile"),
                    ("commands", "switches_command"), ("command_lists", "switches_commandlist"),
                    ("api_tokens", "users_token"), ("log_entries", "switches_log"))}}

    def counter(name: str) -> int:
        return openl2m.scalar("SELECT value FROM counters_counter WHERE name = :name", name=name)

    log = "SELECT count(*) FROM switches_log WHERE "
    usage = {
        **{f"devices_{w}": count(distinct_devices + "type IN (0, 1) AND switch_id IS NOT NULL", w)
           for w in ("last_hour", "today")},
        **{f"devices_{w}": count(distinct_devices + "switch_id IS NOT NULL", w)
           for w in ("last_7_days", "last_31_days")},
        **{f"changes_{w}": count(log + "type = 1", w) for w in OPENL2M_WINDOWS},
        "changes_total": counter("changes"),
        **{f"users_{w}": int.__sub__(*openl2m_usage(openl2m, now, f"users_{w}", tz))
           for w in OPENL2M_WINDOWS},
        **{f"api_calls_{w}": count(log + "type = 5 AND action = 95", w)
           for w in ("today", "last_7_days", "last_31_days")},
        **{f"commands_{w}": count(log + "type = 4", w)
           for w in ("today", "last_7_days", "last_31_days")},
        "commands_total": counter("commands"),
    }
    return {"database": database, "usage": usage}


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_openl2m_drop_in_api_stats_is_openl2ms_answer(openl2m, zone, tmp_path):
    """GET /api/stats/ with a Token key: OpenL2M's keys in its order, every value its own
    definition's on the same database, at midnight and in the afternoon, in two TIME_ZONEs."""
    platform, now = openl2m
    config = example("openl2m.yaml", platform.url, dau_zones=[zone],
                     history=tmp_path / "history.db")
    with serving(config, now, zone) as url:
        response = requests.get(url + "/api/stats/", timeout=30,
                                headers={"Authorization": f"Token {API_KEY}"})
    SCHEMA["/api/stats/"]["GET"].validate_response(response)
    body = response.json()
    expected = openl2m_api_stats(platform, now, zone)
    assert {part: {key: item["value"] for key, item in body[part].items()}
            for part in body} == expected
    assert list(body["usage"]) == list(expected["usage"])
    assert list(body["database"]) == list(expected["database"])
    assert all(isinstance(item["label"], str) and item["label"]
               for part in body.values() for item in part.values())
    usage = expected["usage"]
    assert usage["devices_last_31_days"] > usage["devices_last_7_days"] > 0
    assert usage["changes_total"] > usage["changes_last_31_days"] > usage["changes_today"]


@pytest.mark.parametrize("openl2m", ["afternoon"], indirect=True)
def test_openl2m_drop_in_refuses_as_openl2m_does(openl2m, tmp_path):
    """DRF's 401s for no token and a wrong one, with WWW-Authenticate: Token; Bearer works too."""
    platform, now = openl2m
    config = example("openl2m.yaml", platform.url, history=tmp_path / "history.db")
    with serving(config, now, "UTC") as url:
        missing = get(url + "/api/stats/", None)
        wrong = get(url + "/api/stats/", "Token " + "x" * 40)
        bearer = get(url + "/api/stats/", f"Bearer {API_KEY}")
    assert missing[0] == wrong[0] == 401
    assert missing[2] == {"detail": "Authentication credentials were not provided."}
    assert wrong[2] == {"detail": "Invalid token."}
    assert missing[1]["WWW-Authenticate"] == wrong[1]["WWW-Authenticate"] == "Token"
    assert bearer[0] == 200


def test_openl2m_events_reach_metrics(openl2m):
    """The events collector on the recipe: usage_events of change in all time is every change
    entry, undated ones included; usage_total holds the database counts."""
    platform, now = openl2m
    samples = events_metrics(example("openl2m.yaml", platform.url), now)
    assert samples["usage_events", "change", "total"] == platform.scalar(
        "SELECT count(*) FROM switches_log WHERE type = 1")
    assert samples["usage_events", "change", "total"] > platform.scalar(
        "SELECT count(*) FROM switches_log WHERE type = 1 AND \"timestamp\" IS NOT NULL")
    assert samples["usage_total", "log_entries"] == platform.scalar(
        "SELECT count(*) FROM switches_log")


def test_openl2m_daily_activity_is_users_today_of_each_day(openl2m):
    """Each UTC day of daily_activity is OpenL2M's users_today at that day's end (TIME_ZONE UTC),
    less the failed-login row."""
    platform, _ = openl2m
    days = utc_days(relation_rows(example("openl2m.yaml", platform.url), "daily_activity"))
    rows = platform.query("""
        SELECT day, count(*), bool_or(user_id IS NULL)
        FROM (SELECT DISTINCT ("timestamp" AT TIME ZONE 'UTC')::date AS day, user_id
              FROM switches_log WHERE type = 5) s
        GROUP BY day""")
    assert dict(days) == {day: users - failed for day, users, failed in rows if users - failed}
    assert len(days) > 30


# --- the profile, the config and start-up ----------------------------------------------------


@pytest.mark.parametrize("name", ["coder.yaml", "odk-central.yaml", "openl2m.yaml"])
def test_the_docs_show_the_tested_example_files(name):
    doc = (ROOT / "docs" / "custom-sql.md").read_text()
    assert f"```yaml\n{(EXAMPLES / name).read_text()}```" in doc


PEOPLE = ("CREATE TABLE people (uid TEXT, name TEXT, state TEXT, seen INTEGER)",
          "INSERT INTO people VALUES ('ann', 'Ann', 'on', 1700000000), "
          "('bob', 'Bob', 'off', NULL), ('cy', 'Cy', 'on', 1700086000)")
USERS_SQL = ("SELECT uid AS user_id, name AS display_name, NULL AS backend, state AS status, "
             "0 AS is_admin, NULL AS created_at, seen AS last_login FROM people")
ACTIVITY_SQL = "SELECT uid AS user_id, seen AS last_active FROM people WHERE seen IS NOT NULL"


def people_config(tmp_path: Path, **relations: str) -> Config:
    path = tmp_path / "people.db"
    if not path.exists():
        sqlite_execute(path, *PEOPLE)
    return make_config(f"sqlite:///{path}", "custom", database={"relations": relations})


def test_the_profile_provides_exactly_the_configured_relations(tmp_path):
    config = people_config(tmp_path, users=USERS_SQL, activity=ACTIVITY_SQL)
    assert isinstance(profile_for(config.database), CustomProfile)
    assert profile_for(config.database).provides() == {"users", "activity"}
    runner = Runner(config, clock=lambda: 1700086400)
    snapshot = runner.run_all()
    runner.close()
    assert snapshot.collectors["users"].state == "ok"
    assert snapshot.collectors["shares"].state == "not_applicable"
    assert snapshot.collectors["sessions"].last_error == "custom has no sessions"


def test_a_missing_column_stops_start_up_naming_it(tmp_path):
    users = USERS_SQL.replace("0 AS is_admin, ", "")
    runner = Runner(people_config(tmp_path, users=users, activity=ACTIVITY_SQL))
    with pytest.raises(StartupError, match=r"^relation users has no column is_admin$"):
        runner.preflight()
    runner.close()


def test_columns_are_matched_by_name_and_the_sql_reaches_the_database_verbatim(tmp_path):
    """Any column order, extra columns, and colons in string literals (which SQLAlchemy's text()
    would take for bind parameters) are fine."""
    users = ("SELECT seen AS last_login, 'x:y' AS extra, NULL AS created_at, 0 AS is_admin, "
             "state AS status, NULL AS backend, name || ':' || 'n:a' AS display_name, "
             "uid AS user_id FROM people")
    config = people_config(tmp_path, users=users, activity=ACTIVITY_SQL)
    body = export(config, datetime.fromtimestamp(1700086400, UTC))
    assert body["metrics"]["usage_users"] == {"on": 2, "off": 1}
    assert body["metrics"]["usage_users_active"]["1d"] == 2
    assert {row["user_id"]: row["display_name"] for row in body["users"]} == \
        {"ann": "Ann:n:a", "bob": "Bob:n:a", "cy": "Cy:n:a"}


def test_postgresql_casts_colons_and_percent_signs(coder):
    """On psycopg (pyformat parameters), '%' in a LIKE and '::' casts pass through too."""
    relations = {"users": "SELECT id::text AS user_id, 'a:b' AS display_name, NULL AS backend, "
                          "status::text AS status, 0 AS is_admin, NULL AS created_at, "
                          "NULL AS last_login FROM users WHERE username LIKE 'regular-%'",
                 "activity": example("coder.yaml", coder.url).database.relations["activity"]}
    config = make_config(coder.url, "custom", database={"relations": relations})
    body = export(config, CODER_NOW)
    assert sum(body["metrics"]["usage_users"].values()) == coder.scalar(
        "SELECT count(*) FROM users WHERE username LIKE 'regular-%'") > 0
    assert {row["display_name"] for row in body["users"]} == {"a:b"}


@pytest.mark.parametrize(("database", "problem"), [
    ({}, "database.relations: is required for platform custom"),
    ({"relations": {"users": USERS_SQL, "logins": "SELECT 1"}},
     "database.relations.logins: unknown relation (known: users, activity,"),
    ({"relations": {"users": "  "}}, "database.relations.users: expected the text of a SELECT"),
    ({"relations": ["SELECT 1"]}, "database.relations: expected a mapping of relation name"),
])
def test_config_errors_name_the_relation(database, problem):
    with pytest.raises(ConfigError) as error:
        make_config("sqlite:///platform.db", "custom", database=database)
    assert any(p.startswith(problem) for p in error.value.problems), error.value.problems


def test_only_the_custom_platform_takes_relations():
    with pytest.raises(ConfigError, match="only the custom platform takes relations"):
        make_config("sqlite:///platform.db", "nextcloud",
                    database={"relations": {"users": USERS_SQL}})
