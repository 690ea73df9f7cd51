"""Coder, ODK Central and OpenL2M databases for the custom-platform recipes: the tables the recipes
read, with the platforms' own column names and types (research/coder_odk_openl2m_grafana.md §1-3,
Coder's dump.sql, Central's migrations, OpenL2M's Django models), and realistic, deterministic data
with the edge cases each recipe must handle.

Activity is dated relative to a fixed `now`. Sessions are dated relative to the database clock,
because the recipes ask it whether a session has expired (`now()`), with margins of hours.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, text

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

CODER_DDL = """
CREATE TYPE user_status AS ENUM ('active', 'suspended', 'dormant');
CREATE TYPE login_type AS ENUM ('password', 'github', 'oidc', 'token', 'none',
                                'oauth2_provider_app');
CREATE TYPE api_key_scope AS ENUM ('coder:all', 'coder:application_connect');

CREATE TABLE users (
    id uuid NOT NULL PRIMARY KEY,
    email text NOT NULL,
    username text DEFAULT ''::text NOT NULL,
    hashed_password bytea NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    status user_status DEFAULT 'dormant'::user_status NOT NULL,
    rbac_roles text[] DEFAULT '{}'::text[] NOT NULL,
    login_type login_type DEFAULT 'password'::login_type NOT NULL,
    avatar_url text DEFAULT ''::text NOT NULL,
    deleted boolean DEFAULT false NOT NULL,
    last_seen_at timestamp without time zone DEFAULT '0001-01-01 00:00:00'::timestamp
        without time zone NOT NULL,
    quiet_hours_schedule text DEFAULT ''::text NOT NULL,
    name text DEFAULT ''::text NOT NULL,
    github_com_user_id bigint,
    is_system boolean DEFAULT false NOT NULL,
    is_service_account boolean DEFAULT false NOT NULL,
    CONSTRAINT users_username_min_length CHECK ((length(username) >= 1))
);

CREATE TABLE user_status_changes (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users(id),
    new_status user_status NOT NULL,
    changed_at timestamp with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL
);
CREATE INDEX idx_user_status_changes_changed_at ON user_status_changes (changed_at);

CREATE TABLE user_deleted (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users(id),
    deleted_at timestamp with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL
);
CREATE INDEX idx_user_deleted_deleted_at ON user_deleted (deleted_at);

-- Coder's trigger (dump.sql): the application's updated_at is the time of the change.
CREATE FUNCTION record_user_status_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status THEN
        INSERT INTO user_status_changes (user_id, new_status, changed_at)
        VALUES (NEW.id, NEW.status, NEW.updated_at);
    END IF;
    IF OLD.deleted = FALSE AND NEW.deleted = TRUE THEN
        INSERT INTO user_deleted (user_id, deleted_at) VALUES (NEW.id, NEW.updated_at);
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER user_status_change_trigger AFTER INSERT OR UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION record_user_status_change();

CREATE TABLE template_usage_stats (
    start_time timestamp with time zone NOT NULL,
    end_time timestamp with time zone NOT NULL,
    template_id uuid NOT NULL,
    user_id uuid NOT NULL,
    median_latency_ms real,
    usage_mins smallint NOT NULL,
    ssh_mins smallint NOT NULL,
    sftp_mins smallint NOT NULL,
    reconnecting_pty_mins smallint NOT NULL,
    vscode_mins smallint NOT NULL,
    jetbrains_mins smallint NOT NULL,
    app_usage_mins jsonb,
    PRIMARY KEY (start_time, template_id, user_id)
);
CREATE INDEX template_usage_stats_start_time_idx ON template_usage_stats (start_time DESC);

CREATE TABLE api_keys (
    id text NOT NULL PRIMARY KEY,
    hashed_secret bytea NOT NULL,
    user_id uuid NOT NULL,
    last_used timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    login_type login_type NOT NULL,
    lifetime_seconds bigint DEFAULT 86400 NOT NULL,
    ip_address inet DEFAULT '0.0.0.0'::inet NOT NULL,
    token_name text DEFAULT ''::text NOT NULL,
    scopes api_key_scope[] NOT NULL,
    allow_list text[] NOT NULL
);
"""

# How Coder users live: (kind, how many, created between N and M days ago). Lapsed users stop
# using workspaces and the dormancy job marks them dormant 90 days after they were last seen,
# some inside the last 60 days; returning users come back from dormancy.
CODER_PEOPLE = (("regular", 18, 20, 380), ("lapsed", 8, 170, 380), ("never", 3, 20, 380),
                ("suspended", 3, 110, 380), ("returning", 2, 200, 380), ("deleted", 3, 60, 380))
DORMANCY = timedelta(days=90)
HALF_HOUR = timedelta(minutes=30)


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
                      "login_type": "password", "is_system": False, "status": "dormant",
                      **extra})
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

    owner = person("admin", now - timedelta(days=400), rbac_roles=["owner"])
    change(owner, now - timedelta(days=399), status="active")
    work(owner, now - timedelta(days=399), now)
    # Buckets exactly on the window edges: inside 1h, 1d, 7d and 30d; just outside 30d.
    for offset in (2 * HALF_HOUR, DAY, 7 * DAY, 30 * DAY, 30 * DAY + HALF_HOUR):
        bucket(owner, now - offset, templates[0])
    # The owner of prebuilt workspaces: a system user, not a person.
    person("prebuilds", now - timedelta(days=200), is_system=True, login_type="none",
           status="active")

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
                dormant_at = last + DORMANCY + timedelta(minutes=rng.randint(1, 15))
                if dormant_at < now:
                    change(user_id, dormant_at, status="dormant")
            elif kind == "suspended":
                suspended_at = now - timedelta(days=rng.uniform(3, 100))
                work(user_id, first_login, suspended_at)
                change(user_id, suspended_at, status="suspended")
            elif kind == "returning":
                back = now - timedelta(days=rng.uniform(10, 40))
                last = work(user_id, first_login, back - DORMANCY - 5 * DAY)
                change(user_id, last + DORMANCY + timedelta(minutes=rng.randint(1, 15)),
                       status="dormant")
                change(user_id, back, status="active")
                work(user_id, back, now)
            else:
                deleted_at = now - timedelta(days=rng.uniform(2, 50))
                work(user_id, first_login, deleted_at)
                change(user_id, deleted_at, deleted=True)

    # Changes run one UPDATE at a time, in time order, so Coder's trigger records each one with
    # updated_at as its time; last-seen updates leave updated_at alone, as Coder's do.
    updates = {"status": "UPDATE users SET status = CAST(:status AS user_status), "
                         "updated_at = :when WHERE id = :id",
               "deleted": "UPDATE users SET deleted = true, updated_at = :when WHERE id = :id",
               "last_seen_at": "UPDATE users SET last_seen_at = :last_seen_at WHERE id = :id"}
    _load(url, CODER_DDL, [
        ("INSERT INTO users (id, email, username, name, hashed_password, created_at, updated_at, "
         "rbac_roles, login_type, is_system, status) VALUES (:id, :email, :username, :name, "
         ":hash, :created_at, :created_at, :rbac_roles, CAST(:login_type AS login_type), "
         ":is_system, CAST(:status AS user_status))", users),
        *((next(u for key, u in updates.items() if key in item), [item])
          for item in sorted(changes, key=lambda c: c["when"])),
        ("INSERT INTO template_usage_stats (start_time, end_time, template_id, user_id, "
         "median_latency_ms, usage_mins, ssh_mins, sftp_mins, reconnecting_pty_mins, vscode_mins, "
         "jetbrains_mins) VALUES (:start_time, :end_time, :template_id, :user_id, "
         ":median_latency_ms, :usage_mins, :ssh_mins, 0, 0, :vscode_mins, 0)",
         list(usage.values())),
        ("INSERT INTO api_keys (id, hashed_secret, user_id, last_used, expires_at, created_at, "
         "updated_at, login_type, lifetime_seconds, token_name, scopes, allow_list) VALUES "
         "(:id, :secret, :user_id, now() + make_interval(hours => :until - :lifetime + 1), "
         "now() + make_interval(hours => :until), "
         "now() + make_interval(hours => :until - :lifetime), "
         "now() + make_interval(hours => :until - :lifetime), CAST(:login_type AS login_type), "
         ":lifetime * 3600, :token_name, ARRAY['coder:all']::api_key_scope[], ARRAY['*'])",
         _coder_api_keys(users, changes, rng)),
    ])


def _coder_api_keys(users: list[dict[str, Any]], changes: list[dict[str, Any]],
                    rng: random.Random) -> list[dict[str, Any]]:
    """Browser sessions (24 h; some expired) and personal tokens (30 days) of users who are
    active now; expiry is relative to the database clock: hours from now, negative = expired."""
    final = {u["id"]: u["status"] for u in users if not u["is_system"]}
    for item in sorted(changes, key=lambda c: c["when"]):
        if "status" in item:
            final[item["id"]] = item["status"]
        elif "deleted" in item:
            final[item["id"]] = "deleted"  # Coder deletes a deleted user's keys
    keys = []
    for index, user in enumerate(u for u in users if final.get(u["id"]) == "active"):
        sessions = [("browser", rng.choice((-30, -6, 2, 9, 20)), 24)]
        if index % 4 == 0:
            sessions.append(("browser", -50, 24))
        if index % 5 == 0:
            sessions.append(("token", 500, 720))
        for number, (kind, until, lifetime) in enumerate(sessions):
            keys.append({"id": f"key{index:03d}{number}", "secret": rng.randbytes(32),
                         "user_id": user["id"], "until": until, "lifetime": lifetime,
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

    # Web sessions last 24 h from login, relative to the database clock: live or expired.
    for actor in range(1, 31):
        if actor in ODK_DELETED or actor % 3 == 0:
            continue
        for until in rng.sample((-40, -3, 1, 5, 18, 23), rng.randint(1, 2)):
            sessions.append({"actor": actor, "token": rng.randbytes(32).hex(), "until": until})

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
         "(:actor, :token, :token, now() + make_interval(hours => :until), "
         "now() + make_interval(hours => :until - 24))", sessions),
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
    log = [row for row in log if row["when"] <= now]

    last_login = {}
    for row in log:
        if row["user"] and row["action"] in (LOGIN, LOGIN_LDAP):
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
         ":switch, :user)", sorted(log, key=lambda r: r["when"])),
    ])
