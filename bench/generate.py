"""Synthetic Nextcloud and Synapse databases at benchmark scale, in SQLite or PostgreSQL.

The schemas are the platforms' own: Nextcloud 24's statements are those of the real instance the
test fixture came from (exporter.demo_data keeps them verbatim, indexes included), Synapse's are
copied from the fixture homeserver.db (schema 94). PostgreSQL gets the same statements with the
types Doctrine and Synapse use there.

The data is skewed like a real instance: per-user activity, files, shares and media follow a
Pareto law (alpha 1.16, the 80/20 rule), so a few heavy users own most of the files while many
accounts are idle or never logged in. Everything is derived from a seed, so a scale always gives
the same database. Rows are generated as they are written: SQLite takes them through executemany
in large transactions with the journal off, PostgreSQL through COPY; indexes are built after the
load, and PostgreSQL is vacuumed and analysed, as a live instance would be.

    python bench/generate.py nextcloud --users 100000 --files 2000000 --sqlite /tmp/nc.db
    python bench/generate.py synapse --users 10000 --postgres postgresql://u:p@127.0.0.1:5432/db
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import itertools
import json
import math
import random
import re
import sqlite3
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.demo_data import _SCHEMA as NEXTCLOUD_SCHEMA

# The instant every benchmark measures time windows from (2026-11-23 12:00 UTC).
NOW = int(datetime(2026, 11, 23, 12, tzinfo=UTC).timestamp())
MINUTE, HOUR, DAY = 60, 3600, 86400
PARETO_ALPHA = 1.16
# The heaviest user may hold this many times the mean weight (keeps one account from owning
# half of a small instance, as a sampled Pareto tail would).
WEIGHT_CAP = 3000.0

Row = tuple[Any, ...]


@dataclass(frozen=True)
class TableData:
    name: str
    columns: tuple[str, ...]
    rows: Callable[[], Iterable[Row]]


@dataclass(frozen=True)
class Dataset:
    """DDL in SQLite's dialect (tables and indexes, as sqlite_master holds them) and the rows."""

    ddl: tuple[str, ...]
    tables: tuple[TableData, ...]


# --- shared distributions -------------------------------------------------------------------

# Age of the last activity (seconds before now) per band and the share of users in it, in
# percent; None = never logged in. Bands straddle the exporter's trailing windows.
ACTIVITY_BANDS: tuple[tuple[tuple[int, int] | None, int], ...] = (
    ((1, 5 * MINUTE), 2),
    ((5 * MINUTE, HOUR), 3),
    ((HOUR, DAY), 10),
    ((DAY, 7 * DAY), 15),
    ((7 * DAY, 30 * DAY), 15),
    ((30 * DAY, 90 * DAY), 14),
    ((90 * DAY, 365 * DAY), 18),
    ((365 * DAY, 4 * 365 * DAY), 13),
    (None, 10),
)
_BAND_TABLE = [band for band, percent in ACTIVITY_BANDS for _ in range(percent)]

FIRST = ("anna", "ben", "clara", "david", "emma", "felix", "greta", "hannah", "ivan", "julia",
         "karl", "lena", "max", "nina", "oscar", "paula", "rosa", "simon", "tara", "vera",
         "amir", "chen", "elif", "farah", "hiro", "ines", "jonas", "lucia", "mateo", "priya")
LAST = ("anderson", "becker", "costa", "dubois", "fischer", "garcia", "hoffmann", "jensen",
        "kowalski", "larsen", "mueller", "nowak", "petrov", "rossi", "schmidt", "tanaka",
        "weber", "yilmaz", "zhang", "silva", "park", "nguyen", "singh", "kaya", "novak")
BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.0 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
)
NEXTCLOUD_APPS = (
    "Mozilla/5.0 (Windows) mirall/3.14.1stable-Win64 (build 20241008) (Nextcloud, "
    "windows-10.0.22631 ClientArchitecture: x86_64 OsArchitecture: x86_64)",
    "Mozilla/5.0 (Linux) mirall/3.14.1stable-Debian (build 20241008) (Nextcloud, "
    "debian-6.1.0-26-amd64 ClientArchitecture: x86_64 OsArchitecture: x86_64)",
    "Mozilla/5.0 (Android) Nextcloud-android/3.30.2",
    "Mozilla/5.0 (iOS) Nextcloud-iOS/5.5.4",
    "DAVx5/4.4.3.2-ose (2024/10/02; dav4jvm; okhttp/4.12.0) Android/14",
    "Thunderbird",
)
MATRIX_CLIENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Element/1.11.85 "
    "Chrome/130.0.6723.91 Electron/33.0.2 Safari/537.36",
    "Element/1.6.24 (Google Pixel 8; Android 14; AP2A.240905.003; Flavour GPlay; "
    "MatrixAndroidSdk2 1.6.24)",
    "Element X/25.01.0 (iPhone 15; iOS 18.1; Scale/3.00)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "mautrix-telegram/0.15.2",
)

# (mimetype, extension, median bytes, log-normal sigma, weight)
FILE_KINDS = (
    ("image/jpeg", "jpg", 2_500_000, 0.6, 30), ("image/png", "png", 300_000, 1.0, 8),
    ("application/pdf", "pdf", 350_000, 1.2, 12),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx", 60_000,
     1.0, 8),
    ("application/vnd.oasis.opendocument.spreadsheet", "ods", 40_000, 1.0, 5),
    ("text/markdown", "md", 3_000, 1.0, 7), ("text/plain", "txt", 2_000, 1.2, 5),
    ("video/mp4", "mp4", 60_000_000, 1.1, 4), ("audio/mpeg", "mp3", 7_000_000, 0.4, 5),
    ("application/zip", "zip", 20_000_000, 1.5, 3),
    ("application/octet-stream", "bin", 500_000, 2.0, 13),
)
FOLDER_NAMES = ("Documents", "Photos", "Projects", "Invoices", "Music", "Videos", "Backups",
                "Shared", "Archive", "Reports", "Travel", "Code")


def pareto_weights(rng: random.Random, count: int) -> array:
    """Per-user weights with mean 1: a Pareto law, capped at WEIGHT_CAP."""
    raw = array("d", (min(rng.paretovariate(PARETO_ALPHA), WEIGHT_CAP) for _ in range(count)))
    mean = sum(raw) / max(count, 1)
    return array("d", (w / mean for w in raw))


def apportion(total: int, weights: Sequence[float], rng: random.Random) -> array:
    """Integers proportional to `weights` summing to about `total` (randomised rounding)."""
    scale = total / max(sum(weights), 1e-9)
    return array("q", (int(w * scale + rng.random()) for w in weights))


def last_activity(rng: random.Random, now: int, weight: float) -> int:
    """A last-activity time drawn from ACTIVITY_BANDS, 0 = never. Heavy users are active more
    recently: they get the most recent of two draws."""
    draws = 2 if weight > 2 else 1
    best = 0
    for _ in range(draws):
        band = _BAND_TABLE[int(rng.random() * len(_BAND_TABLE))]
        if band is None:
            continue
        seen = now - rng.randint(*band)
        best = max(best, seen)
    return best


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


# --- Nextcloud ------------------------------------------------------------------------------

FOLDER_MIME = "httpd/unix-directory"
DATA_DIRECTORY = "/var/www/nextcloud/data/"
HOME_MOUNT = "OC\\Files\\Mount\\LocalHomeMountProvider"
SHARE_MOUNT = "OCA\\Files_Sharing\\MountProvider"
PERM_ROOT, PERM_DIR, PERM_FILE = 23, 31, 27
# IShare types per 100 shares; 2, 11 and 13 are added per recipient of 1, 10 and 12.
SHARE_MIX = ((0, 30), (1, 5), (3, 28), (4, 8), (6, 5), (7, 3), (8, 4), (9, 1), (10, 9), (12, 7))
SHARES_PER_USER = 0.6
# files/quota as admins set it, per 100 users: absent (the default applies), 'default', a size
# or 'none'.
QUOTA_MIX = ((None, 60), ("default", 8), ("1 GB", 10), ("5 GB", 8), ("10 GB", 6), ("50 GB", 3),
             ("none", 4), ("500 MB", 1))
QUOTAS = [quota for quota, weight in QUOTA_MIX for _ in range(weight)]
DEFAULT_QUOTA = "5 GB"
# Non-file rows per home storage: root, files, cache; versions and trash scale with files.
VERSIONS_PER_FILE, TRASH_PER_FILE, FILES_PER_FOLDER = 0.1, 0.05, 40
PREVIEW_SHARE = 0.08  # of all file cache rows, previews in appdata of the local storage
INSTANCE_ID = "ocbench0001"


@dataclass(frozen=True)
class Layout:
    """File cache rows of one home storage, in fileid order: root, files, cache, folders,
    files, then files_versions and files_trashbin with their entries."""

    files: int
    folders: int
    versions: int
    trash: int

    @classmethod
    def of(cls, files: int) -> Layout:
        return cls(files, 1 + files // FILES_PER_FOLDER, int(files * VERSIONS_PER_FILE),
                   int(files * TRASH_PER_FILE))

    @property
    def rows(self) -> int:
        return (3 + self.folders + self.files + (1 + self.versions if self.versions else 0)
                + (2 + self.trash if self.trash else 0))


class NextcloudData:
    """A Nextcloud instance of `users` accounts with about `filecache_rows` file cache rows."""

    def __init__(self, users: int, filecache_rows: int, *, now: int = NOW, seed: int = 1) -> None:
        self.users, self.now, self.seed = users, now, seed
        rng = random.Random(seed)
        self.weight = pareto_weights(rng, users)
        self.last_login = array("q", (last_activity(rng, now, w) for w in self.weight))
        self.created = array("q", (
            (login or now) - rng.randint(DAY, 3 * 365 * DAY) for login in self.last_login))
        homes = [i for i in range(users) if self.last_login[i]]
        # Rows per file including folders, versions and trash, to hit the requested size.
        per_file = 1 + 1 / FILES_PER_FOLDER + VERSIONS_PER_FILE + TRASH_PER_FILE
        home_rows = filecache_rows * (1 - PREVIEW_SHARE) - 4 * len(homes)
        files = apportion(max(int(home_rows / per_file), 0), [self.weight[i] for i in homes],
                          rng)
        self.files = array("q", bytes(8 * users))
        self.storage = array("q", bytes(8 * users))  # numeric_id of the home storage, 0 = none
        self.root = array("q", bytes(8 * users))  # fileid of the home storage's root
        # The local storage comes first: 3 folders, then one folder and 3 previews per file.
        self.preview_folders = int(filecache_rows * PREVIEW_SHARE) // 4
        next_id = 1 + 3 + 4 * self.preview_folders
        for number, (i, count) in enumerate(zip(homes, files, strict=True)):
            self.files[i] = count
            self.storage[i] = 2 + number
            self.root[i] = next_id
            next_id += Layout.of(count).rows
        self.filecache_rows = next_id - 1
        self.mimetypes = self._mimetypes()

    def uid(self, i: int) -> str:
        return f"{FIRST[i % len(FIRST)]}.{LAST[(i // len(FIRST)) % len(LAST)]}{i}"

    def display_name(self, i: int) -> str:
        return (f"{FIRST[i % len(FIRST)].title()} "
                f"{LAST[(i // len(FIRST)) % len(LAST)].title()} {i}")

    @staticmethod
    def _mimetypes() -> dict[str, int]:
        names = [FOLDER_MIME, "application/octet-stream"] + [k[0] for k in FILE_KINDS]
        parts = sorted({n.split("/")[0] for n in names})
        return {name: number for number, name in enumerate(
            dict.fromkeys(parts + names), start=1)}

    def dataset(self) -> Dataset:
        def table(name: str, columns: str, rows: Callable[[], Iterable[Row]]) -> TableData:
            return TableData(name, tuple(columns.split()), rows)

        return Dataset(tuple(_statements(NEXTCLOUD_SCHEMA)), (
            table("oc_users", "uid displayname password uid_lower", self._users),
            table("oc_accounts", "uid data", self._accounts),
            table("oc_preferences", "userid appid configkey configvalue", self._preferences),
            table("oc_appconfig", "appid configkey configvalue", self._appconfig),
            table("oc_groups", "gid displayname", self._groups),
            table("oc_group_user", "gid uid", self._group_users),
            table("oc_mimetypes", "id mimetype", lambda: (
                (number, name) for name, number in self.mimetypes.items())),
            table("oc_storages", "numeric_id id available last_checked", self._storages),
            table("oc_filecache", "fileid storage path path_hash parent name mimetype mimepart "
                  "size mtime storage_mtime encrypted unencrypted_size etag permissions "
                  "checksum", self._filecache),
            table("oc_authtoken", "id uid login_name password name token type remember "
                  "last_activity last_check scope expires private_key public_key version "
                  "password_invalid", self._authtokens),
            table("oc_share", "id share_type share_with password uid_owner uid_initiator parent "
                  "item_type item_source item_target file_source file_target permissions stime "
                  "accepted expiration token mail_send share_name password_by_talk note "
                  "hide_download label attributes password_expiration_time", self._shares),
            table("oc_mounts", "id storage_id root_id user_id mount_point mount_id "
                  "mount_provider_class", self._mounts),
            table("oc_share_external", "id parent share_type remote remote_id share_token "
                  "password name owner user mountpoint mountpoint_hash accepted",
                  self._external_shares),
        ))

    def _rng(self, table: str) -> random.Random:
        return random.Random(f"{self.seed}:{table}")

    def _users(self) -> Iterator[Row]:
        for i in range(self.users):
            uid = self.uid(i)
            yield uid, self.display_name(i), "3|$argon2id$v=19$m=65536,t=4,p=1$" + md5(uid), \
                uid.lower()

    def _accounts(self) -> Iterator[Row]:
        for i in range(self.users):
            uid = self.uid(i)
            yield uid, json.dumps({
                "displayname": {"value": self.display_name(i), "scope": "v2-federated",
                                "verified": "0"},
                "email": {"value": f"{uid}@example.org", "scope": "v2-federated",
                          "verified": "0"}})

    def _preferences(self) -> Iterator[Row]:
        rng = self._rng("preferences")
        for i in range(self.users):
            uid, login = self.uid(i), self.last_login[i]
            if rng.random() < 0.03:
                yield uid, "core", "enabled", "false"
            elif rng.random() < 0.2:
                yield uid, "core", "enabled", "true"
            quota = QUOTAS[int(rng.random() * len(QUOTAS))]
            if quota is not None:
                yield uid, "files", "quota", quota
            yield uid, "settings", "email", f"{uid}@example.org"
            if login:
                yield uid, "login", "lastLogin", str(login)
                yield uid, "avatar", "generated", "true"
                yield uid, "avatar", "version", "1"
                yield uid, "activity", "configured", "yes"
                yield uid, "core", "timezone", "Europe/Berlin"
                if login > self.now - 15 * DAY:
                    yield uid, "login_token", md5(f"{uid}:remember")[:32], str(login)

    def _appconfig(self) -> Iterator[Row]:
        yield "files", "default_quota", DEFAULT_QUOTA
        yield "core", "installedat", str(self.now - 4 * 365 * DAY)
        yield "core", "vendor", "nextcloud"
        yield "serverinfo", "installed_version", "1.14.0"

    def _group_count(self) -> int:
        return max(10, self.users // 200)

    def _groups(self) -> Iterator[Row]:
        yield "admin", "admin"
        for g in range(self._group_count()):
            yield f"team-{g}", f"Team {g}"

    def _group_users(self) -> Iterator[Row]:
        for i in range(min(5, self.users)):
            yield "admin", self.uid(i * 997 % self.users)
        groups = self._group_count()
        for i in range(self.users):
            yield f"team-{i % groups}", self.uid(i)

    def _storages(self) -> Iterator[Row]:
        yield 1, f"local::{DATA_DIRECTORY}", 1, None
        for i in range(self.users):
            if self.storage[i]:
                yield self.storage[i], f"home::{self.uid(i)}", 1, None

    def _filecache(self) -> Iterator[Row]:
        rng = self._rng("filecache")
        folder_mime = self.mimetypes[FOLDER_MIME]
        httpd = self.mimetypes["httpd"]
        kinds = [(self.mimetypes[m], self.mimetypes[m.split("/")[0]], ext, math.log(median),
                  sigma) for m, ext, median, sigma, weight in FILE_KINDS for _ in range(weight)]
        yield from self._previews(rng, folder_mime, httpd)
        for i in range(self.users):
            if self.storage[i]:
                yield from self._home(i, rng, kinds, folder_mime, httpd)

    def _previews(self, rng: random.Random, folder_mime: int, httpd: int) -> Iterator[Row]:
        """The local storage: appdata previews, 3 sizes per previewed file, one folder each."""
        jpeg, image = self.mimetypes["image/jpeg"], self.mimetypes["image"]
        mtime = self.now - DAY
        folders = self.preview_folders
        total = folders * 120_000
        yield 1, 1, "", md5(""), -1, "", folder_mime, httpd, total, mtime, mtime, 0, 0, \
            f"{1:013x}", PERM_ROOT, ""
        base = f"appdata_{INSTANCE_ID}"
        yield 2, 1, base, md5(base), 1, base, folder_mime, httpd, total, mtime, mtime, 0, 0, \
            f"{2:013x}", PERM_DIR, ""
        yield 3, 1, f"{base}/preview", md5(f"{base}/preview"), 2, "preview", folder_mime, \
            httpd, total, mtime, mtime, 0, 0, f"{3:013x}", PERM_DIR, ""
        fileid = 4
        for folder in range(folders):
            path = f"{base}/preview/{folder}"
            folder_id = fileid
            yield folder_id, 1, path, md5(path), 3, str(folder), folder_mime, httpd, 120_000, \
                mtime, mtime, 0, 0, f"{folder_id:013x}", PERM_DIR, ""
            fileid += 1
            for size, name in ((64_000, "1024-1024-max.jpg"), (40_000, "256-256.jpg"),
                               (16_000, "64-64-crop.jpg")):
                file_path = f"{path}/{name}"
                yield fileid, 1, file_path, md5(file_path), folder_id, name, jpeg, image, size, \
                    mtime, mtime, 0, 0, f"{rng.getrandbits(128):032x}", PERM_FILE, ""
                fileid += 1

    def _home(self, i: int, rng: random.Random, kinds: list, folder_mime: int,
              httpd: int) -> Iterator[Row]:
        storage, root, login = self.storage[i], self.root[i], self.last_login[i]
        layout = Layout.of(self.files[i])
        created = self.created[i]
        span = max(login - created, 1)
        files = []
        for _ in range(layout.files):
            mime, part, ext, mu, sigma = kinds[int(rng.random() * len(kinds))]
            size = min(int(rng.lognormvariate(mu, sigma)), 8 * 1024**3)
            files.append((mime, part, ext, size, created + int(rng.random() * span)))
        folder_sizes = [0] * layout.folders
        for n, file in enumerate(files):
            folder_sizes[n % layout.folders] += file[3]
        used = sum(folder_sizes)
        version_files = [files[n] for n in range(layout.versions)]
        trash_files = [files[-1 - n] for n in range(layout.trash)]
        versions_size = sum(f[3] for f in version_files)
        trash_size = sum(f[3] for f in trash_files)

        def folder_row(fileid: int, path: str, parent: int, size: int, perm: int = PERM_DIR) -> Row:
            name = path.rsplit("/", 1)[-1]
            return fileid, storage, path, md5(path), parent, name, folder_mime, httpd, size, \
                login, login, 0, 0, f"{fileid:013x}", perm, ""

        def file_row(fileid: int, path: str, parent: int, name: str, spec: tuple) -> Row:
            mime, part, _, size, mtime = spec
            return fileid, storage, path, md5(path), parent, name, mime, part, size, mtime, \
                mtime, 0, 0, f"{rng.getrandbits(128):032x}", PERM_FILE, ""

        yield folder_row(root, "", -1, used + versions_size + trash_size, PERM_ROOT)
        yield folder_row(root + 1, "files", root, used)
        yield folder_row(root + 2, "cache", root, 0)
        first_folder = root + 3
        folder_paths = []
        for n in range(layout.folders):
            name = FOLDER_NAMES[n % len(FOLDER_NAMES)] + (f" {n}" if n >= len(FOLDER_NAMES)
                                                          else "")
            folder_paths.append(f"files/{name}")
            yield folder_row(first_folder + n, folder_paths[-1], root + 1, folder_sizes[n])
        fileid = first_folder + layout.folders
        names = []
        for n, spec in enumerate(files):
            name = f"file {n}.{spec[2]}"
            names.append(name)
            yield file_row(fileid, f"{folder_paths[n % layout.folders]}/{name}",
                       first_folder + n % layout.folders, name, spec)
            fileid += 1
        if layout.versions:
            versions = fileid
            yield folder_row(versions, "files_versions", root, versions_size)
            fileid += 1
            for n, spec in enumerate(version_files):
                name = f"{names[n]}.v{spec[4]}"
                yield file_row(fileid, f"files_versions/{name}", versions, name, spec)
                fileid += 1
        if layout.trash:
            trashbin = fileid
            yield folder_row(trashbin, "files_trashbin", root, trash_size)
            yield folder_row(trashbin + 1, "files_trashbin/files", trashbin, trash_size)
            fileid += 2
            for n, spec in enumerate(trash_files):
                name = f"{names[-1 - n]}.d{spec[4]}"
                yield file_row(fileid, f"files_trashbin/files/{name}", trashbin + 1, name, spec)
                fileid += 1

    def _authtokens(self) -> Iterator[Row]:
        rng = self._rng("authtoken")
        # Encrypted private keys and passwords: opaque base64 of realistic length.
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        keys = ["".join(rng.choices(alphabet, k=1700)) for _ in range(16)]
        public = "-----BEGIN PUBLIC KEY-----\n" + keys[0][:392] + "\n-----END PUBLIC KEY-----\n"
        ids = itertools.count(1)
        for i in range(self.users):
            login = self.last_login[i]
            if not login:
                continue
            uid, weight = self.uid(i), self.weight[i]
            tokens: list[tuple[str, int, int, int]] = []  # name, type, remember, last activity
            if login > self.now - 15 * DAY:
                for _ in range(1 + (weight > 1) + (weight > 5)):
                    tokens.append((BROWSERS[int(rng.random() * len(BROWSERS))], 0, 1,
                                   login - int(rng.random() * HOUR)))
            apps = min(int(weight) + (rng.random() < 0.4), len(NEXTCLOUD_APPS))
            for name in rng.sample(NEXTCLOUD_APPS, apps):
                tokens.append((name, 1, 0, max(login, self.now - int(rng.random() * 2 * DAY))
                               if login > self.now - 30 * DAY else login))
            if rng.random() < 0.0005:
                tokens.append(("Remote wipe", 2, 0, login))
            for name, kind, remember, active in tokens:
                token_id = next(ids)
                yield token_id, uid, uid, keys[token_id % 16][:344], name, \
                    hashlib.sha512(f"{self.seed}:{token_id}".encode()).hexdigest(), kind, \
                    remember, active, active, None, None, keys[(token_id + 1) % 16], public, \
                    2, False

    def _share_owners(self, rng: random.Random, count: int) -> list[int]:
        homes = [i for i in range(self.users) if self.storage[i]]
        cumulative = list(itertools.accumulate(self.weight[i] for i in homes))
        return rng.choices(homes, cum_weights=cumulative, k=count) if homes else []

    def _shares(self) -> Iterator[Row]:
        rng = self._rng("shares")
        types = [kind for kind, weight in SHARE_MIX for _ in range(weight)]
        count = int(self.users * SHARES_PER_USER)
        ids = itertools.count(1)
        groups = self._group_count()
        for owner in self._share_owners(rng, count):
            kind = types[int(rng.random() * len(types))]
            uid = self.uid(owner)
            fileid = self.root[owner] + 3 + int(rng.random() * (Layout.of(self.files[owner])
                                                                .folders + self.files[owner]))
            recipient = self.uid(int(rng.random() * self.users))
            share_with, password, token = {
                0: (recipient, None, None), 1: (f"team-{int(rng.random() * groups)}", None, None),
                3: (None, "3|$argon2id$" + md5(uid) if rng.random() < 0.35 else None,
                    md5(f"{owner}{fileid}")[:15]),
                4: (f"guest{int(rng.random() * 10**6)}@partner.example", None,
                    md5(f"mail{owner}{fileid}")[:15]),
                6: (f"{recipient}@cloud.partner.example", None, md5(f"fed{fileid}")[:15]),
                7: (md5(f"circle{owner % 500}")[:31], None, None),
                8: (f"guest{int(rng.random() * 10**6)}@example.com", None, None),
                9: ("team@cloud.partner.example", None, md5(f"fedg{fileid}")[:15]),
                10: (md5(f"room{owner % 2000}")[:8], None, md5(f"room{fileid}")[:15]),
                12: (str(owner % 3000), None, None),
            }[kind]
            stime = self.now - int(rng.random() * 2 * 365 * DAY)
            share_id = next(ids)
            target = f"/file {fileid}"
            yield (share_id, kind, share_with, password, uid, uid, None, "file", str(fileid),
                   target, fileid, target, 19, stime, 1, None, token, 0, None, False, "", 0,
                   None, None, None)
            per_recipient = {1: 2, 10: 11, 12: 13}.get(kind)
            if per_recipient is not None:
                for _ in range(int(rng.random() * 3)):
                    member = self.uid(int(rng.random() * self.users))
                    yield (next(ids), per_recipient, member, None, uid, uid, share_id, "file",
                           str(fileid), target, fileid, target, 19, stime, 1, None, None, 0,
                           None, False, "", 0, None, None, None)

    def _mounts(self) -> Iterator[Row]:
        ids = itertools.count(1)
        for i in range(self.users):
            if self.storage[i]:
                uid = self.uid(i)
                yield next(ids), self.storage[i], self.root[i], uid, f"/{uid}/", None, HOME_MOUNT
        rng = self._rng("mounts")
        seen: set[tuple[int, int]] = set()
        for owner in self._share_owners(rng, int(self.users * SHARES_PER_USER * 0.3)):
            recipient = int(rng.random() * self.users)
            root = self.root[owner] + 3
            if recipient == owner or (recipient, root) in seen:
                continue
            seen.add((recipient, root))
            uid = self.uid(recipient)
            yield next(ids), self.storage[owner], root, uid, f"/{uid}/files/Shared {owner}/", \
                None, SHARE_MOUNT

    def _external_shares(self) -> Iterator[Row]:
        rng = self._rng("share_external")
        for share_id in range(1, max(self.users // 100, 1) + 1):
            uid = self.uid(int(rng.random() * self.users))
            mountpoint = f"/Federated {share_id}"
            yield share_id, -1, 0, "https://cloud.partner.example", str(share_id), \
                md5(f"ext{share_id}")[:15], None, mountpoint, "partner", uid, \
                mountpoint, md5(mountpoint), 1


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
        return f"{prefix}{FIRST[i % len(FIRST)]}.{LAST[(i // len(FIRST)) % len(LAST)]}{i}"

    def mxid(self, i: int) -> str:
        return f"@{self.localpart(i)}:{SERVER_NAME}"

    def dataset(self) -> Dataset:
        def table(name: str, columns: str, rows: Callable[[], Iterable[Row]]) -> TableData:
            return TableData(name, tuple(columns.split()), rows)

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

    def _rng(self, table: str) -> random.Random:
        return random.Random(f"{self.seed}:{table}")

    def _users(self) -> Iterator[Row]:
        rng = self._rng("users")
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
            rng = self._rng("sessions")
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
        rng = self._rng("visits")
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
        rng = self._rng("events")
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
        rng = self._rng("media")
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


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]


def _is_index(statement: str) -> bool:
    return re.match(r"CREATE (UNIQUE )?INDEX", statement) is not None


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


def write_sqlite(path: Path, dataset: Dataset, batch: int = 50_000) -> dict[str, int]:
    """Write a new SQLite database; returns the rows written per table."""
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-262144")
        for statement in dataset.ddl:
            if not _is_index(statement):
                db.execute(statement)
        counts = {}
        for table in dataset.tables:
            insert = (f"INSERT INTO {table.name} ({', '.join(table.columns)}) "
                      f"VALUES ({', '.join('?' * len(table.columns))})")
            rows = iter(table.rows())
            counts[table.name] = 0
            db.execute("BEGIN")
            while chunk := list(itertools.islice(rows, batch)):
                db.executemany(insert, chunk)
                counts[table.name] += len(chunk)
            db.execute("COMMIT")
        for statement in dataset.ddl:
            if _is_index(statement):
                db.execute(statement)
        db.execute("ANALYZE")
        return counts
    finally:
        db.close()


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
            if not _is_index(statement):
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
            if _is_index(statement):
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
