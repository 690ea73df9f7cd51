"""Coder's insights routes over a real socket: GET /api/v2/insights/daus and
/api/v2/insights/user-status-counts, answered from the history the dau collector records from a
database with Coder's tables (users, template_usage_stats, user_status_changes, user_deleted).

Every expected answer is computed here from the database rows, in plain Python, the way coderd
computes it (docs/platforms/custom.md, "Coder"): DAUs over buckets that start at
UTC midnights whatever tz_offset says, labelled with their date in the tz_offset zone; status
counts at each local midnight, from each user's latest change, deleted users dropping out. The
errors are coderd's: validations of httpapi.QueryParamParser with Go's strconv messages, the
timezone errors of insightsUserStatusCounts, the 401 of the API key middleware.

The data (SQLite) spans 110 days with a quiet week, users created, made dormant, suspended and
back, deleted mid-range and at a local midnight, changes at midnights, and a system user. On
PostgreSQL the tables are Coder's own (tests/fixtures/coder/schema.sql, from coderd's dump.sql,
triggers on), written with coderd's statements, read through docs/examples/coder.yaml, and every
answer is compared with Coder's own queries (tests/fixtures/coder/insights.sql) on the same
database.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import create_engine, text

from collectors import available
from exporter import api
from exporter.config import Config, parse_config
from exporter.http import App, Context
from exporter.runner import Runner
from exporter.server import HttpServer
from tests.conftest import API_KEY, ROOT, make_config
from tests.platforms.custom_platforms import CODER_SCHEMA, CODER_UPDATES, build_coder
from tests.platforms.custom_platforms import coder_daus as coder_daus_query
from tests.platforms.custom_platforms import coder_status_counts as coder_status_counts_query

DAUS = "/api/v2/insights/daus"
STATUS_COUNTS = "/api/v2/insights/user-status-counts"
SESSION = {"Coder-Session-Token": API_KEY}
SIGNED_OUT = "You are signed out or your session has expired. Please sign in again to continue."
INVALID = "Query parameters have invalid values."
ZONES = ["UTC", "Etc/GMT-3", "America/St_Johns"]
HOUR, DAY = 3600, 86400
HALF_HOUR = timedelta(minutes=30)
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")

NOW = datetime(2026, 3, 20, 14, 25, tzinfo=UTC)  # a Friday afternoon
LATE = datetime(2026, 3, 20, 23, 40, tzinfo=UTC)  # the hour before a UTC midnight
QUIET = [date(2026, 2, 2) + timedelta(days=n) for n in range(4)]  # nobody used a workspace
ST_JOHNS = ZoneInfo("America/St_Johns")  # UTC-3:30, UTC-2:30 from 8 March 2026 (DST)


def utc(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


# --- the Coder database ------------------------------------------------------------------------


@dataclass
class Person:
    """A Coder user: status changes as Coder's trigger records them (the first on INSERT, at
    creation), and when the account was deleted."""

    name: str
    changes: list[tuple[datetime, str]]
    deleted: datetime | None = None
    system: bool = False
    rate: float = 0.6  # chance of using a workspace on a weekday
    id: str = field(init=False)

    def __post_init__(self) -> None:
        self.id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"coder-test/{self.name}"))

    def status_at(self, when: datetime) -> str | None:
        if self.deleted is not None and self.deleted <= when:
            return None
        current = None
        for changed_at, status in self.changes:
            if changed_at <= when:
                current = status
        return current


def people() -> list[Person]:
    rng = random.Random(2026)
    everyone = [
        Person("admin", [(utc("2025-05-01 09:00"), "active")], rate=0.9),
        Person("prebuilds", [(utc("2025-09-01 00:00"), "active")], system=True, rate=0),
        Person("never-logged-in", [(utc("2025-11-03 10:00"), "dormant")], rate=0),
        # Created mid-range: dormant (Coder's default) until the first login the next day.
        Person("newcomer", [(utc("2026-02-10 13:00"), "dormant"),
                            (utc("2026-02-11 08:15"), "active")]),
        # Made dormant by Coder's job exactly at a UTC midnight: dormant at that midnight.
        Person("lapsing", [(utc("2025-06-01 08:00"), "dormant"),
                           (utc("2025-06-01 09:00"), "active"),
                           (utc("2026-03-01 00:00"), "dormant")], rate=0.2),
        Person("suspended-and-back", [(utc("2025-07-01 08:00"), "dormant"),
                                      (utc("2025-07-01 08:30"), "active"),
                                      (utc("2026-02-20 16:00"), "suspended"),
                                      (utc("2026-03-05 11:00"), "active")]),
        Person("suspended", [(utc("2025-08-01 08:00"), "dormant"),
                             (utc("2025-08-01 08:05"), "active"),
                             (utc("2026-03-10 09:00"), "suspended")]),
        # Back from dormancy exactly at a local midnight in St. John's (03:30 UTC in February).
        Person("returning", [(utc("2025-04-01 08:00"), "dormant"),
                             (utc("2025-04-01 09:00"), "active"),
                             (utc("2025-12-15 10:00"), "dormant"),
                             (datetime(2026, 2, 25, tzinfo=ST_JOHNS), "active")]),
        Person("deleted-mid-range", [(utc("2025-06-10 08:00"), "dormant"),
                                     (utc("2025-06-10 09:00"), "active")],
               deleted=utc("2026-02-15 10:00")),
        # Deleted exactly at a local midnight in St. John's: gone at that midnight.
        Person("deleted-at-midnight", [(utc("2025-06-11 08:00"), "dormant"),
                                       (utc("2025-06-11 09:00"), "active")],
               deleted=datetime(2026, 3, 12, tzinfo=ST_JOHNS)),
        Person("deleted-long-ago", [(utc("2025-06-12 08:00"), "dormant"),
                                    (utc("2025-06-12 09:00"), "active")],
               deleted=utc("2025-12-01 12:00")),
    ]
    for n in range(14):
        created = utc("2025-03-01 08:00") + timedelta(days=rng.uniform(0, 250))
        everyone.append(Person(f"regular-{n:02d}", [
            (created, "dormant"), (created + timedelta(hours=rng.uniform(1, 48)), "active")],
            rate=rng.uniform(0.2, 0.9)))
    return everyone


def usage_buckets(everyone: Sequence[Person]) -> list[tuple[datetime, str, str]]:
    """(start, template, user id) of the 30-minute buckets of template_usage_stats: workspace
    use at any hour while a user is active, none on the quiet days."""
    rng = random.Random(61)
    templates = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"coder-test/template-{n}")) for n in range(3)]
    buckets = set()
    day = date(2025, 12, 1)
    while day <= NOW.date():
        for person in everyone:
            chance = person.rate if day.weekday() < 5 else person.rate / 5
            if day in QUIET or rng.random() >= chance:
                continue
            for _ in range(rng.randint(1, 3)):
                start = datetime.combine(day, time(), UTC) + rng.randrange(48) * HALF_HOUR
                if start <= NOW - timedelta(minutes=5) and person.status_at(start) == "active":
                    buckets.add((start, rng.choice(templates), person.id))
        day += timedelta(days=1)
    # Either side of a UTC midnight: two UTC days, whatever tz_offset labels them.
    admin = everyone[0].id
    buckets |= {(utc("2026-03-18 23:30"), templates[0], admin),
                (utc("2026-03-19 00:00"), templates[0], admin)}
    return sorted(buckets)


SQLITE_DDL = """
CREATE TABLE users (
    id TEXT PRIMARY KEY, email TEXT NOT NULL, username TEXT NOT NULL, name TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'dormant',
    rbac_roles TEXT NOT NULL DEFAULT '{}', login_type TEXT NOT NULL DEFAULT 'password',
    deleted BOOLEAN NOT NULL DEFAULT 0,
    last_seen_at TEXT NOT NULL DEFAULT '0001-01-01 00:00:00', is_system BOOLEAN NOT NULL);
CREATE TABLE user_status_changes (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users (id), new_status TEXT NOT NULL,
    changed_at TEXT NOT NULL);
CREATE TABLE user_deleted (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users (id), deleted_at TEXT NOT NULL);
CREATE TABLE template_usage_stats (
    start_time TEXT NOT NULL, end_time TEXT NOT NULL, template_id TEXT NOT NULL,
    user_id TEXT NOT NULL, usage_mins INTEGER NOT NULL,
    PRIMARY KEY (start_time, template_id, user_id));
"""
EPOCH = "CAST(strftime('%s', {}) AS INTEGER)"
# docs/examples/coder.yaml in SQLite's dialect.
SQLITE_RELATIONS = {
    "users": f"""
        SELECT id AS user_id, COALESCE(NULLIF(name, ''), username) AS display_name,
               login_type AS backend, CASE WHEN deleted THEN 'deleted' ELSE status END AS status,
               CASE WHEN rbac_roles LIKE '%owner%' THEN 1 ELSE 0 END AS is_admin,
               {EPOCH.format('created_at')} AS created_at,
               CASE WHEN last_seen_at > '0001-01-01 00:00:00'
                    THEN {EPOCH.format('last_seen_at')} END AS last_login
        FROM users WHERE NOT is_system""",
    "activity": f"""
        SELECT user_id, MAX({EPOCH.format('start_time')}) AS last_active
        FROM template_usage_stats GROUP BY user_id""",
    "daily_activity": f"""
        SELECT DISTINCT user_id, {EPOCH.format('start_time')} / 86400 * 86400 AS day
        FROM template_usage_stats""",
    "status_changes": f"""
        SELECT c.user_id, c.new_status AS status, {EPOCH.format('c.changed_at')} AS changed_at
        FROM user_status_changes c JOIN users u ON u.id = c.user_id WHERE NOT u.is_system
        UNION ALL
        SELECT d.user_id, 'deleted', {EPOCH.format('d.deleted_at')}
        FROM user_deleted d JOIN users u ON u.id = d.user_id WHERE NOT u.is_system""",
}


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(sep=" ")


def build_sqlite_coder(path: Path) -> None:
    everyone = people()
    buckets = usage_buckets(everyone)
    last_seen = {user: start + HALF_HOUR for start, _, user in buckets}
    with closing(sqlite3.connect(path)) as db:
        db.executescript(SQLITE_DDL)
        for person in everyone:
            (created, _), (changed, status) = person.changes[0], person.changes[-1]
            db.execute(
                "INSERT INTO users (id, email, username, name, created_at, updated_at, status, "
                "rbac_roles, deleted, last_seen_at, is_system) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?)",
                (person.id, f"{person.name}@example.org", person.name, person.name.title(),
                 stamp(created), stamp(person.deleted or changed), status,
                 "{owner}" if person.name == "admin" else "{}", person.deleted is not None,
                 stamp(last_seen[person.id]).removesuffix("+00:00") if person.id in last_seen
                 else "0001-01-01 00:00:00", person.system))
            db.executemany("INSERT INTO user_status_changes VALUES (?, ?, ?, ?)", [
                (str(uuid.uuid4()), person.id, status, stamp(when))
                for when, status in person.changes])
            if person.deleted is not None:
                db.execute("INSERT INTO user_deleted VALUES (?, ?, ?)",
                           (str(uuid.uuid4()), person.id, stamp(person.deleted)))
        db.executemany("INSERT INTO template_usage_stats VALUES (?, ?, ?, ?, 30)", [
            (stamp(start), stamp(start + HALF_HOUR), template, user)
            for start, template, user in buckets])
        db.commit()


# --- the rows, and Coder's answers computed from them ------------------------------------------


@dataclass(frozen=True)
class CoderRows:
    """The rows Coder's two queries read."""

    usage: list[tuple[str, datetime, datetime]]  # template_usage_stats: user, start, end
    changes: list[tuple[str, str, datetime]]  # user_status_changes: user, status, changed_at
    deleted: dict[str, datetime]  # user_deleted: user -> deleted_at
    system: set[str]  # users.is_system


def aware(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC)


def read_rows(url: str) -> CoderRows:
    """Every row, as stored."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            def rows(sql: str) -> list[Any]:
                return list(conn.execute(text(sql)))
            return CoderRows(
                usage=[(u, aware(s), aware(e)) for u, s, e in rows(
                    "SELECT user_id, start_time, end_time FROM template_usage_stats")],
                changes=[(u, s, aware(c)) for u, s, c in rows(
                    "SELECT user_id, new_status, changed_at FROM user_status_changes")],
                deleted={u: aware(d) for u, d in rows(
                    "SELECT user_id, deleted_at FROM user_deleted")},
                system={u for u, in rows("SELECT id FROM users WHERE is_system")})
    finally:
        engine.dispose()


def next_hour(now: datetime) -> int:
    return (int(now.timestamp()) // HOUR + 1) * HOUR


def coder_daus(rows: CoderRows, now: datetime, tz_offset: int) -> dict[str, Any]:
    """deploymentDAUs: buckets from the UTC midnight 60 days before the next hour's, a day each,
    the last one ending at the next hour; distinct users with a usage row inside a bucket; each
    labelled with its start's date in the tz_offset zone (positive = east)."""
    end = next_hour(now)
    entries = []
    for start in range(end // DAY * DAY - 60 * DAY, end, DAY):
        stop = min(start + DAY, end)
        users = {user for user, begin, finish in rows.usage
                 if begin.timestamp() >= start and finish.timestamp() <= stop}
        label = datetime.fromtimestamp(start + tz_offset * HOUR, UTC).date()
        entries.append({"date": label.isoformat(), "amount": len(users)})
    return {"entries": entries, "tz_hour_offset": tz_offset}


def coder_status_counts(rows: CoderRows, now: datetime, zone_name: str) -> dict[str, Any]:
    """GetUserStatusCounts (newest form) as insightsUserStatusCounts calls it."""
    zone = ZoneInfo(zone_name)
    end = datetime.fromtimestamp(next_hour(now), UTC)
    start = datetime.combine(end.astimezone(zone).date() - timedelta(days=60), time(), zone)
    deleted = rows.deleted

    def deleted_before(user: str, moment: datetime) -> bool:
        return user in deleted and deleted[user] < moment

    humans = [c for c in rows.changes if c[0] not in rows.system]
    latest_before: dict[str, tuple[str, str, datetime]] = {}
    for change in sorted(humans, key=lambda c: c[2]):
        user, _, changed_at = change
        if changed_at < start and not (deleted_before(user, changed_at)
                                       or deleted_before(user, start)):
            latest_before[user] = change
    during = [c for c in humans
              if start <= c[2] <= end and not deleted_before(c[0], c[2])]
    relevant = [*latest_before.values(), *during]
    statuses = sorted({status for _, status, _ in relevant})
    # generate_series over local wall-clock time: every local midnight up to the end.
    midnights = []
    day = start.date()
    while datetime.combine(day, time()) <= end.astimezone(zone).replace(tzinfo=None):
        midnights.append(datetime.combine(day, time(), zone))
        day += timedelta(days=1)
    counts: dict[str, list[dict[str, Any]]] = {status: [] for status in statuses}
    for midnight in midnights:
        latest: dict[str, tuple[datetime, str]] = {}
        for user, status, changed_at in relevant:
            if changed_at <= midnight and (user not in latest or changed_at > latest[user][0]):
                latest[user] = (changed_at, status)
        for status in statuses:
            count = sum(1 for user, (_, held) in latest.items()
                        if held == status and not (user in deleted and deleted[user] <= midnight))
            counts[status].append({
                "date": midnight.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "count": count})
    return {"status_counts": counts}


# --- serving ----------------------------------------------------------------------------------


def request(base: str, path: str, headers: dict[str, str] | None = None,
            ) -> tuple[int, dict[str, str], bytes]:
    """One GET with http.client, which sends the path exactly as given."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("GET", path, headers=SESSION if headers is None else headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def coder_get(base: str, path: str, status: int = 200,
              headers: dict[str, str] | None = None) -> Any:
    """A Coder answer: its status, httpapi.Write's headers and one line of JSON."""
    code, answer_headers, body = request(base, path, headers)
    assert code == status, body
    assert answer_headers["Content-Type"] == "application/json; charset=utf-8"
    assert answer_headers["Content-Length"] == str(len(body))
    assert body.endswith(b"}\n") and body.count(b"\n") == 1
    return json.loads(body)


@contextmanager
def exported(config: Config, moments: Sequence[datetime]) -> Iterator[tuple[Runner, str]]:
    """The exporter run at each moment in turn (the first run backfills), then served with its
    clock at the last."""
    clock = [moments[0].timestamp()]
    runner = Runner(config, clock=lambda: clock[0])
    runner.preflight()
    for moment in moments:
        clock[0] = moment.timestamp()
        assert runner.run_all().failures == {}
    context = Context(lambda: runner.snapshot, runner.config.api_keys, runner.history,
                      runner.clock)
    server = HttpServer(App(context, api.routes(context)), "127.0.0.1", 0).start()
    try:
        yield runner, f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
        runner.close()


@pytest.fixture(scope="module")
def coder_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("coder") / "coder.db"
    build_sqlite_coder(path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def rows(coder_db: str) -> CoderRows:
    return read_rows(coder_db)


def sqlite_config(url: str) -> Config:
    return make_config(url, "custom", database={"relations": SQLITE_RELATIONS},
                       collectors={"dau": {"timezones": ZONES}})


@pytest.fixture(scope="module")
def base_url(coder_db: str) -> Iterator[str]:
    with exported(sqlite_config(coder_db), [NOW]) as (_, url):
        yield url


@pytest.fixture(scope="module")
def late_url(coder_db: str) -> Iterator[str]:
    """Run at NOW, and again in the hour before the next UTC midnight."""
    with exported(sqlite_config(coder_db), [NOW, LATE]) as (_, url):
        yield url


# --- the data is what the tests need ------------------------------------------------------------


def test_the_database_spans_the_cases_coder_distinguishes(rows):
    first_day = (NOW - timedelta(days=60)).date()
    used = {begin.date() for _, begin, _ in rows.usage}
    assert min(used) < first_day - timedelta(days=30)
    assert set(QUIET) & used == set()
    assert sum(1 for when in rows.deleted.values() if when.date() > first_day) == 2
    assert len({status for _, status, when in rows.changes if when.date() > first_day}) == 3
    assert len(rows.system) == 1


# --- /api/v2/insights/daus --------------------------------------------------------------------


@pytest.mark.parametrize("tz_offset", [0, 3, -3, 14, -12, 30, -25])
def test_daus_are_coders_entries_for_every_offset(base_url, rows, tz_offset):
    """61 entries (60 days and today's part), amounts per UTC day, zeros on days without use;
    tz_offset only relabels them, a negative one with the previous date."""
    query = "" if tz_offset == 0 else f"?tz_offset={tz_offset}"
    body = coder_get(base_url, DAUS + query)
    expected = coder_daus(rows, NOW, tz_offset)
    assert body == expected
    assert len(body["entries"]) == 61
    shift = timedelta(days=tz_offset // 24)
    assert body["entries"][-1]["date"] == (NOW.date() + shift).isoformat()
    zeros = {entry["date"] for entry in body["entries"] if entry["amount"] == 0}
    assert {(day + shift).isoformat() for day in QUIET} <= zeros
    assert sum(entry["amount"] for entry in body["entries"]) > 300


def test_daus_keep_the_buckets_either_side_of_a_utc_midnight_apart(base_url, rows):
    """The admin's use at 23:30 and at 00:00 UTC falls on two days for every tz_offset."""
    for tz_offset in (-3, 3):
        entries = {e["date"]: e["amount"] for e in
                   coder_get(base_url, f"{DAUS}?tz_offset={tz_offset}")["entries"]}
        shift = timedelta(days=tz_offset // 24)
        for day in (date(2026, 3, 18), date(2026, 3, 19)):
            expected = len({user for user, begin, _ in rows.usage if begin.date() == day})
            assert entries[(day + shift).isoformat()] == expected > 0


def test_daus_in_the_hour_before_utc_midnight_have_60_entries(late_url, rows):
    body = coder_get(late_url, f"{DAUS}?tz_offset=-3")
    assert body == coder_daus(rows, LATE, -3)
    assert len(body["entries"]) == 60


# --- /api/v2/insights/user-status-counts ------------------------------------------------------


@pytest.mark.parametrize("query", ["", "?timezone=UTC", "?timezone=UTC&tz_offset=0",
                                   "?timezone=Etc/GMT-3", "?tz_offset=3&interval=3600",
                                   "?timezone=America/St_Johns"])
def test_status_counts_are_coders_at_each_local_midnight(base_url, rows, query):
    zone = {"": "UTC", "?tz_offset=3&interval=3600": "Etc/GMT-3"}.get(
        query, query.partition("timezone=")[2].partition("&")[0])
    body = coder_get(base_url, STATUS_COUNTS + query)
    expected = coder_status_counts(rows, NOW, zone)
    assert body == expected
    assert set(body["status_counts"]) == {"active", "dormant", "suspended"}
    for series in body["status_counts"].values():
        assert len(series) == 61
        assert all(RFC3339_UTC.fullmatch(point["date"]) for point in series)
    [last] = {series[-1]["date"] for series in body["status_counts"].values()}
    midnight = datetime.combine(NOW.astimezone(ZoneInfo(zone)).date(), time(), ZoneInfo(zone))
    assert datetime.fromisoformat(last) == midnight


def totals(body: dict[str, Any]) -> dict[str, int]:
    """Users counted at each point, every status together."""
    result: dict[str, int] = {}
    for series in body["status_counts"].values():
        for point in series:
            result[point["date"]] = result.get(point["date"], 0) + point["count"]
    return result


def test_deleted_users_drop_out_from_their_deletion_on(base_url):
    """deleted-mid-range goes at 2026-02-15 10:00 UTC: counted at that day's midnight, not at
    the next; deleted-at-midnight goes exactly at a St. John's midnight, which no longer counts
    it. Nobody else changed on those days."""
    utc_totals = totals(coder_get(base_url, STATUS_COUNTS))
    assert utc_totals["2026-02-15T00:00:00Z"] - utc_totals["2026-02-16T00:00:00Z"] == 1
    local = totals(coder_get(base_url, f"{STATUS_COUNTS}?timezone=America/St_Johns"))
    # Midnights in St. John's: 03:30 UTC before DST (8 March), 02:30 UTC after.
    assert local["2026-03-11T02:30:00Z"] - local["2026-03-12T02:30:00Z"] == 1
    assert "2026-03-01T03:30:00Z" in local and "2026-03-09T02:30:00Z" in local


def test_a_change_at_a_midnight_counts_at_that_midnight(base_url):
    """lapsing turns dormant at 00:00 UTC on 1 March; returning comes back at a St. John's
    midnight: both already count there."""
    utc_series = coder_get(base_url, STATUS_COUNTS)["status_counts"]["dormant"]
    dormant = {point["date"]: point["count"] for point in utc_series}
    assert dormant["2026-03-01T00:00:00Z"] - dormant["2026-02-28T00:00:00Z"] == 1
    local = coder_get(base_url, f"{STATUS_COUNTS}?timezone=America/St_Johns")["status_counts"]
    active = {point["date"]: point["count"] for point in local["active"]}
    assert active["2026-02-25T03:30:00Z"] - active["2026-02-24T03:30:00Z"] == 1


def test_status_counts_before_a_utc_midnight_lack_only_the_coming_midnight(late_url, rows):
    """At 23:40 UTC Coder already answers 00:00 UTC of tomorrow, 20 minutes ahead; the history
    has that midnight once the collector runs after it. Zones where the day has turned, or has
    not nearly ended, answer in full."""
    body = coder_get(late_url, STATUS_COUNTS)
    expected = coder_status_counts(rows, LATE, "UTC")
    coming = {series[-1]["date"] for series in expected["status_counts"].values()}
    assert coming == {"2026-03-21T00:00:00Z"}
    assert body["status_counts"] == {status: series[:-1] for status, series
                                     in expected["status_counts"].items()}
    for zone in ("Etc/GMT-3", "America/St_Johns"):
        assert coder_get(late_url, f"{STATUS_COUNTS}?timezone={zone}") == \
            coder_status_counts(rows, LATE, zone)


# --- errors -----------------------------------------------------------------------------------


def invalid(*validations: tuple[str, str]) -> dict[str, Any]:
    return {"message": INVALID,
            "validations": [{"field": name, "detail": detail} for name, detail in validations]}


def not_an_integer(name: str, quoted: str, problem: str = "invalid syntax") -> tuple[str, str]:
    return name, (f'Query param "{name}" must be a valid integer '
                  f"(strconv.Atoi: parsing {quoted}: {problem})")


def not_a_param(name: str) -> tuple[str, str]:
    return name, f'Query param "{name}" is not a valid query param'


@pytest.mark.parametrize(("path", "expected"), [
    (f"{DAUS}?tz_offset=abc", invalid(not_an_integer("tz_offset", '"abc"'))),
    (f"{DAUS}?tz_offset=1.5", invalid(not_an_integer("tz_offset", '"1.5"'))),
    (f"{DAUS}?tz_offset=%2B2%20", invalid(not_an_integer("tz_offset", '"+2 "'))),
    (f"{DAUS}?tz_offset=1_0", invalid(not_an_integer("tz_offset", '"1_0"'))),
    (f"{DAUS}?tz_offset=9223372036854775808",
     invalid(not_an_integer("tz_offset", '"9223372036854775808"', "value out of range"))),
    (f"{DAUS}?tz_offset=-{'9' * 5000}",
     invalid(not_an_integer("tz_offset", f'"-{"9" * 5000}"', "value out of range"))),
    # Go's %q: control characters and bytes that are not UTF-8 escaped, the rest as is.
    (f"{DAUS}?tz_offset=%FF%0A%22%E2%82%AC%C2%A0",
     invalid(not_an_integer("tz_offset", '"\\xff\\n\\"€\\u00a0"'))),
    (f"{DAUS}?template_id=x", invalid(not_a_param("template_id"))),
    (f"{DAUS}?tz_offset=x&days=7&tz=UTC",
     invalid(not_an_integer("tz_offset", '"x"'), not_a_param("days"), not_a_param("tz"))),
    (f"{DAUS}?tz_offset=9223372036854775807", invalid(
        ("tz_offset", 'Query param "tz_offset" puts the dates outside the years 1 to 9999'))),
    (f"{STATUS_COUNTS}?interval=day&tz_offset=&foo=",
     invalid(not_an_integer("interval", '"day"'), not_a_param("foo"))),
    (f"{STATUS_COUNTS}?timezone=UTC&tz_offset=3",
     {"message": 'Provide either "timezone" or "tz_offset", not both.'}),
    (f"{STATUS_COUNTS}?timezone=Mars/Olympus_Mons",
     {"message": "Invalid timezone.", "detail": "unknown time zone Mars/Olympus_Mons"}),
    (f"{STATUS_COUNTS}?tz_offset=15",
     {"message": "Invalid timezone.", "detail": "unknown time zone Etc/GMT-15"}),
    (f"{STATUS_COUNTS}?timezone=../../etc/passwd",
     {"message": "Invalid timezone.", "detail": "time: invalid location name"}),
    (f"{STATUS_COUNTS}?timezone=/etc/localtime",
     {"message": "Invalid timezone.", "detail": "time: invalid location name"}),
    (f"{STATUS_COUNTS}?timezone=Europe/Berlin", invalid(
        ("timezone", 'No history is kept for time zone "Europe/Berlin"; add it to '
                     "collectors.dau.timezones."))),
    (f"{STATUS_COUNTS}?tz_offset=-5", invalid(
        ("tz_offset", 'No history is kept for time zone "Etc/GMT+5"; add it to '
                      "collectors.dau.timezones."))),
])
def test_bad_parameters_get_coders_400(base_url, path, expected):
    assert coder_get(base_url, path, status=400) == expected


def test_json_is_written_as_go_writes_it(base_url):
    """HTML characters as \\u escapes, as encoding/json does by default."""
    _, _, body = request(base_url, f"{DAUS}?%3Cb%3E=%26")
    assert b'"field":"\\u003cb\\u003e"' in body
    assert json.loads(body) == invalid(not_a_param("<b>"))


@pytest.mark.parametrize(("headers", "detail"), [
    ({}, 'Cookie "coder_session_token" or query parameter must be provided.'),
    ({"Coder-Session-Token": "abcdefghij-0123456789abcdefghijkl"}, "API key is invalid."),
    ({"Authorization": "Bearer wrong-key-0123456789"}, "API key is invalid."),
    ({"Coder-Session-Token": ""}, 'Cookie "coder_session_token" or query parameter must be '
                                  "provided."),
    # Two different keys, one of them right: which one counts would depend on the reader.
    ({"Coder-Session-Token": "wrong-key-0123456789", "Authorization": f"Bearer {API_KEY}"},
     "API key is invalid."),
    ({"Coder-Session-Token": "", "Authorization": f"Bearer {API_KEY}"}, "API key is invalid."),
])
def test_a_missing_or_wrong_key_gets_coders_401(base_url, headers, detail):
    for path in (DAUS, STATUS_COUNTS, f"{DAUS}?tz_offset=x"):
        assert coder_get(base_url, path, 401, headers) == {"message": SIGNED_OUT, "detail": detail}


def test_the_key_goes_in_coder_session_token_or_authorization(base_url):
    by_session = coder_get(base_url, DAUS)
    assert coder_get(base_url, DAUS, headers={"Authorization": f"Bearer {API_KEY}"}) == by_session


def test_without_history_both_routes_say_so(coder_db):
    config = sqlite_config(coder_db)
    runner = Runner(config, clock=NOW.timestamp)
    context = Context(lambda: runner.snapshot, config.api_keys, clock=runner.clock)
    server = HttpServer(App(context, api.routes(context)), "127.0.0.1", 0).start()
    try:
        for path in (DAUS, STATUS_COUNTS):
            assert coder_get(f"http://127.0.0.1:{server.port}", path, 404) == {
                "message": "History is not kept: enable the dau collector."}
    finally:
        server.stop()
        runner.close()


def test_daus_without_utc_days_say_what_to_configure(coder_db):
    config = make_config(coder_db, "custom", database={"relations": {
        name: sql for name, sql in SQLITE_RELATIONS.items() if name != "daily_activity"}},
        collectors={"dau": {"timezones": ["America/St_Johns"]}})
    with exported(config, [NOW]) as (_, url):
        assert coder_get(url, DAUS, 404) == {"message": "No daily active users are kept by UTC "
                                             "day: add UTC to collectors.dau.timezones."}
        assert coder_get(url, f"{STATUS_COUNTS}?timezone=America/St_Johns")["status_counts"]


# --- PostgreSQL: Coder's own schema, triggers and queries, and the documented recipe ----------

PG_NOW = datetime(2026, 11, 1, 15, 10, tzinfo=UTC)  # St. John's leaves DST this morning
PG_ZONES = [*ZONES, "Etc/GMT+5"]  # tz_offset=-5


def recipe(url: str, history: Path) -> Config:
    """docs/examples/coder.yaml pointed at `url`, keeping days in PG_ZONES."""
    raw = yaml.safe_load((ROOT / "docs" / "examples" / "coder.yaml").read_text())
    raw["database"]["url"] = url
    raw["collectors"]["dau"] = {"timezones": PG_ZONES}
    raw["history"] = {"url": f"sqlite:///{history}"}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("USAGE_EXPORTER_API_KEY", API_KEY)
        return parse_config(raw, collector_options={n: c.options for n, c in available().items()})


@pytest.fixture(scope="module")
def postgres_coder(postgres_server: Any) -> tuple[str, str]:
    admin = postgres_server.create_database("coder_insights")
    build_coder(admin, PG_NOW)
    return admin, postgres_server.readonly_url("coder_insights")


@pytest.fixture(scope="module")
def coder_pg_url(postgres_coder, tmp_path_factory) -> Iterator[str]:
    _, readonly = postgres_coder
    history = tmp_path_factory.mktemp("coder_pg") / "history.db"
    with exported(recipe(readonly, history), [PG_NOW]) as (_, url):
        yield url


def test_on_postgresql_the_data_has_the_cases_coder_counts_apart(postgres_coder):
    """Written by coderd's statements and recorded by Coder's trigger: a user suspended and
    later deleted, whose deletion carries the suspension's instant (the delete does not touch
    updated_at) inside the 60 days; users back from suspension and from dormancy; users never
    logged in (dormant); and the system user, whose history the trigger records too."""
    admin, _ = postgres_coder
    engine = create_engine(admin)
    try:
        with engine.connect() as conn:
            def count(sql: str) -> int:
                return conn.execute(text(sql), {"start": PG_NOW - timedelta(days=60)}).scalar_one()
            assert count("""SELECT count(*) FROM user_deleted d JOIN user_status_changes c
                            ON c.user_id = d.user_id AND c.changed_at = d.deleted_at
                            WHERE c.new_status = 'suspended' AND d.deleted_at > :start""") >= 1
            for earlier in ("suspended", "dormant"):
                assert count(f"""SELECT count(DISTINCT a.user_id) FROM user_status_changes a
                                 JOIN user_status_changes b ON b.user_id = a.user_id
                                 AND b.changed_at > a.changed_at AND b.new_status = 'active'
                                 WHERE a.new_status = '{earlier}' AND b.changed_at > :start
                                 AND a.changed_at > (SELECT min(changed_at) FROM
                                     user_status_changes f WHERE f.user_id = a.user_id)""") >= 2
            assert count("SELECT count(*) FROM users WHERE status = 'dormant' AND NOT deleted "
                         "AND last_seen_at = '0001-01-01'") >= 3
            assert count("SELECT count(*) FROM user_status_changes c JOIN users u "
                         "ON u.id = c.user_id WHERE u.is_system") == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("tz_offset", [0, -5, 3])
def test_on_postgresql_daus_are_coders_own_query(postgres_coder, coder_pg_url, tz_offset):
    """Every entry equals GetTemplateInsightsByInterval run as coderd runs it, on the same
    database."""
    admin, _ = postgres_coder
    body = coder_get(coder_pg_url, f"{DAUS}?tz_offset={tz_offset}")
    assert body == coder_daus_query(admin, PG_NOW, tz_offset)
    assert len(body["entries"]) == 61
    assert sum(entry["amount"] for entry in body["entries"]) > 100


@pytest.mark.parametrize(("query", "zone"), [
    ("?tz_offset=0", "UTC"), ("?tz_offset=-5", "Etc/GMT+5"), ("?tz_offset=3", "Etc/GMT-3"),
    ("?timezone=America/St_Johns", "America/St_Johns")])
def test_on_postgresql_status_counts_are_coders_own_query(postgres_coder, coder_pg_url, query,
                                                          zone):
    """Every cell equals GetUserStatusCounts run as coderd runs it, on the same database: the
    suspended-then-deleted user counted as suspended up to its deletion and then in no status,
    reactivated users back in active, dormant and system users as Coder counts them."""
    admin, _ = postgres_coder
    body = coder_get(coder_pg_url, STATUS_COUNTS + query)
    expected = coder_status_counts_query(admin, PG_NOW, zone)
    assert body == expected
    assert set(body["status_counts"]) == {"active", "dormant", "suspended"}
    assert {len(series) for series in body["status_counts"].values()} == {61}
    suspended = [point["count"] for point in body["status_counts"]["suspended"]]
    assert len(set(suspended)) > 1


def test_on_postgresql_statuses_nobody_holds_are_coders_series_of_zeros(postgres_server,
                                                                        tmp_path):
    """Ann and Bob were dormant (Coder's default) until their first login, and Bob was suspended
    and reinstated, all before the 60 days: Coder still answers a dormant and a suspended series
    of zeros, and so does the route."""
    name = "coder_zeros"
    admin = postgres_server.create_database(name)
    ann, bob = (uuid.uuid5(uuid.NAMESPACE_URL, f"coder-test/{who}") for who in ("ann", "bob"))
    engine = create_engine(admin)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(CODER_SCHEMA.read_text())
            conn.execute(text(  # InsertUser
                "INSERT INTO users (id, email, username, hashed_password, created_at, updated_at, "
                "rbac_roles, login_type) VALUES (:id, :email, :email, '', :at, :at, '{}', "
                "'password')"), [{"id": who, "email": f"{who}@example.org",
                                  "at": PG_NOW - timedelta(days=100)} for who in (ann, bob)])
            for who, status, days_ago in ((ann, "active", 99), (bob, "active", 99),
                                          (bob, "suspended", 90), (bob, "active", 80)):
                conn.execute(text(CODER_UPDATES["status"]), {
                    "id": who, "status": status, "when": PG_NOW - timedelta(days=days_ago)})
    finally:
        engine.dispose()
    config = recipe(postgres_server.readonly_url(name), tmp_path / "history.db")
    with exported(config, [PG_NOW]) as (_, url):
        body = coder_get(url, f"{STATUS_COUNTS}?tz_offset=0")
    assert body == coder_status_counts_query(admin, PG_NOW, "UTC")
    counts = {status: {point["count"] for point in series}
              for status, series in body["status_counts"].items()}
    assert counts == {"active": {2}, "dormant": {0}, "suspended": {0}}


PG_LATE = datetime(2026, 11, 1, 23, 40, tzinfo=UTC)  # the hour before a UTC midnight


def test_on_postgresql_in_the_hour_before_utc_midnight(postgres_coder, tmp_path):
    """Run at PG_NOW and again at 23:40 UTC: the DAUs are Coder's 60 entries for every offset;
    the status counts are Coder's in zones whose midnight is not coming within the hour, and in
    UTC all but the coming midnight, which Coder answers 20 minutes early and the history holds
    once the collector has run after it."""
    admin, readonly = postgres_coder
    with exported(recipe(readonly, tmp_path / "history.db"), [PG_NOW, PG_LATE]) as (_, url):
        for tz_offset in (0, -5, 3):
            body = coder_get(url, f"{DAUS}?tz_offset={tz_offset}")
            assert body == coder_daus_query(admin, PG_LATE, tz_offset)
            assert len(body["entries"]) == 60
        for query, zone in (("?tz_offset=-5", "Etc/GMT+5"), ("?tz_offset=3", "Etc/GMT-3")):
            assert coder_get(url, STATUS_COUNTS + query) == \
                coder_status_counts_query(admin, PG_LATE, zone)
        expected = coder_status_counts_query(admin, PG_LATE, "UTC")["status_counts"]
        assert {series[-1]["date"] for series in expected.values()} == {"2026-11-02T00:00:00Z"}
        assert coder_get(url, f"{STATUS_COUNTS}?tz_offset=0")["status_counts"] == {
            status: series[:-1] for status, series in expected.items()}
