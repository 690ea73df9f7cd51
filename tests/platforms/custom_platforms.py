"""Coder, ODK Central and OpenL2M databases for the custom-platform recipes: the tables the recipes
read, with the platforms' own column names and types (docs/platforms/custom.md, "Coder", "ODK
Central" and "OpenL2M"; Coder's dump.sql, Central's migrations, OpenL2M's Django models), and
realistic, deterministic data with the edge cases each recipe must handle.

Everything is dated relative to a fixed `now`, sessions included: the exporter decides by its own
clock whether a session has expired.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, text

from tests.conftest import FIXTURES

NAMESPACE = uuid.UUID("6f1c3e5e-52b4-4bde-9a07-1c0ffee15ea5")
DAY = timedelta(days=1)


def _load(url: str, ddl: str, steps: list[tuple[str, list[dict[str, Any]]]]) -> None:
    """Create the tables, then run each statement over its rows, in order."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(ddl)
            for statement, rows in steps:
                if rows:
                    conn.execute(text(statement), rows)
    finally:
        engine.dispose()


def _days(start: datetime, end: datetime) -> Iterator[datetime]:
    """Midnights (UTC) of the days from start's to end's, inclusive."""
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day <= end:
        yield day
        day += DAY


# --- Coder -----------------------------------------------------------------------------------

# Coder's own DDL (a subset of coderd/database/dump.sql, with its triggers): the status history
# comes from Coder's trigger, never from the test.
CODER_SCHEMA = FIXTURES / "coder" / "schema.sql"
# How Coder users live: (kind, how many, created between N and M days ago). Lapsed users stop
# using workspaces and the dormancy job marks them dormant 90 days after they were last seen,
# some inside the last 60 days; returning users come back from dormancy; reinstated users come
# back from a suspension; a suspended user deleted later keeps the suspension's instant as its
# deletion's (Coder's delete does not touch updated_at).
CODER_PEOPLE = (("regular", 18, 20, 380), ("lapsed", 8, 170, 380), ("never", 3, 20, 380),
                ("suspended", 3, 110, 380), ("returning", 2, 200, 380), ("deleted", 3, 60, 380),
                ("reinstated", 2, 120, 380), ("suspended-deleted", 2, 120, 380))
DORMANCY = timedelta(days=90)
HALF_HOUR = timedelta(minutes=30)
# The statements coderd runs (coderd/database/queries/users.sql): UpdateUserStatus and
# UpdateUserLastSeenAt set updated_at, which Coder's trigger records as the change's time;
# UpdateUserDeletedByID does not, so a deletion carries the user's last updated_at.
CODER_UPDATES = {
    "status": "UPDATE users SET status = CAST(:status AS user_status), updated_at = :when "
              "WHERE id = :id",
    "last_seen_at": "UPDATE users SET last_seen_at = :last_seen_at, updated_at = :when "
                    "WHERE id = :id",
    "deleted": "UPDATE users SET deleted = true WHERE id = :id",
}


def build_coder(url: str, now: datetime) -> None:
    rng = random.Random(20261101)
    templates = [uuid.uuid5(NAMESPACE, f"template-{t}") for t in ("docker", "k8s", "gpu")]
    users: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    usage: dict[tuple[datetime, uuid.UUID, uuid.UUID], dict[str, Any]] = {}

    def person(name: str, created: datetime, **extra: Any) -> uuid.UUID:
        user_id = uuid.uuid5(NAMESPACE, f"coder-{name}")
        users.append({"id": user_id, "email": f"{name}@example.org", "username": name,
                      "name": name.replace("-", " ").title() if rng.random() < 0.7 else "",
                      "hash": rng.randbytes(32), "created_at": created, "rbac_roles": [],
                      "login_type": "password", **extra})
        return user_id

    def change(user_id: uuid.UUID, when: datetime, **values: Any) -> None:
        changes.append({"id": user_id, "when": when, **values})

    def bucket(user_id: uuid.UUID, start: datetime, template: uuid.UUID) -> None:
        ssh, vscode = rng.randint(0, 30), rng.randint(0, 30)
        usage[(start, template, user_id)] = {
            "start_time": start, "end_time": start + HALF_HOUR, "template_id": template,
            "user_id": user_id, "median_latency_ms": round(rng.uniform(8, 120), 1),
            "usage_mins": max(ssh, vscode, 1), "ssh_mins": ssh, "vscode_mins": vscode}

    def work(user_id: uuid.UUID, start: datetime, end: datetime) -> datetime:
        """Workspace use on some days between start (a login) and end; returns when the user
        was last seen: the end of their last bucket, or the login."""
        rate, last = rng.uniform(0.3, 0.9), start
        for day in _days(start, end):
            if rng.random() >= (rate if day.weekday() < 5 else rate / 4):
                continue
            for _ in range(rng.randint(1, 4)):
                begin = day + rng.randint(14, 37) * HALF_HOUR  # 07:00-19:00 UTC
                if start <= begin and begin + HALF_HOUR <= end:
                    bucket(user_id, begin, rng.choice(templates))
                    last = max(last, begin + HALF_HOUR)
        change(user_id, last, last_seen_at=last.replace(tzinfo=None))
        return last

    def dormant_after(user_id: uuid.UUID, last_seen: datetime) -> datetime:
        """The dormancy job's run (every 15 minutes) after 90 days without use."""
        dormant_at = last_seen + DORMANCY + timedelta(minutes=rng.randint(1, 15))
        change(user_id, dormant_at, status="dormant")
        return dormant_at

    owner = person("admin", now - timedelta(days=400), rbac_roles=["owner"])
    change(owner, now - timedelta(days=399), status="active")
    work(owner, now - timedelta(days=399), now)
    # Buckets exactly on the window edges: inside 1h, 1d, 7d and 30d; just outside 30d.
    for offset in (2 * HALF_HOUR, DAY, 7 * DAY, 30 * DAY, 30 * DAY + HALF_HOUR):
        bucket(owner, now - offset, templates[0])

    serial = 0
    for kind, count, newest, oldest in CODER_PEOPLE:
        for _ in range(count):
            serial += 1
            created = now - timedelta(days=rng.uniform(newest, oldest))
            user_id = person(f"{kind}-{serial:02d}", created,
                             login_type=rng.choice(("password", "oidc", "oidc", "github")))
            if kind == "never":
                continue  # invited, never logged in: dormant, Coder's default
            first_login = created + timedelta(hours=rng.uniform(1, 72))
            change(user_id, first_login, status="active")
            if kind == "regular":
                work(user_id, first_login, now)
            elif kind == "lapsed":
                last = work(user_id, first_login, now - timedelta(days=rng.uniform(70, 160)))
                if last + DORMANCY + timedelta(minutes=15) < now:
                    dormant_after(user_id, last)
            elif kind in ("suspended", "reinstated", "suspended-deleted"):
                suspended_at = now - timedelta(days=rng.uniform(3, 100) if kind == "suspended"
                                               else rng.uniform(15, 45))
                work(user_id, first_login, suspended_at)
                change(user_id, suspended_at, status="suspended")
                if kind == "reinstated":
                    back = suspended_at + timedelta(days=rng.uniform(2, 10))
                    change(user_id, back, status="active")
                    work(user_id, back, now)
                elif kind == "suspended-deleted":
                    change(user_id, suspended_at + timedelta(days=rng.uniform(1, 10)),
                           deleted=True)
            elif kind == "returning":
                back = now - timedelta(days=rng.uniform(10, 40))
                last = work(user_id, first_login, back - DORMANCY - 5 * DAY)
                dormant_after(user_id, last)
                change(user_id, back, status="active")
                work(user_id, back, now)
            else:
                deleted_at = now - timedelta(days=rng.uniform(2, 50))
                work(user_id, first_login, deleted_at)
                change(user_id, deleted_at, deleted=True)

    _load(url, CODER_SCHEMA.read_text(), [
        # InsertUser: no status given, so Coder's default (dormant) until the first login.
        ("INSERT INTO users (id, email, username, name, hashed_password, created_at, updated_at, "
         "rbac_roles, login_type) VALUES (:id, :email, :username, :name, :hash, :created_at, "
         ":created_at, :rbac_roles, CAST(:login_type AS login_type))", users),
        # The owner of prebuilt workspaces, as Coder's migration creates it: a system user.
        ("INSERT INTO users (id, email, username, name, hashed_password, created_at, updated_at, "
         "status, rbac_roles, login_type, is_system) VALUES (:id, 'prebuilds@system', "
         "'prebuilds', 'Prebuilds Owner', '', :created_at, :created_at, 'active', '{}', 'none', "
         "true)", [{"id": uuid.uuid5(NAMESPACE, "coder-prebuilds"),
                    "created_at": now - timedelta(days=200)}]),
        # One statement per change, in time order, as coderd makes them.
        *((next(sql for key, sql in CODER_UPDATES.items() if key in item), [item])
          for item in sorted(changes, key=lambda c: c["when"])),
        ("INSERT INTO template_usage_stats (start_time, end_time, template_id, user_id, "
         "median_latency_ms, usage_mins, ssh_mins, sftp_mins, reconnecting_pty_mins, vscode_mins, "
         "jetbrains_mins) VALUES (:start_time, :end_time, :template_id, :user_id, "
         ":median_latency_ms, :usage_mins, :ssh_mins, 0, 0, :vscode_mins, 0)",
         list(usage.values())),
        ("INSERT INTO api_keys (id, hashed_secret, user_id, last_used, expires_at, created_at, "
         "updated_at, login_type, lifetime_seconds, token_name, scopes, allow_list) VALUES "
         "(:id, :secret, :user_id, :last_used, :expires_at, :created_at, :created_at, "
         "CAST(:login_type AS login_type), :lifetime, :token_name, "
         "ARRAY['coder:all']::api_key_scope[], ARRAY['*'])",
         _coder_api_keys(users, changes, now, rng)),
    ])


CODER_INSIGHTS = FIXTURES / "coder" / "insights.sql"
HOUR = 3600


def coder_query(url: str, name: str, **params: Any) -> list[Any]:
    """Run one of Coder's own queries (tests/fixtures/coder/insights.sql) as sqlc would: its
    @parameters bound by name."""
    named = CODER_INSIGHTS.read_text().split(f"-- name: {name} ")[1]
    body = named.partition("\n")[2].split("\n-- name: ")[0]  # after sqlc's ":many"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.exec_driver_sql(re.sub(r"@(\w+)", r"%(\1)s", body), params))
    finally:
        engine.dispose()


def coder_next_hour(now: datetime) -> datetime:
    """The end of Coder's insights ranges: the next full hour (Go truncates absolute time)."""
    return datetime.fromtimestamp((int(now.timestamp()) // HOUR + 1) * HOUR, UTC)


def coder_daus(url: str, now: datetime, tz_offset: int) -> dict[str, Any]:
    """GET /api/v2/insights/daus?tz_offset=N as coderd answers it (insights.go,
    returnDAUsInternal): GetTemplateInsightsByInterval from the UTC midnight 60 days before the
    next hour's (Go's Truncate(24h) is absolute) to the next hour, a day a bucket, each entry
    dated in the tz_offset zone (positive = east)."""
    end = coder_next_hour(now)
    start = datetime.fromtimestamp(int(end.timestamp()) // 86400 * 86400, UTC) - 60 * DAY
    zone = timezone(timedelta(hours=tz_offset))
    rows = coder_query(url, "GetTemplateInsightsByInterval", start_time=start, end_time=end,
                       interval_days=1, template_ids=[])
    return {"entries": [{"date": row.start_time.astimezone(zone).date().isoformat(),
                         "amount": row.active_users} for row in rows],
            "tz_hour_offset": tz_offset}


def coder_status_counts(url: str, now: datetime, zone: str) -> dict[str, Any]:
    """GET /api/v2/insights/user-status-counts?timezone=Z as coderd answers it (insights.go,
    insightsUserStatusCounts): GetUserStatusCounts from local midnight 60 days before the next
    hour's day to the next hour; each row appended to its status's series, dates as Go writes
    a time read from PostgreSQL in UTC."""
    end = coder_next_hour(now)
    tz = ZoneInfo(zone)
    start = datetime.combine(end.astimezone(tz).date() - timedelta(days=60), time(), tz)
    counts: dict[str, list[dict[str, Any]]] = {}
    for date, status, count in coder_query(url, "GetUserStatusCounts", start_time=start,
                                           end_time=end, tz=zone):
        counts.setdefault(status, []).append({
            "date": date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "count": count})
    return {"status_counts": dict(sorted(counts.items()))}


def _coder_api_keys(users: list[dict[str, Any]], changes: list[dict[str, Any]], now: datetime,
                    rng: random.Random) -> list[dict[str, Any]]:
    """Browser sessions (24 h; some expired) and personal tokens (30 days) of users who are
    active at `now`, expiring hours from it (negative = expired)."""
    final: dict[uuid.UUID, str] = {u["id"]: "dormant" for u in users}
    for item in sorted(changes, key=lambda c: c["when"]):
        if "status" in item:
            final[item["id"]] = item["status"]
        elif "deleted" in item:
            final[item["id"]] = "deleted"  # Coder's trigger deletes a deleted user's keys
    keys = []
    for index, user in enumerate(u for u in users if final[u["id"]] == "active"):
        sessions = [("browser", rng.choice((-30, -6, 2, 9, 20)), 24)]
        if index % 4 == 0:
            sessions.append(("browser", -50, 24))
        if index % 5 == 0:
            sessions.append(("token", 500, 720))
        for number, (kind, until, lifetime) in enumerate(sessions):
            expires_at = now + timedelta(hours=until)
            keys.append({"id": f"key{index:03d}{number}", "secret": rng.randbytes(32),
                         "user_id": user["id"], "expires_at": expires_at,
                         "created_at": expires_at - timedelta(hours=lifetime),
                         "last_used": expires_at - timedelta(hours=lifetime - 1),
                         "lifetime": lifetime * 3600,
                         "login_type": "token" if kind == "token" else user["login_type"],
                         "token_name": f"ci-{index}" if kind == "token" else ""})
    return keys


# --- ODK Central -----------------------------------------------------------------------------

ODK_DDL = """
CREATE EXTENSION IF NOT EXISTS citext;

CREATE TABLE actors (
    id serial PRIMARY KEY,
    type varchar(15),
    "acteeId" varchar(36) NOT NULL,
    "displayName" varchar(64) NOT NULL,
    meta jsonb,
    "createdAt" timestamp(3) with time zone,
    "updatedAt" timestamp(3) with time zone,
    "deletedAt" timestamp(3) with time zone,
    "expiresAt" timestamp(3) with time zone
);
CREATE INDEX actors_type_index ON actors (type);

CREATE TABLE users (
    "actorId" integer PRIMARY KEY REFERENCES actors (id),
    password varchar(64),
    email citext NOT NULL,
    "lastLoginAt" timestamp(3) with time zone
);

CREATE TABLE roles (
    id serial PRIMARY KEY,
    name text NOT NULL,
    system varchar(8),
    "createdAt" timestamp(3) with time zone,
    "updatedAt" timestamp(3) with time zone,
    verbs jsonb
);

CREATE TABLE assignments (
    "actorId" integer NOT NULL REFERENCES actors (id),
    "roleId" integer NOT NULL REFERENCES roles (id),
    "acteeId" varchar(36) NOT NULL,
    PRIMARY KEY ("actorId", "roleId", "acteeId")
);

CREATE TABLE sessions (
    "actorId" integer NOT NULL REFERENCES actors (id),
    token varchar(64) NOT NULL,
    csrf varchar(64),
    "expiresAt" timestamp(3) with time zone NOT NULL,
    "createdAt" timestamp(3) with time zone
);
CREATE UNIQUE INDEX sessions_token_index ON sessions (token);

CREATE TABLE audits (
    id serial PRIMARY KEY,
    "actorId" integer REFERENCES actors (id),
    action text NOT NULL,
    "acteeId" varchar(36),
    details jsonb,
    "loggedAt" timestamp(3) with time zone,
    notes text,
    claimed timestamp(3) with time zone,
    processed timestamp(3) with time zone,
    "lastFailure" timestamp(3) with time zone,
    failures integer DEFAULT 0
);
CREATE INDEX audits_actorid_action_loggedat_index ON audits ("actorId", action, "loggedAt");

CREATE TABLE projects (
    id serial PRIMARY KEY,
    name text NOT NULL,
    "acteeId" varchar(36) NOT NULL,
    "createdAt" timestamp(3) with time zone,
    "updatedAt" timestamp(3) with time zone,
    "deletedAt" timestamp(3) with time zone,
    archived boolean,
    "keyId" integer,
    description text
);

CREATE TABLE field_keys (
    "actorId" integer PRIMARY KEY REFERENCES actors (id),
    "createdBy" integer NOT NULL REFERENCES actors (id),
    "projectId" integer REFERENCES projects (id)
);

CREATE TABLE forms (
    id serial PRIMARY KEY,
    "xmlFormId" varchar(64) NOT NULL,
    "createdAt" timestamp(3) with time zone,
    "updatedAt" timestamp(3) with time zone,
    "deletedAt" timestamp(3) with time zone,
    "acteeId" varchar(36) NOT NULL,
    state text DEFAULT 'open',
    "projectId" integer NOT NULL REFERENCES projects (id),
    "currentDefId" integer,
    "draftDefId" integer,
    "enketoId" varchar(255),
    "enketoOnceId" text,
    "webformsEnabled" boolean NOT NULL DEFAULT false
);

CREATE TABLE submissions (
    id serial PRIMARY KEY,
    "formId" integer NOT NULL REFERENCES forms (id),
    "instanceId" varchar(64) NOT NULL,
    "submitterId" integer REFERENCES actors (id),
    "createdAt" timestamp(3) with time zone,
    "updatedAt" timestamp(3) with time zone,
    "deletedAt" timestamp(3) with time zone,
    "deviceId" varchar(255),
    draft boolean NOT NULL,
    "reviewState" text,
    "userAgent" varchar(255)
);
"""

ODK_ROLES = ((1, "Administrator", "admin"), (2, "App User", "app_user"),
             (3, "Project Manager", "manager"), (4, "Project Viewer", "viewer"),
             (5, "Data Collector", "formfill"))
AGENTS = ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
          "pyodk v1.1.0", "python-requests/2.32.3")
ODK_DELETED = (7, 16, 25, 29)
FOREVER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def build_odk_central(url: str, now: datetime) -> None:
    rng = random.Random(4242)
    project = str(uuid.uuid5(NAMESPACE, "odk-project-1"))
    actors, users, assignments, audits, sessions, app_sessions = [], [], [], [], [], []

    def audit(actor: int | None, action: str, when: datetime, **details: Any) -> None:
        audits.append({"actor": actor, "action": action, "when": when,
                       "actee": str(uuid.uuid5(NAMESPACE, f"actee-{actor}")),
                       "details": json.dumps(details)})

    # Web users: 3 admins, project managers and collectors; some deleted, some never logged in.
    for actor in range(1, 31):
        deleted = now - timedelta(days=rng.uniform(1, 60)) if actor in ODK_DELETED else None
        created = now - timedelta(days=rng.uniform(90 if deleted else 15, 700))
        actors.append({"id": actor, "type": "user", "name": f"Enumerator {actor:02d}",
                       "created": created, "deleted": deleted})
        until, logins = deleted or now, []
        if actor % 10 != 9:  # one in ten never accepted the invitation
            every = rng.choice((0.8, 1.5, 3, 7, 20, 60))
            when = created + timedelta(hours=rng.uniform(1, 48))
            while when < until:
                logins.append(when)
                when += timedelta(days=rng.expovariate(1 / every))
        for when in logins:
            audit(actor, "user.session.create", when, userAgent=rng.choice(AGENTS))
            if rng.random() < 0.3:
                audit(actor, "form.update", when + timedelta(minutes=rng.randint(1, 90)))
        password = None if actor in (4, 12) else "$2a$10$" + rng.randbytes(26).hex()  # 4, 12: SSO
        users.append({"actor": actor, "email": f"enumerator{actor:02d}@example.org",
                      "password": password})
        if actor <= 3:
            assignments.append({"actor": actor, "role": 1, "actee": "*"})
        assignments.append({"actor": actor, "role": 3 if actor <= 8 else 5, "actee": project})
        if deleted:
            audit(1, "user.delete", deleted)
    # Logins exactly on the window edges (inclusive) by user 2.
    for offset in (DAY, 7 * DAY, 30 * DAY):
        audit(2, "user.session.create", now - offset, userAgent=AGENTS[0])

    # App users and public links: actors of other types, with sessions that never expire.
    for actor in range(31, 41):
        kind = "field_key" if actor <= 38 else "public_link"
        actors.append({"id": actor, "type": kind, "name": f"Tablet {actor}", "deleted": None,
                       "created": now - timedelta(days=rng.uniform(30, 300))})
        assignments.append({"actor": actor, "role": 2, "actee": project})
        app_sessions.append({"actor": actor, "token": rng.randbytes(32).hex(),
                             "created": actors[-1]["created"]})
        for _ in range(rng.randint(3, 30)):
            audit(actor, "submission.create", now - timedelta(days=rng.uniform(0, 60)))

    # Web sessions last 24 h from login: live or expired at `now`.
    for actor in range(1, 31):
        if actor in ODK_DELETED or actor % 3 == 0:
            continue
        for until in rng.sample((-40, -3, 1, 5, 18, 23), rng.randint(1, 2)):
            sessions.append({"actor": actor, "token": rng.randbytes(32).hex(), "until": until})

    # Viewers of project 1 (also data collectors there); 19 and 29 never logged in, so they are
    # role holders without recent activity (19 an admin and manager too).
    assignments += [{"actor": actor, "role": 4, "actee": project} for actor in (20, 21, 22, 29)]
    assignments += [{"actor": 19, "role": 1, "actee": "*"},
                    {"actor": 19, "role": 3, "actee": project}]
    # Forms on project 1 (one deleted, one never submitted to) and on the archived project 2.
    forms = [{"id": n, "project": 1 if n <= 7 else 2, "deleted": now - 9 * DAY if n == 6 else None,
              "created": now - timedelta(days=300 - 10 * n)} for n in range(1, 9)]
    # Submissions by app users (38 never submits) and web users over 120 days, and exactly on
    # Central's cutoff (midnight UTC of the date 45 days back) and a millisecond before it.
    cutoff = datetime.combine((now - 45 * DAY).date(), time(), UTC)
    submissions = [{"form": rng.choice((1, 1, 2, 3, 4, 5, 6)), "submitter": rng.choice(
        (*range(31, 38), 5, 9, 13)), "created": now - timedelta(days=rng.uniform(0, 120))}
        for _ in range(300)]
    submissions += [{"form": 5, "submitter": 33, "created": cutoff},
                    {"form": 6, "submitter": 34, "created": cutoff - timedelta(
                        milliseconds=1)}]
    audit(4, "form.update", cutoff)
    audit(5, "form.update", cutoff - timedelta(milliseconds=1))

    _load(url, ODK_DDL, [
        ("INSERT INTO roles (id, name, system, \"createdAt\", verbs) VALUES "
         "(:id, :name, :system, :created, '[]')",
         [{"id": i, "name": n, "system": s, "created": now - timedelta(days=900)}
          for i, n, s in ODK_ROLES]),
        ("INSERT INTO actors (id, type, \"acteeId\", \"displayName\", \"createdAt\", "
         "\"deletedAt\") VALUES (:id, :type, :actee, :name, :created, :deleted)",
         [{**a, "actee": str(uuid.uuid5(NAMESPACE, f"actee-{a['id']}"))} for a in actors]),
        ("INSERT INTO assignments (\"actorId\", \"roleId\", \"acteeId\") VALUES "
         "(:actor, :role, :actee)", assignments),
        ("INSERT INTO audits (\"actorId\", action, \"acteeId\", details, \"loggedAt\", processed) "
         "VALUES (:actor, :action, :actee, CAST(:details AS jsonb), :when, :when)",
         sorted(audits, key=lambda a: a["when"])),
        # lastLoginAt (Central 2025) is the latest login audit, as its backfill made it.
        ("INSERT INTO users (\"actorId\", password, email, \"lastLoginAt\") VALUES "
         "(:actor, :password, :email, (SELECT max(\"loggedAt\") FROM audits WHERE "
         "\"actorId\" = :actor AND action = 'user.session.create'))", users),
        ("INSERT INTO sessions (\"actorId\", token, csrf, \"expiresAt\", \"createdAt\") VALUES "
         "(:actor, :token, :token, :forever, :created)",
         [{**s, "forever": FOREVER} for s in app_sessions]),
        ("INSERT INTO sessions (\"actorId\", token, csrf, \"expiresAt\", \"createdAt\") VALUES "
         "(:actor, :token, :token, :expires, :created)",
         [{**s, "expires": now + timedelta(hours=s["until"]),
           "created": now + timedelta(hours=s["until"] - 24)} for s in sessions]),
        ("INSERT INTO projects (id, name, \"acteeId\", \"createdAt\", archived) VALUES "
         "(:id, :name, :actee, :created, :archived)",
         [{"id": 1, "name": "Household survey", "actee": project, "archived": None,
           "created": now - 800 * DAY},
          {"id": 2, "name": "Pilot 2024", "actee": str(uuid.uuid5(NAMESPACE, "odk-project-2")),
           "archived": True, "created": now - 700 * DAY}]),
        ("INSERT INTO field_keys (\"actorId\", \"createdBy\", \"projectId\") VALUES "
         "(:actor, 1, 1)", [{"actor": actor} for actor in range(31, 39)]),
        ("INSERT INTO forms (id, \"xmlFormId\", \"createdAt\", \"deletedAt\", \"acteeId\", "
         "\"projectId\") VALUES (:id, :xml, :created, :deleted, :actee, :project)",
         [{**f, "xml": f"form_{f['id']}", "actee": str(uuid.uuid5(NAMESPACE, f"form-{f['id']}"))}
          for f in forms]),
        ("INSERT INTO submissions (\"formId\", \"instanceId\", \"submitterId\", "
         "\"createdAt\", \"deviceId\", draft, \"reviewState\") VALUES (:form, :instance, "
         ":submitter, :created, :device, false, NULL)",
         [{**sub, "instance": f"uuid:{uuid.uuid5(NAMESPACE, f'sub-{n}')}",
           "device": f"collect:{sub['submitter']}" if sub["submitter"] > 30 else None}
          for n, sub in enumerate(submissions)]),
    ])



# --- OpenL2M ---------------------------------------------------------------------------------

# Django's tables as its PostgreSQL backend creates them (auth_user; switches.models.Log).
OPENL2M_DDL = """
CREATE TABLE auth_user (
    id integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
    password varchar(128) NOT NULL,
    last_login timestamp with time zone NULL,
    is_superuser boolean NOT NULL,
    username varchar(150) NOT NULL UNIQUE,
    first_name varchar(150) NOT NULL,
    last_name varchar(150) NOT NULL,
    email varchar(254) NOT NULL,
    is_staff boolean NOT NULL,
    is_active boolean NOT NULL,
    date_joined timestamp with time zone NOT NULL
);

CREATE TABLE switches_log (
    id integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
    "timestamp" timestamp with time zone NULL,
    if_index smallint NOT NULL CHECK (if_index >= 0),
    if_name varchar(64) NOT NULL,
    ip_address text NOT NULL,
    type smallint NOT NULL CHECK (type >= 0),
    action smallint NOT NULL CHECK (action >= 0),
    description text NULL,
    group_id integer NULL,
    switch_id integer NULL,
    user_id integer NULL REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX switches_log_user_id ON switches_log (user_id);
"""
# The other tables get_database_info counts (their keys and the columns naming them), and
# counters.models.Counter, where OpenL2M keeps its all-time changes and commands.
OPENL2M_NAMED = ("switches_switch", "switches_switchgroup", "switches_snmpprofile",
                 "switches_netmikoprofile", "switches_command", "switches_commandlist")
OPENL2M_INVENTORY_DDL = "".join(f"""
CREATE TABLE {name} (
    id integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
    name varchar(64) NOT NULL UNIQUE
);""" for name in OPENL2M_NAMED) + """
CREATE TABLE switches_switchgroupmembership (
    id integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
    "order" integer NOT NULL CHECK ("order" >= 0),
    switch_id integer NOT NULL REFERENCES switches_switch (id),
    switchgroup_id integer NOT NULL REFERENCES switches_switchgroup (id)
);
CREATE TABLE switches_vlan (
    id integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
    name varchar(32) NOT NULL,
    vid smallint NOT NULL UNIQUE,
    description varchar(100) NOT NULL,
    contact varchar(100) NOT NULL
);
CREATE TABLE switches_vlangroup (
    id integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
    name varchar(64) NOT NULL UNIQUE,
    description varchar(100) NOT NULL
);
CREATE TABLE users_token (
    id integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
    user_id integer NOT NULL REFERENCES auth_user (id),
    created timestamp with time zone NOT NULL,
    expires timestamp with time zone NULL,
    last_used timestamp with time zone NULL,
    key varchar(40) NOT NULL UNIQUE,
    write_enabled boolean NOT NULL,
    description varchar(200) NOT NULL,
    allowed_ips varchar(1000) NOT NULL
);
CREATE TABLE counters_counter (
    id integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
    name varchar(64) NOT NULL UNIQUE,
    description varchar(100) NOT NULL,
    value bigint NOT NULL CHECK (value >= 0)
);
"""
SWITCHES, SWITCH_GROUPS = 50, 6
# Log types that name a device without viewing or changing it (switches/constants.py).
WARNING, ERROR = 2, 3

# switches/constants.py: log types and the login/logout actions.
VIEW, CHANGE, COMMAND, LOGIN_OUT = 0, 1, 4, 5
LOGIN, LOGOUT, LOGOUT_INACTIVE, LOGIN_FAILED, LOGIN_LDAP, LOGIN_REST_API = 90, 91, 92, 93, 94, 95


def build_openl2m(url: str, now: datetime) -> None:
    rng = random.Random(7)
    people, log = [], []

    def entry(when: datetime, user: int | None, type_: int, action: int,
              switch: int | None = None) -> None:
        log.append({"when": when, "user": user, "type": type_, "action": action,
                    "switch": switch, "ip": f"10.1.{rng.randint(0, 9)}.{rng.randint(2, 250)}"})

    for user in range(1, 26):
        joined = now - timedelta(days=rng.uniform(40, 900))
        active = user not in (11, 23)
        people.append({"id": user, "username": f"netops{user:02d}", "joined": joined,
                       "first": f"Tech{user}" if user % 4 else "", "last": "Ops",
                       "superuser": user <= 2, "staff": user <= 5, "active": active})
        if not active:
            continue
        rate, api = rng.uniform(0.1, 0.8), user in (3, 8, 14)  # three script users
        for day in _days(now - timedelta(days=40), now):
            if rng.random() >= rate:
                continue
            login = day + timedelta(hours=rng.uniform(6, 20))
            if login >= now:
                continue
            entry(login, user, LOGIN_OUT, LOGIN_LDAP if user % 2 else LOGIN)
            for minute in sorted(rng.sample(range(1, 90), rng.randint(1, 6))):
                switch = rng.randint(1, 40)
                entry(login + timedelta(minutes=minute), user,
                      rng.choice((VIEW, VIEW, VIEW, CHANGE, COMMAND)), 1, switch)
            logout = login + timedelta(minutes=95)
            if logout < now:
                entry(logout, user, LOGIN_OUT, rng.choice((LOGOUT, LOGOUT_INACTIVE)))
            if api:
                for _ in range(rng.randint(5, 40)):  # one row per REST API request
                    entry(day + timedelta(seconds=rng.randint(0, 86399)), user, LOGIN_OUT,
                          LOGIN_REST_API)
    # Failed logins are logged without a user.
    for hours in (0.5, 30, 200, 700):
        entry(now - timedelta(hours=hours), None, LOGIN_OUT, LOGIN_FAILED)
    # Logins exactly on the window edges: 1 hour ago, and midnight (UTC) 7 and 31 days ago.
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for user, when in ((4, now - timedelta(hours=1)), (5, midnight - 7 * DAY),
                       (6, midnight - 31 * DAY), (7, midnight - 7 * DAY - timedelta(seconds=1))):
        entry(when, user, LOGIN_OUT, LOGIN)
    # Warnings and errors about devices nobody viewed (polling, say), from 2 to 35 days ago.
    other = random.Random(8)
    for switch in range(SWITCHES + 1, SWITCHES + 9):
        entry(now - timedelta(days=other.uniform(2, 35)), None, other.choice((WARNING, ERROR)),
              1, switch)
    # Devices touched exactly on the hour's edge; an undated entry.
    entry(now - timedelta(hours=1), 3, CHANGE, 1, 7)
    entry(now - timedelta(hours=1), 3, VIEW, 1, 8)
    log = [row for row in log if row["when"] <= now]
    log.append({"when": None, "user": 3, "type": CHANGE, "action": 1, "switch": 9,
                "ip": "10.1.0.2"})

    last_login = {}
    for row in log:
        if row["user"] and row["when"] and row["action"] in (LOGIN, LOGIN_LDAP):
            last_login[row["user"]] = max(last_login.get(row["user"], row["when"]), row["when"])
    _load(url, OPENL2M_DDL, [
        ("INSERT INTO auth_user (id, password, last_login, is_superuser, username, first_name, "
         "last_name, email, is_staff, is_active, date_joined) OVERRIDING SYSTEM VALUE VALUES "
         "(:id, 'pbkdf2_sha256$600000$x$y', :last_login, :superuser, :username, :first, :last, "
         ":email, :staff, :active, :joined)",
         [{**p, "last_login": last_login.get(p["id"]), "email": f"{p['username']}@example.org"}
          for p in people]),
        ("INSERT INTO switches_log (\"timestamp\", if_index, if_name, ip_address, type, action, "
         "description, switch_id, user_id) VALUES (:when, 0, '', :ip, :type, :action, '', "
         ":switch, :user)", sorted(log, key=lambda r: r["when"] or now)),
    ])
    _load(url, OPENL2M_INVENTORY_DDL, [
        *((f"INSERT INTO {table} (name) VALUES (:name)",
           [{"name": f"{table}-{n}"} for n in range(count)])
          for table, count in (("switches_switch", SWITCHES),
                               ("switches_switchgroup", SWITCH_GROUPS),
                               ("switches_snmpprofile", 3), ("switches_netmikoprofile", 2),
                               ("switches_command", 17), ("switches_commandlist", 4))),
        # Groups 1-4 hold switches; 5 and 6 none, which OpenL2M does not count.
        ("INSERT INTO switches_switchgroupmembership (\"order\", switch_id, switchgroup_id) "
         "VALUES (:order, :switch, :group)",
         [{"order": n, "switch": n + 1, "group": n % 4 + 1} for n in range(SWITCHES)]),
        ("INSERT INTO switches_vlan (name, vid, description, contact) "
         "VALUES (:name, :vid, '', '')",
         [{"name": f"vlan{vid}", "vid": vid} for vid in range(100, 131)]),
        ("INSERT INTO switches_vlangroup (name, description) VALUES (:name, '')",
         [{"name": f"campus-{n}"} for n in range(5)]),
        ("INSERT INTO users_token (user_id, created, key, write_enabled, description, "
         "allowed_ips) VALUES (:user, :created, :key, false, '', '')",
         [{"user": user, "created": now - 30 * DAY, "key": f"{user:040d}"}
          for user in (3, 8, 14)]),
        # Since install, more than the log still holds (OpenL2M purges old log entries).
        ("INSERT INTO counters_counter (name, description, value) VALUES (:name, '', :value)",
         [{"name": "changes", "value": 5 * sum(r["type"] == CHANGE for r in log)},
          {"name": "commands", "value": 5 * sum(r["type"] == COMMAND for r in log)}]),
    ])
