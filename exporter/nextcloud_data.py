"""Synthetic Nextcloud 24 databases: the platform's own schema, and instances of any size.

The schema is Nextcloud's own (the statements below are copied verbatim from `sqlite3 .schema` of
a real Nextcloud 24.0.5 instance, indexes included). `NextcloudData` builds instances at
benchmark scale (`PRESETS`: 10,000 to 1,000,000 accounts): per-user activity, files, shares and
sessions follow a Pareto law (the 80/20 rule), so a few heavy users own most of the files while
many accounts are idle or never logged in. Only per-user numbers are held (a few arrays of
integers); every table's rows are generated as they are written, each from a seed of its own, so
a scale always gives the same database and memory does not grow with the file cache. The demo's
400-user office (exporter.demo_data) is built on the same schema and pieces.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from exporter.synthetic import (
    DAY,
    HOUR,
    Dataset,
    Row,
    Table,
    apportion,
    last_activity,
    md5,
    numbered_person,
    pareto_weights,
    statements,
    table_rng,
)

__all__ = ["COLUMNS", "NEXTCLOUD_SCHEMA", "NOW", "PRESETS", "NextcloudData", "nextcloud_dataset"]

# Verbatim from the real schema (tests/fixtures/nextcloud/schema.sql), including the oc_share
# statement that SQLite stores across two lines because of its Doctrine type comment.
NEXTCLOUD_SCHEMA = statements("""
CREATE TABLE oc_users (uid VARCHAR(64) DEFAULT '' NOT NULL, displayname VARCHAR(64) DEFAULT NULL, password VARCHAR(255) DEFAULT '' NOT NULL, uid_lower VARCHAR(64) DEFAULT '', PRIMARY KEY(uid));
CREATE INDEX user_uid_lower ON oc_users (uid_lower);
CREATE TABLE oc_preferences (userid VARCHAR(64) DEFAULT '' NOT NULL, appid VARCHAR(32) DEFAULT '' NOT NULL, configkey VARCHAR(64) DEFAULT '' NOT NULL, configvalue CLOB DEFAULT NULL, PRIMARY KEY(userid, appid, configkey));
CREATE TABLE oc_appconfig (appid VARCHAR(32) DEFAULT '' NOT NULL, configkey VARCHAR(64) DEFAULT '' NOT NULL, configvalue CLOB DEFAULT NULL, PRIMARY KEY(appid, configkey));
CREATE INDEX appconfig_config_key_index ON oc_appconfig (configkey);
CREATE TABLE oc_accounts (uid VARCHAR(64) DEFAULT '' NOT NULL, data CLOB DEFAULT '' NOT NULL, PRIMARY KEY(uid));
CREATE TABLE oc_authtoken (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, uid VARCHAR(64) DEFAULT '' NOT NULL, login_name VARCHAR(255) DEFAULT '' NOT NULL, password CLOB DEFAULT NULL, name CLOB DEFAULT '' NOT NULL, token VARCHAR(200) DEFAULT '' NOT NULL, type SMALLINT UNSIGNED DEFAULT 0, remember SMALLINT UNSIGNED DEFAULT 0, last_activity INTEGER UNSIGNED DEFAULT 0, last_check INTEGER UNSIGNED DEFAULT 0, scope CLOB DEFAULT NULL, expires INTEGER UNSIGNED DEFAULT NULL, private_key CLOB DEFAULT NULL, public_key CLOB DEFAULT NULL, version SMALLINT UNSIGNED DEFAULT 1 NOT NULL, password_invalid BOOLEAN DEFAULT '0');
CREATE UNIQUE INDEX authtoken_token_index ON oc_authtoken (token);
CREATE INDEX authtoken_last_activity_idx ON oc_authtoken (last_activity);
CREATE INDEX authtoken_uid_index ON oc_authtoken (uid);
CREATE TABLE oc_share (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, share_type SMALLINT DEFAULT 0 NOT NULL, share_with VARCHAR(255) DEFAULT NULL, password VARCHAR(255) DEFAULT NULL, uid_owner VARCHAR(64) DEFAULT '' NOT NULL, uid_initiator VARCHAR(64) DEFAULT NULL, parent BIGINT DEFAULT NULL, item_type VARCHAR(64) DEFAULT '' NOT NULL, item_source VARCHAR(255) DEFAULT NULL, item_target VARCHAR(255) DEFAULT NULL, file_source BIGINT DEFAULT NULL, file_target VARCHAR(512) DEFAULT NULL, permissions SMALLINT DEFAULT 0 NOT NULL, stime BIGINT DEFAULT 0 NOT NULL, accepted SMALLINT DEFAULT 0 NOT NULL, expiration DATETIME DEFAULT NULL, token VARCHAR(32) DEFAULT NULL, mail_send SMALLINT DEFAULT 0 NOT NULL, share_name VARCHAR(64) DEFAULT NULL, password_by_talk BOOLEAN DEFAULT '0', note CLOB DEFAULT NULL, hide_download SMALLINT DEFAULT 0, label VARCHAR(255) DEFAULT NULL, attributes CLOB DEFAULT NULL --(DC2Type:json)
, password_expiration_time DATETIME DEFAULT NULL);
CREATE INDEX item_share_type_index ON oc_share (item_type, share_type);
CREATE INDEX file_source_index ON oc_share (file_source);
CREATE INDEX token_index ON oc_share (token);
CREATE INDEX share_with_index ON oc_share (share_with);
CREATE INDEX parent_index ON oc_share (parent);
CREATE INDEX owner_index ON oc_share (uid_owner);
CREATE INDEX initiator_index ON oc_share (uid_initiator);
CREATE TABLE oc_share_external (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, parent BIGINT DEFAULT -1, share_type INTEGER DEFAULT NULL, remote VARCHAR(512) NOT NULL, remote_id VARCHAR(255) DEFAULT '', share_token VARCHAR(64) NOT NULL, password VARCHAR(64) DEFAULT NULL, name VARCHAR(4000) NOT NULL, owner VARCHAR(64) NOT NULL, user VARCHAR(64) NOT NULL, mountpoint VARCHAR(4000) NOT NULL, mountpoint_hash VARCHAR(32) NOT NULL, accepted INTEGER DEFAULT 0 NOT NULL);
CREATE UNIQUE INDEX sh_external_mp ON oc_share_external (user, mountpoint_hash);
CREATE TABLE oc_filecache (fileid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, storage BIGINT DEFAULT 0 NOT NULL, path VARCHAR(4000) DEFAULT NULL, path_hash VARCHAR(32) DEFAULT '' NOT NULL, parent BIGINT DEFAULT 0 NOT NULL, name VARCHAR(250) DEFAULT NULL, mimetype BIGINT DEFAULT 0 NOT NULL, mimepart BIGINT DEFAULT 0 NOT NULL, size BIGINT DEFAULT 0 NOT NULL, mtime BIGINT DEFAULT 0 NOT NULL, storage_mtime BIGINT DEFAULT 0 NOT NULL, encrypted INTEGER DEFAULT 0 NOT NULL, unencrypted_size BIGINT DEFAULT 0 NOT NULL, etag VARCHAR(40) DEFAULT NULL, permissions INTEGER DEFAULT 0, checksum VARCHAR(255) DEFAULT NULL);
CREATE UNIQUE INDEX fs_storage_path_hash ON oc_filecache (storage, path_hash);
CREATE INDEX fs_parent_name_hash ON oc_filecache (parent, name);
CREATE INDEX fs_storage_mimetype ON oc_filecache (storage, mimetype);
CREATE INDEX fs_storage_mimepart ON oc_filecache (storage, mimepart);
CREATE INDEX fs_storage_size ON oc_filecache (storage, size, fileid);
CREATE INDEX fs_id_storage_size ON oc_filecache (fileid, storage, size);
CREATE INDEX fs_mtime ON oc_filecache (mtime);
CREATE INDEX fs_size ON oc_filecache (size);
CREATE INDEX fs_storage_path_prefix ON oc_filecache (storage, path);
CREATE TABLE oc_storages (numeric_id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, id VARCHAR(64) DEFAULT NULL, available INTEGER DEFAULT 1 NOT NULL, last_checked INTEGER DEFAULT NULL);
CREATE UNIQUE INDEX storages_id_index ON oc_storages (id);
CREATE TABLE oc_mounts (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, storage_id BIGINT NOT NULL, root_id BIGINT NOT NULL, user_id VARCHAR(64) NOT NULL, mount_point VARCHAR(4000) NOT NULL, mount_id BIGINT DEFAULT NULL, mount_provider_class VARCHAR(128) DEFAULT NULL);
CREATE INDEX mounts_storage_index ON oc_mounts (storage_id);
CREATE INDEX mounts_root_index ON oc_mounts (root_id);
CREATE INDEX mounts_mount_id_index ON oc_mounts (mount_id);
CREATE UNIQUE INDEX mounts_user_root_index ON oc_mounts (user_id, root_id);
CREATE INDEX mount_user_storage ON oc_mounts (storage_id, user_id);
CREATE TABLE oc_mimetypes (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, mimetype VARCHAR(255) DEFAULT '' NOT NULL);
CREATE UNIQUE INDEX mimetype_id_index ON oc_mimetypes (mimetype);
CREATE TABLE oc_groups (gid VARCHAR(64) DEFAULT '' NOT NULL, displayname VARCHAR(255) DEFAULT 'name' NOT NULL, PRIMARY KEY(gid));
CREATE TABLE oc_group_user (gid VARCHAR(64) DEFAULT '' NOT NULL, uid VARCHAR(64) DEFAULT '' NOT NULL, PRIMARY KEY(gid, uid));
CREATE INDEX gu_uid_index ON oc_group_user (uid);
""")  # noqa: E501

# The columns each table's rows fill, tables in the order they are written.
COLUMNS: dict[str, tuple[str, ...]] = {name: tuple(columns.split()) for name, columns in (
    ("oc_users", "uid displayname password uid_lower"),
    ("oc_accounts", "uid data"),
    ("oc_preferences", "userid appid configkey configvalue"),
    ("oc_appconfig", "appid configkey configvalue"),
    ("oc_groups", "gid displayname"),
    ("oc_group_user", "gid uid"),
    ("oc_mimetypes", "id mimetype"),
    ("oc_storages", "numeric_id id available last_checked"),
    ("oc_filecache", "fileid storage path path_hash parent name mimetype mimepart size mtime "
                     "storage_mtime encrypted unencrypted_size etag permissions checksum"),
    ("oc_authtoken", "id uid login_name password name token type remember last_activity "
                     "last_check scope expires private_key public_key version password_invalid"),
    ("oc_share", "id share_type share_with password uid_owner uid_initiator parent item_type "
                 "item_source item_target file_source file_target permissions stime accepted "
                 "expiration token mail_send share_name password_by_talk note hide_download label "
                 "attributes password_expiration_time"),
    ("oc_mounts", "id storage_id root_id user_id mount_point mount_id mount_provider_class"),
    ("oc_share_external", "id parent share_type remote remote_id share_token password name owner "
                          "user mountpoint mountpoint_hash accepted"),
)}


def nextcloud_dataset(rows: Mapping[str, Callable[[], Iterable[Row]]]) -> Dataset:
    """A Nextcloud database: the schema, and the rows of every table of COLUMNS."""
    return Dataset(NEXTCLOUD_SCHEMA, tuple(
        Table(name, columns, rows[name]) for name, columns in COLUMNS.items()))


# The instant every benchmark measures time windows from (2026-11-23 12:00 UTC).
NOW = int(datetime(2026, 11, 23, 12, tzinfo=UTC).timestamp())
# Benchmark scales: accounts and oc_filecache rows (20 per account).
PRESETS: dict[str, tuple[int, int]] = {
    "10k": (10_000, 200_000), "100k": (100_000, 2_000_000), "1m": (1_000_000, 20_000_000),
}

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
        first, last = numbered_person(i)
        return f"{first}.{last}{i}"

    def display_name(self, i: int) -> str:
        first, last = numbered_person(i)
        return f"{first.title()} {last.title()} {i}"

    @staticmethod
    def _mimetypes() -> dict[str, int]:
        names = [FOLDER_MIME, "application/octet-stream"] + [k[0] for k in FILE_KINDS]
        parts = sorted({n.split("/")[0] for n in names})
        return {name: number for number, name in enumerate(
            dict.fromkeys(parts + names), start=1)}

    def dataset(self) -> Dataset:
        return nextcloud_dataset({
            "oc_users": self._users, "oc_accounts": self._accounts,
            "oc_preferences": self._preferences, "oc_appconfig": self._appconfig,
            "oc_groups": self._groups, "oc_group_user": self._group_users,
            "oc_mimetypes": lambda: ((number, name) for name, number in self.mimetypes.items()),
            "oc_storages": self._storages, "oc_filecache": self._filecache,
            "oc_authtoken": self._authtokens, "oc_share": self._shares,
            "oc_mounts": self._mounts, "oc_share_external": self._external_shares,
        })

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
        rng = table_rng(self.seed, "preferences")
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
        rng = table_rng(self.seed, "filecache")
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
        rng = table_rng(self.seed, "authtoken")
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
        rng = table_rng(self.seed, "shares")
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
        rng = table_rng(self.seed, "mounts")
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
        rng = table_rng(self.seed, "share_external")
        for share_id in range(1, max(self.users // 100, 1) + 1):
            uid = self.uid(int(rng.random() * self.users))
            mountpoint = f"/Federated {share_id}"
            yield share_id, -1, 0, "https://cloud.partner.example", str(share_id), \
                md5(f"ext{share_id}")[:15], None, mountpoint, "partner", uid, \
                mountpoint, md5(mountpoint), 1

