"""Synthetic Nextcloud and Synapse databases at benchmark scale, in SQLite or PostgreSQL.

Nextcloud instances come from exporter.nextcloud_data (the platform's own schema, Pareto-skewed
accounts, files, shares and sessions); Synapse's are made here, on the same pieces
(exporter.synthetic: names, activity bands, apportioning), with the statements of the fixture
homeserver.db (schema 94). PostgreSQL gets the same statements with the types Doctrine and
Synapse use there.

Everything is derived from a seed, so a scale always gives the same database. Rows are generated
as they are written: SQLite takes them through executemany in batches with the journal off,
PostgreSQL through COPY; indexes are built after the load, and both are analysed, as a live
instance would be.

    python bench/generate.py nextcloud --users 100000 --files 2000000 sqlite:////tmp/nc.db
    python bench/generate.py synapse --users 10000 postgresql://u:p@127.0.0.1:5432/db
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import itertools
import math
import random
import re
import sys
import time
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.nextcloud_data import NOW, NextcloudData
from exporter.synthetic import (
    DAY,
    Dataset,
    Row,
    apportion,
    is_index,
    last_activity,
    md5,
    numbered_person,
    pareto_weights,
    table,
    table_rng,
    write_sqlite,
)

__all__ = ["NOW", "NextcloudData", "SynapseData", "write"]

MATRIX_CLIENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Element/1.11.85 "
    "Chrome/130.0.6723.91 Electron/33.0.2 Safari/537.36",
    "Element/1.6.24 (Google Pixel 8; Android 14; AP2A.240905.003; Flavour GPlay; "
    "MatrixAndroidSdk2 1.6.24)",
    "Element X/25.01.0 (iPhone 15; iOS 18.1; Scale/3.00)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "mautrix-telegram/0.15.2",
)


# --- Synapse --------------------------------------------------------------------------------

# The fixture homeserver.db's statements (Synapse 1.163, schema 94), SQL comments left out.
SYNAPSE_DDL = (
    """CREATE TABLE schema_version(
    Lock CHAR(1) NOT NULL DEFAULT 'X' UNIQUE,
    version INTEGER NOT NULL,
    upgraded BOOL NOT NULL,
    CHECK (Lock='X')
)""",
    "CREATE TABLE users( name TEXT, password_hash TEXT, creation_ts BIGINT, admin SMALLINT "
    "DEFAULT 0 NOT NULL, upgrade_ts BIGINT, is_guest SMALLINT DEFAULT 0 NOT NULL, appservice_id "
    "TEXT, consent_version TEXT, consent_server_notice_sent TEXT, user_type TEXT DEFAULT NULL, "
    "deactivated SMALLINT DEFAULT 0 NOT NULL, shadow_banned BOOLEAN, consent_ts bigint, approved "
    "BOOLEAN, locked BOOLEAN DEFAULT FALSE NOT NULL, suspended BOOLEAN DEFAULT FALSE NOT NULL, "
    "UNIQUE(name) )",
    "CREATE TABLE user_ips ( user_id TEXT NOT NULL, access_token TEXT NOT NULL, device_id TEXT, "
    "ip TEXT NOT NULL, user_agent TEXT NOT NULL, last_seen BIGINT NOT NULL )",
    "CREATE TABLE profiles( user_id TEXT NOT NULL, displayname TEXT, avatar_url TEXT, "
    "full_user_id TEXT, fields JSONB, UNIQUE(user_id) )",
    "CREATE TABLE local_media_repository ( media_id TEXT, media_type TEXT, media_length INTEGER, "
    "created_ts BIGINT, upload_name TEXT, user_id TEXT, quarantined_by TEXT, url_cache TEXT, "
    "last_access_ts BIGINT, safe_from_quarantine BOOLEAN NOT NULL DEFAULT 0, authenticated "
    "BOOLEAN DEFAULT FALSE NOT NULL, sha256 TEXT, UNIQUE (media_id) )",
    "CREATE TABLE user_daily_visits ( user_id TEXT NOT NULL, device_id TEXT, timestamp BIGINT "
    "NOT NULL , user_agent TEXT)",
    """CREATE TABLE "devices" (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    display_name TEXT,
    last_seen BIGINT,
    ip TEXT,
    user_agent TEXT,
    hidden BOOLEAN DEFAULT 0,
    CONSTRAINT device_uniqueness UNIQUE (user_id, device_id)
)""",
    """CREATE TABLE "access_tokens" (
    id BIGINT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT,
    token TEXT NOT NULL,
    valid_until_ms BIGINT,
    puppets_user_id TEXT,
    last_validated BIGINT, refresh_token_id BIGINT REFERENCES refresh_tokens (id) ON DELETE CASCADE,
    used BOOLEAN,
    UNIQUE(token)
)""",
    "CREATE INDEX user_daily_visits_uts_idx ON user_daily_visits(user_id, timestamp)",
    "CREATE INDEX user_daily_visits_ts_idx ON user_daily_visits(timestamp)",
    "CREATE INDEX user_ips_device_id ON user_ips (user_id, device_id, last_seen)",
    "CREATE INDEX user_ips_last_seen ON user_ips (user_id, last_seen)",
    "CREATE INDEX user_ips_last_seen_only ON user_ips (last_seen)",
    "CREATE INDEX users_creation_ts ON users (creation_ts)",
    "CREATE UNIQUE INDEX user_ips_user_token_ip_unique_index ON user_ips (user_id, access_token, "
    "ip)",
    "CREATE INDEX access_tokens_device_id ON access_tokens (user_id, device_id)",
    "CREATE INDEX users_have_local_media ON local_media_repository (user_id, created_ts)",
    "CREATE INDEX local_media_repository_url_idx ON local_media_repository (created_ts) WHERE "
    "url_cache IS NOT NULL",
    "CREATE UNIQUE INDEX profiles_full_user_id_key ON profiles (full_user_id)",
    "CREATE INDEX access_tokens_refresh_token_id_idx ON access_tokens (refresh_token_id)",
    "CREATE INDEX local_media_repository_sha256 ON local_media_repository (sha256) WHERE sha256 "
    "IS NOT NULL",
    "CREATE TABLE rooms( room_id TEXT PRIMARY KEY NOT NULL, is_public BOOL, creator TEXT , "
    "room_version TEXT, has_auth_chain_index BOOLEAN)",
    "CREATE TABLE events( stream_ordering INTEGER PRIMARY KEY, topological_ordering BIGINT NOT "
    "NULL, event_id TEXT NOT NULL, type TEXT NOT NULL, room_id TEXT NOT NULL, content TEXT, "
    "unrecognized_keys TEXT, processed BOOL NOT NULL, outlier BOOL NOT NULL, depth BIGINT "
    "DEFAULT 0 NOT NULL, origin_server_ts BIGINT, received_ts BIGINT, sender TEXT, contains_url "
    "BOOLEAN, instance_name TEXT, state_key TEXT DEFAULT NULL, rejection_reason TEXT DEFAULT "
    "NULL, UNIQUE (event_id) )",
    "CREATE INDEX event_contains_url_index ON events (room_id, topological_ordering, "
    "stream_ordering) WHERE contains_url = true AND outlier = false",
    "CREATE INDEX events_jump_to_date_idx ON events (room_id, origin_server_ts) WHERE NOT outlier",
    "CREATE INDEX events_order_room ON events ( room_id, topological_ordering, stream_ordering )",
    "CREATE INDEX events_ts ON events(origin_server_ts, stream_ordering)",
    "CREATE INDEX received_ts_idx ON events (received_ts) WHERE type = 'm.room.member'",
)
SERVER_NAME = "example.org"
ROOMS_PER_USER = 0.1
EVENTS_PER_USER = 20
# The event stream covers a year, denser towards now (a growing server): an event's age is the
# year times the square of its distance from the newest, so about a twentieth of it is from the
# last day.
EVENT_SPAN = 365 * DAY
# (type, weight): most events are messages, about a third of them encrypted.
EVENT_TYPES = (("m.room.message", 55), ("m.room.encrypted", 30), ("m.room.member", 8),
               ("m.reaction", 4), ("m.room.name", 1), ("m.room.power_levels", 1),
               ("m.room.create", 1))
REMOTE_SENDERS = ("@alice:matrix.org", "@bob:mozilla.org", "@carol:kde.org", "@dan:gnome.org")
MEDIA_PER_USER = 3.0
MEDIA_TYPES = (("image/jpeg", 2.0e5, 1.0), ("image/png", 8.0e4, 1.2), ("video/mp4", 8.0e6, 1.2),
               ("application/pdf", 3.0e5, 1.2), ("text/plain", 2.0e3, 1.0))


class SynapseData:
    """A Synapse homeserver of `users` accounts: 1 in 5 registered by bridges, as on servers
    that bridge other networks."""

    def __init__(self, users: int, *, now: int = NOW, seed: int = 1) -> None:
        self.users, self.now, self.seed = users, now, seed
        rng = random.Random(seed)
        self.weight = pareto_weights(rng, users)
        self.last_seen = array("q", (last_activity(rng, now, w) for w in self.weight))
        # n native, b bridged, d deactivated, g guest, a awaiting approval, x bot, s support
        self.kind = bytes(rng.choices(b"nbdgaxs", weights=(70, 20, 5, 2, 1, 1, 1), k=users))

    def localpart(self, i: int) -> str:
        prefix = "telegram_" if self.kind[i] == ord("b") else ""
        first, last = numbered_person(i)
        return f"{prefix}{first}.{last}{i}"

    def mxid(self, i: int) -> str:
        return f"@{self.localpart(i)}:{SERVER_NAME}"

    def dataset(self) -> Dataset:
        return Dataset(SYNAPSE_DDL, (
            table("schema_version", "lock version upgraded", lambda: [("X", 94, True)]),
            table("users", "name password_hash creation_ts admin upgrade_ts is_guest "
                  "appservice_id consent_version consent_server_notice_sent user_type "
                  "deactivated shadow_banned consent_ts approved locked suspended", self._users),
            table("profiles", "user_id displayname avatar_url full_user_id fields",
                  self._profiles),
            table("devices", "user_id device_id display_name last_seen ip user_agent hidden",
                  lambda: self._sessions()[0]),
            table("access_tokens", "id user_id device_id token valid_until_ms puppets_user_id "
                  "last_validated refresh_token_id used", lambda: self._sessions()[1]),
            table("user_ips", "user_id access_token device_id ip user_agent last_seen",
                  lambda: self._sessions()[2]),
            table("user_daily_visits", "user_id device_id timestamp user_agent", self._visits),
            table("local_media_repository", "media_id media_type media_length created_ts "
                  "upload_name user_id quarantined_by url_cache last_access_ts "
                  "safe_from_quarantine authenticated sha256", self._media),
            table("rooms", "room_id is_public creator room_version has_auth_chain_index",
                  self._rooms),
            table("events", "stream_ordering topological_ordering event_id type room_id "
                  "processed outlier origin_server_ts received_ts sender contains_url",
                  self._events),
        ))

    def _users(self) -> Iterator[Row]:
        rng = table_rng(self.seed, "users")
        for i in range(self.users):
            kind = chr(self.kind[i])
            created = (self.last_seen[i] or self.now) - rng.randint(DAY, 3 * 365 * DAY)
            yield (self.mxid(i), None if kind == "b" else "$2b$12$" + md5(str(i)),
                   created, int(i < 3), None, int(kind == "g"),
                   "telegram" if kind == "b" else None, None, None,
                   {"x": "bot", "s": "support"}.get(kind), int(kind == "d"),
                   rng.random() < 0.001, None, False if kind == "a" else (None if i % 2 else True),
                   rng.random() < 0.001, False)

    def _profiles(self) -> Iterator[Row]:
        for i in range(self.users):
            local = self.localpart(i)
            yield local, local.replace(".", " ").title(), None, self.mxid(i), None

    def _sessions(self) -> tuple[Iterator[Row], Iterator[Row], Iterator[Row]]:
        """Devices, their access tokens and the requests recorded per token and IP, generated
        alike for the three tables."""
        def rows(which: int) -> Iterator[Row]:
            rng = table_rng(self.seed, "sessions")
            token_ids = itertools.count(1)
            for i in range(self.users):
                seen_s = self.last_seen[i]
                if not seen_s or self.kind[i] == ord("d"):
                    continue
                user, weight = self.mxid(i), self.weight[i]
                devices = 1 + (weight > 1) + (weight > 4)
                # Every table draws the same numbers, so the three stay consistent.
                if rng.random() < 0.3 and which == 0:
                    # A cross-signing key, stored as a hidden device.
                    yield user, md5(f"xsign{i}")[:43], None, None, None, None, True
                for d in range(devices):
                    device = f"DEV{i:07d}{d}"
                    client = MATRIX_CLIENTS[(i + d) % len(MATRIX_CLIENTS)]
                    seen = (seen_s - d * int(rng.random() * 7 * DAY)) * 1000
                    hops = [seen - hop * int(rng.random() * 3 * DAY) * 1000
                            for hop in range(1 + int(rng.random() * 3))]
                    token_id = next(token_ids)
                    token = f"syt_{md5(user)[:8]}_{md5(str(token_id))[:20]}"
                    ip = f"10.{i % 256}.{(i // 256) % 256}."
                    if which == 0:
                        yield user, device, client.split("/")[0], seen, ip + "1", client, False
                    elif which == 1:
                        yield token_id, user, device, token, None, None, seen, None, False
                    else:
                        for hop, last in enumerate(hops):
                            yield user, token, device, f"{ip}{hop + 1}", client, last
        return rows(0), rows(1), rows(2)

    def _visits(self) -> Iterator[Row]:
        """One row per user and UTC day visited in the last 60 days (and device, as Synapse
        records them); heavy users come back more often."""
        rng = table_rng(self.seed, "visits")
        today = self.now // DAY * DAY
        for i in range(self.users):
            seen = self.last_seen[i]
            if not seen or seen < self.now - 60 * DAY:
                continue
            odds = min(0.05 * self.weight[i], 0.95)
            user, last_day = self.mxid(i), seen // DAY * DAY
            for day in range(last_day, today - 60 * DAY, -DAY):
                if day == last_day or rng.random() < odds:
                    yield user, f"DEV{i:07d}0", day * 1000, MATRIX_CLIENTS[i % 5]

    @property
    def room_count(self) -> int:
        return max(1, int(self.users * ROOMS_PER_USER))

    def room_id(self, j: int) -> str:
        return f"!{md5(f'room{j}')[:18]}:{SERVER_NAME}"

    def _rooms(self) -> Iterator[Row]:
        for j in range(self.room_count):
            yield self.room_id(j), j % 7 == 0, self.mxid(j % self.users), "10", True

    def _events(self) -> Iterator[Row]:
        """The rooms' events in stream order, receive times rising with it; rooms and local
        senders drawn by their Pareto weights, a quarter of the senders remote."""
        rng = table_rng(self.seed, "events")
        count = self.users * EVENTS_PER_USER
        rooms = list(itertools.accumulate(pareto_weights(rng, self.room_count)))
        senders = list(itertools.accumulate(self.weight))
        kinds = [kind for kind, weight in EVENT_TYPES for _ in range(weight)]
        now_ms = self.now * 1000
        for n in range(count):
            received = now_ms - int(EVENT_SPAN * 1000 * ((count - n) / count) ** 2)
            room = bisect.bisect(rooms, rng.random() * rooms[-1])
            sender = (REMOTE_SENDERS[n % len(REMOTE_SENDERS)] if rng.random() < 0.25 else
                      self.mxid(min(bisect.bisect(senders, rng.random() * senders[-1]),
                                    self.users - 1)))
            yield (n + 1, n + 1, f"${md5(str(n))}", kinds[int(rng.random() * len(kinds))],
                   self.room_id(min(room, self.room_count - 1)), True, False,
                   received - int(rng.random() * 2000), received, sender, False)

    def _media(self) -> Iterator[Row]:
        rng = table_rng(self.seed, "media")
        counts = apportion(int(self.users * MEDIA_PER_USER), self.weight, rng)
        number = 0
        for i in range(self.users):
            user = self.mxid(i)
            for _ in range(counts[i]):
                media_type, median, sigma = MEDIA_TYPES[int(rng.random() * len(MEDIA_TYPES))]
                number += 1
                pending = rng.random() < 0.005
                created = (self.last_seen[i] or self.now) * 1000 - int(
                    rng.random() * 365 * DAY * 1000)
                length = None if pending else int(rng.lognormvariate(math.log(median), sigma))
                yield (f"{md5(str(number))[:24]}", media_type, length, created,
                       f"upload-{number}", user, "@admin:example.org" if rng.random() < 0.001
                       else None, None, created, False, True,
                       None if pending else hashlib.sha256(str(number).encode()).hexdigest())


# --- writers --------------------------------------------------------------------------------


def postgres_ddl(statement: str) -> str:
    """A SQLite statement of these schemas in PostgreSQL's types, as Doctrine (Nextcloud) and
    Synapse create them there."""
    replacements = (
        (r"INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY"),
        (r"\bCLOB\b", "TEXT"),
        (r"\bDATETIME\b", "TIMESTAMP(0) WITHOUT TIME ZONE"),
        (r" UNSIGNED\b", ""),
        (r"(BOOLEAN(?: NOT NULL)?) DEFAULT '?0'?", r"\1 DEFAULT false"),
        (r"REFERENCES \w+ \(\w+\) ON DELETE CASCADE", ""),
        # oc_share_external.user: a reserved word that Doctrine quotes.
        (r"([(,]\s*)user\b", r'\1"user"'),
    )
    for pattern, replacement in replacements:
        statement = re.sub(pattern, replacement, statement)
    return statement


def postgres_conninfo(url: str) -> str:
    """A libpq URL from an SQLAlchemy one (postgresql+psycopg://...)."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def write_postgres(url: str, dataset: Dataset) -> dict[str, int]:
    """Load an empty PostgreSQL database with COPY; returns the rows written per table."""
    import psycopg

    counts = {}
    with psycopg.connect(postgres_conninfo(url), autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET synchronous_commit = off")
        for statement in dataset.ddl:
            if not is_index(statement):
                conn.execute(postgres_ddl(statement))
        for table in dataset.tables:
            columns = ", ".join(f'"{c}"' for c in table.columns)
            counts[table.name] = 0
            with conn.cursor() as cur, cur.copy(
                    f'COPY "{table.name}" ({columns}) FROM STDIN') as copy:
                for row in table.rows():
                    copy.write_row(row)
                    counts[table.name] += 1
        for statement in dataset.ddl:
            if is_index(statement):
                conn.execute(postgres_ddl(statement))
        conn.execute("VACUUM (ANALYZE)")
    return counts


def write(target: str, dataset: Dataset) -> dict[str, int]:
    """`target`: an SQLAlchemy URL, sqlite:///path or postgresql+psycopg://..."""
    if target.startswith("sqlite:///"):
        return write_sqlite(Path(target.removeprefix("sqlite:///")), dataset)
    if target.startswith("postgresql"):
        return write_postgres(target, dataset)
    raise ValueError(f"unsupported target {target!r}: use sqlite:///... or postgresql://...")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("platform", choices=("nextcloud", "synapse"))
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--files", type=int, default=None,
                        help="oc_filecache rows (Nextcloud; default 20 per user)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--now", type=int, default=NOW, help="Unix seconds (default %(default)s)")
    parser.add_argument("target", help="sqlite:///path or postgresql://user:pass@host:port/db")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.platform == "nextcloud":
        data: NextcloudData | SynapseData = NextcloudData(
            args.users, args.files or 20 * args.users, now=args.now, seed=args.seed)
    else:
        data = SynapseData(args.users, now=args.now, seed=args.seed)
    counts = write(args.target, data.dataset())
    for name, count in counts.items():
        print(f"{name:28} {count:>12,}")
    print(f"written in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
