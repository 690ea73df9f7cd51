"""The demo's Nextcloud 24 instance (`usage-exporter demo`, and tests): a 400-user office.

Where exporter.nextcloud_data builds benchmark-scale instances from per-user numbers, this one
builds each account as a person, on Nextcloud's real schema (exporter.nextcloud_data) with the
shared names and activity bands (exporter.synthetic). The rows imitate what Nextcloud itself
writes: home storages created at first login, a file cache whose folder sizes are the sum of
their children, remember-me browser tokens next to app passwords, group shares with one
per-member row each, and so on.
Every query the exporter runs against a production instance therefore runs unchanged on the demo.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import itertools
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporter.nextcloud_data import (
    COLUMNS,
    DATA_DIRECTORY,
    DEFAULT_QUOTA,
    FOLDER_MIME,
    HOME_MOUNT,
    PERM_DIR,
    PERM_FILE,
    PERM_ROOT,
    SHARE_MOUNT,
    nextcloud_dataset,
)
from exporter.synthetic import (
    DAY,
    FIRST_NAMES,
    HOUR,
    LAST_NAMES,
    MINUTE,
    YEAR,
    Dataset,
    last_activity,
    md5,
    write_sqlite,
)

__all__ = ["DEMO_USERS", "build_demo_database"]

DEMO_USERS = 400

# Real instances are skewed: recently active users store more, long-idle ones keep the skeleton.
_PROFILES = ("idle", "light", "regular", "heavy")
_PROFILE_WEIGHTS = ((12, 35, 45, 8), (27, 40, 30, 3), (50, 37, 12, 1))

# ISecureRandom::CHAR_HUMAN_READABLE, used for share tokens.
_HUMAN = "abcdefgijkmnopqrstwxyzABCDEFGHJKLMNPQRSTWXYZ23456789"
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

# kind: (mimetype, median size in bytes, log-normal sigma)
_KINDS: dict[str, tuple[str, int, float]] = {
    "jpg": ("image/jpeg", 2_800_000, 0.5),
    "png": ("image/png", 350_000, 1.0),
    "heic": ("image/heic", 1_900_000, 0.4),
    "mp4": ("video/mp4", 60_000_000, 1.1),
    "mov": ("video/quicktime", 120_000_000, 1.0),
    "mp3": ("audio/mpeg", 7_000_000, 0.4),
    "flac": ("audio/flac", 28_000_000, 0.4),
    "pdf": ("application/pdf", 350_000, 1.2),
    "odt": ("application/vnd.oasis.opendocument.text", 45_000, 0.9),
    "ods": ("application/vnd.oasis.opendocument.spreadsheet", 30_000, 0.9),
    "odp": ("application/vnd.oasis.opendocument.presentation", 2_500_000, 1.0),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             60_000, 1.0),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", 40_000, 1.0),
    "md": ("text/markdown", 3_000, 1.0),
    "txt": ("text/plain", 2_000, 1.2),
    "csv": ("text/csv", 200_000, 1.5),
    "py": ("text/x-python", 6_000, 0.9),
    "js": ("application/javascript", 9_000, 1.0),
    "json": ("application/json", 15_000, 1.5),
    "zip": ("application/zip", 20_000_000, 1.5),
    "tar.gz": ("application/x-gzip", 150_000_000, 1.2),
    "7z": ("application/x-7z-compressed", 80_000_000, 1.2),
    "iso": ("application/x-iso9660-image", 2_500_000_000, 0.25),
    "kdbx": ("application/x-kdbx", 90_000, 0.5),
}
_PHOTO = ("IMG_{n4}.{ext}", "PXL_{compact}{n3}.{ext}", "DSC{n5}.{ext}")
_VIDEO = ("VID_{compact}.{ext}", "Recording {date}.{ext}")
_TEXT = ("{Word} {word}.{ext}", "Meeting notes {date}.{ext}")
_SHEET = ("Budget {year}.{ext}", "Expenses {month}.{ext}", "export-{date}.{ext}")
_ARCHIVE = ("backup-{date}.{ext}", "{word}.{ext}")
_NAMES: dict[str, tuple[str, ...]] = {
    "jpg": _PHOTO, "heic": _PHOTO, "mp4": _VIDEO, "mov": _VIDEO,
    "odt": _TEXT, "docx": _TEXT, "odp": _TEXT, "ods": _SHEET, "xlsx": _SHEET, "csv": _SHEET,
    "zip": _ARCHIVE, "tar.gz": _ARCHIVE, "7z": _ARCHIVE,
    "png": ("Screenshot {date} at {clock}.png", "{word}.png"),
    "mp3": ("{track} - {Word} {word}.{ext}",), "flac": ("{track} - {Word} {word}.{ext}",),
    "pdf": ("Invoice-{n5}.pdf", "Scan {date}.pdf", "{Word} {year}.pdf",
            "Payslip {month} {year}.pdf"),
    "iso": ("ubuntu-22.04.{n1}-desktop-amd64.iso", "debian-12.{n1}.0-amd64-netinst.iso"),
    "kdbx": ("Passwords.kdbx",),
    "md": ("Notes.md", "TODO.md", "{word}.md"),
}
_DOC_KINDS = frozenset({"pdf", "odt", "ods", "odp", "docx", "xlsx", "md", "txt", "csv"})
_MAX_FILE = 8 * 1024**3

# Nextcloud 24's default skeleton (a subset), copied into every home at first login.
_SKELETON: tuple[tuple[str, int, str], ...] = (
    ("Documents/Example.md", 1_095, "text/markdown"),
    ("Documents/Readme.md", 136, "text/markdown"),
    ("Documents/Welcome to Nextcloud Hub.docx", 24_903, _KINDS["docx"][0]),
    ("Documents/Nextcloud flyer.pdf", 1_083_339, "application/pdf"),
    ("Photos/Birdie.jpg", 593_508, "image/jpeg"),
    ("Photos/Frog.jpg", 457_744, "image/jpeg"),
    ("Photos/Library.jpg", 2_170_375, "image/jpeg"),
    ("Photos/Toucan.jpg", 167_989, "image/jpeg"),
    ("Photos/Readme.md", 150, "text/markdown"),
    ("Templates/Meeting notes.md", 326, "text/markdown"),
    ("Templates/Invoice.odt", 17_276, _KINDS["odt"][0]),
    ("Templates/Timesheet.ods", 88_394, _KINDS["ods"][0]),
    ("Nextcloud intro.mp4", 3_963_036, "video/mp4"),
    ("Nextcloud Manual.pdf", 12_966_338, "application/pdf"),
    ("Nextcloud.png", 50_598, "image/png"),
    ("Readme.md", 206, "text/markdown"),
)
_SKELETON_BIG = ("Nextcloud intro.mp4", "Nextcloud Manual.pdf")

# top folder: (kinds of files in it, subfolder names)
_FOLDERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Documents": (("pdf", "odt", "docx", "xlsx", "md", "txt", "ods"),
                  ("Contracts", "Reports", "Archive", "Travel")),
    "Photos": (("jpg", "jpg", "jpg", "heic", "png"),
               ("Holidays", "Family", "Screenshots", "Camera")),
    "Invoices": (("pdf",), ("2022", "2023", "2024")),
    "Projects": (("md", "pdf", "odp", "xlsx", "docx", "png", "zip"),
                 ("Apollo", "Website relaunch", "Migration", "Budget")),
    "Code": (("py", "js", "json", "md", "zip", "csv"), ("scripts", "notebooks", "data")),
    "Music": (("mp3", "mp3", "flac"), ("Playlists", "Live")),
    "Videos": (("mp4", "mp4", "mov"), ("Events", "Tutorials", "Drone")),
    "Backups": (("zip", "zip", "zip", "tar.gz", "7z", "kdbx", "kdbx", "iso"), ("laptop", "phone")),
}
_PROFILE_FOLDERS: dict[str, tuple[str, ...]] = {
    "idle": (),
    "light": ("Documents", "Photos", "Invoices"),
    "regular": ("Documents", "Photos", "Invoices", "Projects", "Code", "Music"),
    "heavy": tuple(_FOLDERS),
}
_EXTRA_FILES = {"idle": (0, 2), "light": (2, 12), "regular": (12, 50), "heavy": (50, 160)}
_WORDS = ("budget", "roadmap", "summary", "draft", "final", "review", "notes", "plan", "offer",
          "minutes", "report", "design", "proposal", "handbook", "agenda", "onboarding",
          "timeline", "strategy", "inventory", "checklist")

# files/quota as admins set it: absent (the default applies), 'default', a size, or 'none'.
_QUOTAS: tuple[tuple[str | None, int], ...] = (
    (None, 50), ("default", 8), ("1 GB", 12), ("500 MB", 4), ("2 GB", 5), ("10 GB", 8),
    ("20 GB", 3), ("50 GB", 3), ("none", 5), ("100 MB", 2),
)
_HEAVY_QUOTAS: tuple[tuple[str | None, int], ...] = (
    ("none", 30), ("50 GB", 25), ("100 GB", 15), (None, 15), ("20 GB", 15),
)
_LADDER = ("100 MB", "250 MB", "500 MB", "1 GB", "2 GB", "5 GB", "10 GB", "20 GB", "50 GB",
           "100 GB", "200 GB")

_TIMEZONES = ("Europe/Berlin", "Europe/Berlin", "Europe/Paris", "Europe/London", "UTC",
              "America/New_York", "Asia/Tokyo")
_LANGS = ("de", "de_DE", "fr", "en_GB", "es", "nl")

# Group layout: departments (one each), project groups (a few members, the usual group-share
# targets) and 'staff', which nearly everyone is in.
_DEPARTMENTS = (("engineering", "Engineering", 25), ("sales", "Sales", 12),
                ("marketing", "Marketing", 8), ("finance", "Finance", 6),
                ("support", "Support", 10), ("hr", "HR", 3), ("it", "IT", 4),
                ("management", "Management", 4))
_PROJECTS = ("apollo", "zeus", "relaunch", "migration", "audit-2024", "offsite", "hermes",
             "atlas", "orion", "phoenix")

# Token names are the User-Agent at creation; Nextcloud cuts them to 120 characters + '…'.
_BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/118.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/118.0.0.0 Safari/537.36 Edg/118.0.2088.46",
    "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:109.0) Gecko/20100101 Firefox/119.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/117.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/118.0.0.0 Mobile Safari/537.36",
)
_APPS: dict[str, tuple[str, ...]] = {
    "desktop": (
        "Mozilla/5.0 (Windows) mirall/3.9.4stable-Win64 (build 20230824) (Nextcloud, "
        "windows-10.0.19045 ClientArchitecture: x86_64 OsArchitecture: x86_64)",
        "Mozilla/5.0 (Windows) mirall/3.10.1stable-Win64 (build 20230914) (Nextcloud, "
        "windows-10.0.22621 ClientArchitecture: x86_64 OsArchitecture: x86_64)",
        "Mozilla/5.0 (Linux) mirall/3.10.1stable-Debian (build 20230914) (Nextcloud, "
        "debian-6.1.0-13-amd64 ClientArchitecture: x86_64 OsArchitecture: x86_64)",
        "Mozilla/5.0 (Macintosh) mirall/3.10.0stable-macOS (build 20230907) (Nextcloud, "
        "osx-22.6.0 ClientArchitecture: arm64 OsArchitecture: arm64)",
    ),
    "android": ("Mozilla/5.0 (Android) Nextcloud-android/3.26.0",
                "Mozilla/5.0 (Android) Nextcloud-android/3.25.1",
                "Mozilla/5.0 (Android) Nextcloud-Talk v17.1.2"),
    "ios": ("Mozilla/5.0 (iOS) Nextcloud-iOS/4.9.0", "Mozilla/5.0 (iOS) Nextcloud-iOS/4.8.6"),
    "davx5": ("DAVx5/4.3.6-ose (2023/09/01; dav4jvm; okhttp/4.11.0) Android/13",
              "DAVx5/4.3.4.1-gplay (2023/08/11; dav4jvm; okhttp/4.11.0) Android/12"),
    "rclone": ("rclone/v1.64.0", "rclone/v1.63.1"),
    # app passwords created by hand in Settings > Security carry the name the user typed
    "named": ("Thunderbird", "backup script", "Home Assistant", "Kodi"),
}
# Chance of an app password per client, by profile (idle, light, regular, heavy).
_APP_ODDS = {"desktop": (0.05, 0.2, 0.55, 0.8), "android": (0.1, 0.25, 0.35, 0.35),
             "ios": (0.05, 0.15, 0.2, 0.25), "davx5": (0.0, 0.03, 0.06, 0.08),
             "named": (0.0, 0.02, 0.05, 0.1), "rclone": (0.0, 0.0, 0.0, 0.05)}
# Plain-password WebDAV clients get short-lived session tokens without remember-me.
_WEBDAV = ("Microsoft-WebDAV-MiniRedir/10.0.19045",
           "WebDAVFS/3.0.0 (03008000) Darwin/22.6.0 (x86_64)", "gvfs/1.50.4")
_REMEMBER_LIFETIME = 15 * DAY  # remember_login_cookie_lifetime: older browser tokens are gone
_SESSION_LIFETIME = DAY  # session_lifetime: non-remembered session tokens

# Shares per 400 users by share type; the group shares add one type-2 row per member.
_SHARES = ((0, 28), (1, 4), (3, 22), (4, 6), (6, 4), (7, 3), (10, 3), (12, 2))
_RECEIVED_FEDERATED = 4
_REMOTES = ("https://cloud.partner-org.example/", "https://nc.university.example/",
            "https://files.agency.example/")
_LABELS = ("press kit", "for the customer", "public", "website assets", "team offsite")

_APP_VERSIONS = (
    ("activity", "2.16.0", "filesystem"), ("circles", "24.0.1", "filesystem,dav"),
    ("dav", "1.22.0", "filesystem"), ("deck", "1.7.3", "dav"),
    ("federatedfilesharing", "1.14.0", ""), ("federation", "1.14.0", "authentication"),
    ("files", "1.19.0", "filesystem"), ("files_sharing", "1.16.2", "filesystem"),
    ("files_trashbin", "1.14.0", "filesystem,dav"),
    ("files_versions", "1.17.0", "filesystem,dav"), ("notifications", "2.12.1", "logging"),
    ("provisioning_api", "1.14.0", "prevent_group_restriction"), ("serverinfo", "1.14.0", ""),
    ("settings", "1.6.0", ""), ("sharebymail", "1.14.0", "filesystem"),
    ("spreed", "14.0.10", "dav,prevent_group_restriction"), ("text", "3.5.1", "dav"),
    ("theming", "1.15.0", "logging"), ("user_status", "1.4.0", ""),
)


@dataclass
class _User:
    uid: str
    display: str | None
    email: str | None
    kind: str  # admin, staff, contractor or service
    created: int = 0
    first_login: int = 0
    last_login: int | None = None
    profile: str = "idle"
    disabled: bool = False
    apps: list[str] = field(default_factory=list)
    basic_auth_only: bool = False
    storage: int = 0
    used: int = 0
    quota: str | None = None
    fill: float = 0.0  # for the few near or over quota: target share of the quota in use
    # (fileid, name, is folder, mtime) of everything under files/, for picking share targets
    items: list[tuple[int, str, bool, int]] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def idle(self, now: int, longer: int, at_most: int | None) -> bool:
        """Whether the last login is more than `longer` and at most `at_most` seconds ago."""
        if self.last_login is None:
            return False
        return longer < now - self.last_login and (at_most is None or now - self.last_login
                                                     <= at_most)


class _Mimetypes:
    """oc_mimetypes rows in first-seen order, each full type preceded by its part."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.pairs: dict[str, tuple[int, int]] = {}

    def _id(self, name: str) -> int:
        if name not in self.ids:
            self.ids[name] = len(self.ids) + 1
        return self.ids[name]

    def get(self, mimetype: str) -> tuple[int, int]:
        pair = self.pairs.get(mimetype)
        if pair is None:
            part = self._id(mimetype.split("/")[0])
            pair = self.pairs[mimetype] = (self._id(mimetype), part)
        return pair


class _FileCache:
    """oc_filecache rows; fileids follow insertion, so every parent precedes its children."""

    def __init__(self, rng: random.Random, mimetypes: _Mimetypes) -> None:
        self.rng = rng
        self.rows: list[list[Any]] = []
        self.mimetypes = mimetypes
        self.dir_mime = mimetypes.get(FOLDER_MIME)

    def add(self, storage: int, path: str, parent: int, mimetype: str | None, size: int,
            mtime: int, permissions: int) -> int:
        fileid = len(self.rows) + 1
        if mimetype is None:  # a folder: its size is the sum of its children, set in propagate()
            mime, part = self.dir_mime
            etag = f"{self.rng.getrandbits(52):013x}"  # uniqid(), as Nextcloud does for folders
        else:
            mime, part = self.mimetypes.get(mimetype)
            etag = f"{self.rng.getrandbits(128):032x}"
        name = path.rpartition("/")[2]
        self.rows.append([fileid, storage, path, md5(path), parent,
                          name, mime, part, size, mtime, mtime, 0, 0, etag, permissions, ""])
        return fileid

    def propagate(self) -> None:
        """Give every folder the total size and newest mtime below it, like Nextcloud's
        propagator. Walking backwards finishes each folder before its parent is reached."""
        rows = self.rows
        for row in reversed(rows):
            parent = row[4]
            if parent > 0:
                up = rows[parent - 1]
                up[8] += row[8]
                if row[9] > up[9]:
                    up[9] = row[9]


class _Tree:
    """One storage's paths, creating missing parent folders on the way."""

    def __init__(self, cache: _FileCache, storage: int, mtime: int) -> None:
        self.cache = cache
        self.storage = storage
        self.ids = {"": cache.add(storage, "", -1, None, 0, mtime, PERM_ROOT)}

    @property
    def root(self) -> int:
        return self.ids[""]

    def folder(self, path: str, mtime: int) -> int:
        fileid = self.ids.get(path)
        if fileid is None:
            parent = self.folder(path.rpartition("/")[0], mtime)
            fileid = self.ids[path] = self.cache.add(self.storage, path, parent, None, 0, mtime,
                                                     PERM_DIR)
        return fileid

    def file(self, path: str, size: int, mimetype: str, mtime: int) -> tuple[int, str]:
        """Add a file; a taken name gets ' (2)', ' (3)'… as Nextcloud's clients do."""
        if path in self.ids:
            stem, dot, ext = path.rpartition(".")
            if not dot or "/" in ext:
                stem, ext = path, ""
            n = 2
            while (candidate := f"{stem} ({n}){dot}{ext}") in self.ids:
                n += 1
            path = candidate
        parent = self.folder(path.rpartition("/")[0], mtime)
        fileid = self.ids[path] = self.cache.add(self.storage, path, parent, mimetype, size,
                                                 mtime, PERM_FILE)
        return fileid, path


def _quota_bytes(quota: str) -> int:
    number, unit = quota.split()
    return int(float(number) * 1024 ** {"KB": 1, "MB": 2, "GB": 3, "TB": 4}[unit])


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")


def _ua(name: str) -> str:
    return name if len(name) <= 128 else name[:120] + "…"


class _NameParts(dict[str, str]):
    """Fields of a _NAMES template, each made only when the template uses it."""

    def __init__(self, builder: _Builder, kind: str, mtime: int) -> None:
        super().__init__()
        self.builder, self.kind, self.mtime = builder, kind, mtime

    def __missing__(self, key: str) -> str:
        rng = self.builder.rng
        if key == "ext":
            return self.kind
        if key in ("word", "Word"):
            word = rng.choice(_WORDS)
            return word.title() if key == "Word" else word
        if key == "track":
            return f"{rng.randint(1, 14):02d}"
        if key[0] == "n":  # n4: a random 4-digit number
            digits = int(key[1:])
            return str(rng.randint(10 ** (digits - 1), 10**digits - 1))
        date, compact, year, month = self.builder.day(self.mtime)
        seconds = self.mtime % DAY
        clock = f"{seconds // 3600:02d}.{seconds // 60 % 60:02d}.{seconds % 60:02d}"
        return {"date": date, "year": year, "month": month, "clock": clock,
                "compact": f"{compact}_{clock.replace('.', '')}"}[key]


# What a progress display is told: the step under way, and the share of the whole build done.
Progress = Callable[[str, float], None]
# Each step's share of the build's time (measured at 20,000 users).
_STEPS = {"accounts": 0.02, "files": 0.42, "groups and shares": 0.01, "tokens": 0.03,
          "preferences": 0.01, "writing the database": 0.51}


class _Steps:
    """Tells a Progress how far the build is: the steps done, and a fraction of the current."""

    def __init__(self, report: Progress | None) -> None:
        self.report = report
        self.step = ""
        self.before = 0.0

    def start(self, step: str) -> None:
        self.before += _STEPS.get(self.step, 0.0)
        self.step = step
        self.part(0.0)

    def part(self, fraction: float) -> None:
        if self.report is not None:
            self.report(self.step, min(1.0, self.before + _STEPS[self.step] * fraction))


class _Builder:
    def __init__(self, rng: random.Random, now: int, users: int,
                 steps: _Steps | None = None) -> None:
        self.steps = steps or _Steps(None)
        self.rng = rng
        self.now = now
        self.count = users
        self.mimetypes = _Mimetypes()
        self.cache = _FileCache(rng, self.mimetypes)
        self.instance_id = "oc" + self._random(_ALNUM.lower()[:36], 10)
        self.installed = now - 5 * YEAR - rng.randint(0, 200 * DAY)
        self.days: dict[int, tuple[str, str, str, str]] = {}
        self.users: list[_User] = []
        self.by_uid: dict[str, _User] = {}
        self.prefs: list[tuple[str, str, str, str]] = []
        self.storages: list[tuple[int, str]] = []
        self.mounts: list[tuple[int, int, int, str, str, None, str]] = []
        self.mounted: set[tuple[str, int]] = set()
        self.groups: list[tuple[str, str]] = []
        self.members: dict[str, list[str]] = {}
        self.shares: list[dict[str, Any]] = []
        self.external: list[tuple[object, ...]] = []
        self.tokens: list[tuple[object, ...]] = []

    # -- small helpers -------------------------------------------------------------------------

    def _random(self, alphabet: str, length: int) -> str:
        return "".join(self.rng.choices(alphabet, k=length))

    def _hash(self) -> str:
        """An argon2id hash in Nextcloud's '3|' format (not of any real password)."""
        def b64(n: int) -> str:
            return base64.b64encode(self.rng.randbytes(n)).decode().rstrip("=")
        return f"3|$argon2id$v=19$m=65536,t=4,p=1${b64(16)}${b64(32)}"

    def _when(self, start: int, end: int, skew: float = 0.5) -> int:
        """A moment between start and end, by default leaning towards end (recent activity)."""
        if end <= start:
            return end
        return start + int((end - start) * self.rng.random() ** skew)

    def _size(self, kind: str) -> int:
        _, median, sigma = _KINDS[kind]
        return min(_MAX_FILE, max(0, int(median * math.exp(sigma * self.rng.gauss(0.0, 1.0)))))

    def _name(self, kind: str, mtime: int) -> str:
        """A file name the way cameras, scanners and people make them up."""
        template = self.rng.choice(_NAMES.get(kind, ("{word}.{ext}",)))
        return template.format_map(_NameParts(self, kind, mtime))

    def day(self, mtime: int) -> tuple[str, str, str, str]:
        """(2024-03-01, 20240301, 2024, March) for the UTC day of mtime, cached: formatting
        dates is the slowest part of naming hundreds of thousands of files."""
        number = mtime // DAY
        parts = self.days.get(number)
        if parts is None:
            date = datetime.fromtimestamp(number * DAY, UTC)
            parts = self.days[number] = (f"{date:%Y-%m-%d}", f"{date:%Y%m%d}", str(date.year),
                                         f"{date:%B}")
        return parts

    # -- users ---------------------------------------------------------------------------------

    def make_users(self) -> None:
        rng = self.rng
        taken: set[str] = set()

        def add(user: _User) -> None:
            taken.add(user.uid.lower())
            self.users.append(user)
            self.by_uid[user.uid] = user

        add(_User("admin", None, None, "admin"))  # the installer's account: no name, no mail
        if self.count > 1:
            add(_User("svc-backup", "Backup service", None, "service"))
        while len(self.users) < self.count:
            first = rng.choice(FIRST_NAMES)
            last, last_ascii = rng.choice(LAST_NAMES)
            contractor = rng.random() < 0.04
            style = rng.random()
            if contractor:
                base = f"ext.{first.lower()}.{last_ascii}"
            elif style < 0.75:
                base = f"{first.lower()}.{last_ascii}"
            elif style < 0.95:
                base = f"{first[0].lower()}{last_ascii}"
            else:  # accounts migrated from elsewhere keep their capitals; uid_lower differs
                base = f"{first[0]}{last_ascii.title()}"
            uid, n = base, 2
            while uid.lower() in taken:
                uid, n = f"{base}{n}", n + 1
            domain = "partner-agency.example" if contractor else "example.com"
            email = None if rng.random() < 0.08 else f"{uid.lower().removeprefix('ext.')}@{domain}"
            add(_User(uid, f"{first} {last}", email,
                      "contractor" if contractor else "staff"))

    def assign_activity(self) -> None:
        rng, now = self.rng, self.now
        for user in self.users:
            if user.kind == "admin":  # looking at the dashboard right now
                user.created = self.installed
                user.last_login = now - rng.randint(5, 5 * MINUTE - 10)
                user.first_login = self.installed + 60
                user.profile = "light"
                continue
            if user.kind == "service":  # the nightly backup job
                last = now - rng.randint(HOUR, DAY)
            else:
                last = last_activity(rng, now)
            if not last:  # never logged in: an account waiting for its owner
                user.created = now - rng.randint(DAY, now - self.installed - DAY)
                continue
            user.last_login = last
            user.created = self.installed + int((last - 60 - self.installed) * rng.random() ** 2)
            user.first_login = min(last, user.created + rng.randint(60, 5 * DAY))
            idle = now - last
            tier = 0 if idle <= 7 * DAY else 1 if idle <= 90 * DAY else 2
            user.profile = rng.choices(_PROFILES, _PROFILE_WEIGHTS[tier])[0]
            if user.kind == "service":
                user.profile = "heavy"
            elif user.kind == "contractor" and user.profile == "heavy":
                user.profile = "regular"
        self._disable()
        self._devices()
        self._tight_quotas()

    def _disable(self) -> None:
        """About 4 % disabled: mostly people who left long ago, one recently, one never seen."""
        rng = self.rng
        people = [u for u in self.users if u.kind in ("staff", "contractor")]
        if not people:
            return
        wanted = max(1, round(0.04 * len(self.users)))
        never = [u for u in people if u.last_login is None]
        recent = [u for u in people if u.idle(self.now, 5 * MINUTE, 7 * DAY)]
        old = [u for u in people if u.idle(self.now, 30 * DAY, None)]
        picked: list[_User] = []
        for pool, n in ((recent, 1), (never, 1), (old, wanted - 2)):
            picked += rng.sample(pool, min(len(pool), max(0, n)))
        for user in picked or rng.sample(people, 1):
            user.disabled = True

    def _tight_quotas(self) -> None:
        """About 3 % near their quota (90 %…99 %) and 1 % over it (102 %…115 %, after an admin
        lowered it); chosen among ordinary users whose files fit a modest quota."""
        rng = self.rng
        pool = [u for u in self.users if u.last_login is not None
                and u.kind in ("staff", "contractor") and u.profile in ("light", "regular")]
        near = max(1, round(0.03 * len(self.users)))
        over = max(1, round(0.01 * len(self.users)))
        for i, user in enumerate(rng.sample(pool, min(len(pool), near + over))):
            user.fill = rng.uniform(1.02, 1.15) if i < over else rng.uniform(0.90, 0.99)

    def _devices(self) -> None:
        rng = self.rng
        for user in self.users:
            if user.last_login is None:
                continue
            if user.kind == "service":
                user.apps = ["rclone"]
                continue
            if user.kind != "admin" and rng.random() < 0.06:
                user.basic_auth_only = True  # WebDAV with the plain password: no token at all
                continue
            level = _PROFILES.index(user.profile)
            user.apps = [app for app, odds in _APP_ODDS.items() if rng.random() < odds[level]]

    # -- storages and files --------------------------------------------------------------------

    def build_files(self) -> None:
        logged_in = [u for u in self.users[1:] if u.last_login is not None]
        logged_in.sort(key=lambda u: (u.first_login, u.uid))  # storages appear at first login
        admin = self.users[0]
        self._home(admin, 1)
        self.storages.append((2, f"local::{DATA_DIRECTORY}"))
        local = _Tree(self.cache, 2, self.installed)
        local.folder(f"appdata_{self.instance_id}", self.installed)
        for number, user in enumerate(logged_in, start=3):
            self._home(user, number)
            if number % 1000 == 0:
                self.steps.part(number / (len(logged_in) + 3))
        self._appdata(local)
        self.cache.propagate()

    def _home(self, user: _User, storage: int) -> None:
        rng = self.rng
        self.storages.append((storage, f"home::{user.uid}"))
        start, end = user.first_login, user.last_login or user.first_login
        tree = _Tree(self.cache, storage, start)
        user.storage = storage
        self.mounts.append((len(self.mounts) + 1, storage, tree.root, user.uid, f"/{user.uid}/",
                            None, HOME_MOUNT))
        self.mounted.add((user.uid, tree.root))
        files: list[tuple[int, str, str, int, int]] = []  # fileid, path, kind, size, mtime

        def put(path: str, size: int, kind: str, mime: str, mtime: int, own: bool = True) -> None:
            fileid, path = tree.file(path, size, mime, mtime)
            user.used += size
            files.append((fileid, path, kind, size, mtime))
            if own:  # people share their own files, rarely the skeleton's
                user.items.append((fileid, path.rpartition("/")[2], False, mtime))

        tree.folder("files", start)
        trimmed = user.kind == "service" or rng.random() < 0.1  # deleted the big skeleton files
        deleted: list[tuple[str, int, str]] = []
        for rel, size, mime in _SKELETON:
            if trimmed and rel in _SKELETON_BIG:
                deleted.append((rel, size, mime))
                continue
            put(f"files/{rel}", size, rel.rpartition(".")[2], mime, start, own=False)
        tree.folder("cache", start)
        for top in ("Documents", "Photos"):
            user.items.append((tree.ids[f"files/{top}"], top, True, start))

        # the user's own files, in folders that fit the profile
        folders = ["files"]
        if user.profile != "idle":
            choices = list(_PROFILE_FOLDERS[user.profile])
            k = {"light": (1, 2), "regular": (2, 4), "heavy": (4, 8)}[user.profile]
            most = {"light": 1, "regular": 2, "heavy": 3}[user.profile]  # subfolders per folder
            tops = rng.sample(choices, min(len(choices), rng.randint(*k)))
            if user.profile == "heavy" and not {"Videos", "Backups"} & set(tops):
                tops.append(rng.choice(("Videos", "Backups")))
            for top in tops:
                folders.append(f"files/{top}")
                subs = _FOLDERS[top][1]
                for sub in rng.sample(subs, rng.randint(0, min(len(subs), most))):
                    folders.append(f"files/{top}/{sub}")
        for path in folders[1:]:
            mtime = self._when(start, end)
            fileid = tree.folder(path, mtime)
            user.items.append((fileid, path.rpartition("/")[2], True, mtime))
        for _ in range(rng.randint(*_EXTRA_FILES[user.profile])):
            folder = rng.choice(folders)
            top = folder.split("/")[1] if folder != "files" else None
            kind = rng.choice(_FOLDERS[top][0] if top else ("pdf", "jpg", "docx", "txt"))
            mtime = self._when(start, end)
            put(f"{folder}/{self._name(kind, mtime)}", self._size(kind), kind, _KINDS[kind][0],
                mtime)

        self._quota(user, lambda size, mtime: put(
            f"files/Archive/{self._name('zip', mtime)}", size, "zip", _KINDS["zip"][0], mtime))
        self._versions(user, tree, files)
        self._trash(user, tree, deleted)
        if user.apps and any(a in ("desktop", "android", "ios") for a in user.apps):
            tree.folder("uploads", end)  # chunked-upload area the sync clients use
        if user.created < self.now - 4 * YEAR and rng.random() < 0.3:
            # previews from the ownCloud era stay in the home folder and are still scanned
            images = [f for f in files if f[2] in ("jpg", "png")]
            for fileid, _, _, _, mtime in images[:rng.randint(1, 4)]:
                tree.file(f"thumbnails/{fileid}/{rng.choice((32, 64, 1024))}-"
                          f"{rng.choice((32, 64, 768))}.png", rng.randint(2_000, 90_000),
                          "image/png", mtime)

    def _quota(self, user: _User, fill: Callable[[int, int], None]) -> None:
        """Pick files/quota; a few users end up near or over it, the rest comfortably below."""
        rng = self.rng
        table = _HEAVY_QUOTAS if user.profile == "heavy" else _QUOTAS
        quota = rng.choices([q for q, _ in table], [w for _, w in table])[0]
        if user.kind == "admin":
            quota = None
        tight = next((q for q in _LADDER if _quota_bytes(q) * 0.8 >= user.used), None)
        if user.fill and tight:  # a quota just above what they have, then an archive fills it
            quota = tight
            extra = int(_quota_bytes(quota) * user.fill) - user.used
            fill(extra, self._when(user.first_login, user.last_login or user.first_login))
        else:
            limit = None if quota == "none" else _quota_bytes(
                DEFAULT_QUOTA if quota in (None, "default") else quota)
            if limit is not None and user.used > 0.8 * limit:
                quota = next((q for q in _LADDER if _quota_bytes(q) * 0.6 >= user.used), "none")
        user.quota = quota

    def _versions(self, user: _User, tree: _Tree,
                  files: list[tuple[int, str, str, int, int]]) -> None:
        rng = self.rng
        odds = {"idle": 0.0, "light": 0.15, "regular": 0.5, "heavy": 0.8}[user.profile]
        docs = [f for f in files if f[2] in _DOC_KINDS and f[4] > user.first_login]
        if not docs or rng.random() >= odds:
            return
        for _, path, kind, size, mtime in rng.sample(docs, min(len(docs), rng.randint(1, 8))):
            stamp = mtime
            for _ in range(rng.randint(1, 4)):  # each older than the one after it
                stamp = self._when(user.first_login, stamp - 1, 0.3)
                tree.file(f"files_versions/{path.removeprefix('files/')}.v{stamp}",
                          int(size * rng.uniform(0.6, 1.05)), _KINDS[kind][0], stamp)

    def _trash(self, user: _User, tree: _Tree, deleted: list[tuple[str, int, str]]) -> None:
        rng = self.rng
        odds = {"idle": 0.05, "light": 0.2, "regular": 0.45, "heavy": 0.6}[user.profile]
        if not deleted and rng.random() >= odds:
            return
        start, end = user.first_login, user.last_login or user.first_login
        for name in ("files", "versions", "keys"):
            tree.folder(f"files_trashbin/{name}", start)
        for rel, size, mime in deleted:
            when = self._when(start, end)
            tree.file(f"files_trashbin/files/{rel.rpartition('/')[2]}.d{when}", size, mime, when)
        for _ in range(rng.randint(0 if deleted else 1, 8)):
            kind = rng.choice(("pdf", "jpg", "docx", "txt", "png", "zip", "xlsx"))
            when = self._when(start, end)
            tree.file(f"files_trashbin/files/{self._name(kind, when)}.d{when}", self._size(kind),
                      _KINDS[kind][0], when)
        if user.profile in ("regular", "heavy") and rng.random() < 0.3:
            when = self._when(start, end)
            folder = f"files_trashbin/files/Old {rng.choice(_WORDS)}.d{when}"
            for _ in range(rng.randint(1, 5)):
                kind = rng.choice(("pdf", "odt", "jpg"))
                tree.file(f"{folder}/{self._name(kind, when)}", self._size(kind), _KINDS[kind][0],
                          when)

    def _appdata(self, local: _Tree) -> None:
        """appdata_<instanceid> on the local storage: avatars, previews and asset caches."""
        rng = self.rng
        app = f"appdata_{self.instance_id}"
        for path, size, mime in (
                ("js/core/merged-template-prepend.js", 11_942, "application/javascript"),
                ("js/core/merged-template-prepend.js.deps", 346, "application/octet-stream"),
                ("js/core/merged-template-prepend.js.gzip", 3_054, "application/x-gzip"),
                ("css/core/server.css", 98_714, "text/css"),
                ("css/core/server.css.deps", 1_203, "application/octet-stream"),
                ("css/core/server.css.gzip", 17_650, "application/x-gzip"),
                ("appstore/apps.json", 3_118_542, "application/json"),
                ("appstore/categories.json", 24_816, "application/json"),
                ("theming/0/icon-core-filetypes_folder.svg", 254, "image/svg+xml")):
            local.file(f"{app}/{path}", size, mime, self.installed + rng.randint(0, YEAR))
        for user in self.users:
            if user.last_login is None and rng.random() >= 0.3:
                continue  # avatars are generated on first display
            when = user.first_login or user.created
            folder = f"{app}/avatar/{user.uid}"
            if rng.random() < 0.2:  # uploaded a picture
                local.file(f"{folder}/avatar.jpg", rng.randint(30_000, 250_000), "image/jpeg",
                           when)
                self.prefs.append((user.uid, "avatar", "generated", "false"))
            else:
                local.file(f"{folder}/avatar.png", rng.randint(5_000, 30_000), "image/png", when)
                local.file(f"{folder}/generated", 0, "application/octet-stream", when)
                self.prefs.append((user.uid, "avatar", "generated", "true"))
            self.prefs.append((user.uid, "avatar", "version", str(rng.randint(0, 3))))
            if rng.random() < 0.5:
                local.file(f"{folder}/avatar.64.png", rng.randint(1_500, 6_000), "image/png",
                           when)
        # Previews of recent pictures, in NC 19+'s md5-hashed folder layout.
        jpeg = self.mimetypes.get("image/jpeg")[0]
        images = [row for row in self.cache.rows if row[6] == jpeg and row[1] != 2]
        for row in rng.sample(images, min(len(images), max(1, self.count // 8))):
            fileid, mtime = str(row[0]), row[9]
            hashed = "/".join(md5(fileid)[:7])
            for name, size in (("4096-3072-max.jpg", row[8] // 3),
                               ("256-256-crop.jpg", rng.randint(8_000, 20_000)),
                               ("64-64-crop.jpg", rng.randint(1_500, 4_000))):
                local.file(f"{app}/preview/{hashed}/{fileid}/{name}", size, "image/jpeg", mtime)

    # -- groups --------------------------------------------------------------------------------

    def build_groups(self) -> None:
        rng = self.rng

        def group(gid: str, display: str, uids: list[str]) -> None:
            self.groups.append((gid, display))
            self.members[gid] = uids
            for uid in uids:
                self.by_uid[uid].groups.append(gid)

        people = [u for u in self.users if u.kind in ("staff", "admin")]
        staff = [u for u in self.users if u.kind == "staff"]
        it_people = rng.sample(staff, min(len(staff), max(1, len(self.users) // 150)))
        group("admin", "admin", ["admin"] + [u.uid for u in it_people])
        group("staff", "staff", [u.uid for u in people if rng.random() < 0.9 or u.kind == "admin"])
        departments = rng.choices(range(len(_DEPARTMENTS) + 1),
                                  [w for *_, w in _DEPARTMENTS] + [12], k=len(staff))
        for index, (gid, display, _) in enumerate(_DEPARTMENTS):
            uids = [u.uid for u, d in zip(staff, departments, strict=True) if d == index]
            if gid == "it":
                uids = [u.uid for u in it_people if u.uid not in uids] + uids
            if uids:
                group(gid, display, uids)
        contractors = [u.uid for u in self.users if u.kind == "contractor"]
        if contractors:
            group("contractors", "External contractors", contractors)
        for name in _PROJECTS[:max(2, len(self.users) // 50)]:
            pool = people + [u for u in self.users if u.kind == "contractor"]
            if len(pool) >= 2:
                picked = rng.sample(pool, min(len(pool), rng.randint(3, 12)))
                group(f"project-{name}", f"Project {name.title()}", [u.uid for u in picked])

    # -- shares --------------------------------------------------------------------------------

    def build_shares(self) -> None:
        rng = self.rng
        owners = [u for u in self.users if u.storage and u.items]
        if len(owners) < 1 or len(self.users) < 2:
            return
        level = {"idle": 0.3, "light": 1.5, "regular": 4.0, "heavy": 6.0}
        weights = list(itertools.accumulate(
            level[u.profile] * (2 if u.idle(self.now, 0, 30 * DAY) else 1) for u in owners))
        scale = len(self.users) / DEMO_USERS
        shared: set[tuple[int, str]] = set()
        # group shares go to teams and projects; each adds a row per member
        small_groups = [g for g, _ in self.groups if g not in ("staff", "admin")
                        and len(self.members[g]) <= 15]
        planned = [t for t, base in _SHARES for _ in range(max(1, round(base * scale)))]
        records: list[tuple[int, dict[str, Any], list[dict[str, Any]]]] = []
        for share_type in planned:
            for _attempt in range(20):
                owner = rng.choices(owners, cum_weights=weights)[0]
                if share_type == 1:
                    mine = [g for g in owner.groups if g in small_groups]
                    if not mine:
                        continue
                    target = rng.choice(mine)
                elif share_type == 0:
                    target = rng.choice(self.users).uid
                    if target == owner.uid:
                        continue
                else:
                    target = ""
                fileid, name, is_dir, mtime = rng.choice(owner.items)
                if share_type in (0, 1) and (fileid, target) in shared:
                    continue
                shared.add((fileid, target))
                stime = self._when(max(mtime, owner.first_login), owner.last_login or mtime)
                row = self._share(share_type, owner, target, fileid, name, is_dir, stime)
                children = []
                if share_type == 1:  # Nextcloud adds one USERGROUP row per member, owner too
                    for uid in self.members[target]:
                        child = dict(row, share_type=2, share_with=uid, accepted=1)
                        children.append(child)
                records.append((stime, row, children))
                break
        records.sort(key=lambda r: r[0])  # ids follow creation time
        left = next((r for r in records if len(r[2]) >= 3), None)
        if left and len(self.users) >= 50:
            rng.choice([c for c in left[2] if c["share_with"] != left[1]["uid_owner"]])[
                "permissions"] = 0  # a recipient deleted the group share from their files
        next_id = 1
        for _, row, children in records:
            if rng.random() < 0.05:
                next_id += 1  # a deleted share leaves a gap
            row["id"] = next_id
            self.shares.append(row)
            next_id += 1
            for child in children:
                child["id"], child["parent"] = next_id, row["id"]
                self.shares.append(child)
                next_id += 1
        for row in self.shares:
            self._share_mount(row)
        self._received()

    def _share(self, share_type: int, owner: _User, target: str, fileid: int, name: str,
               is_dir: bool, stime: int) -> dict[str, Any]:
        rng = self.rng
        row: dict[str, Any] = {
            "share_type": share_type, "share_with": target or None, "password": None,
            "uid_owner": owner.uid, "uid_initiator": owner.uid, "parent": None,
            "item_type": "folder" if is_dir else "file", "item_source": str(fileid),
            "item_target": None, "file_source": fileid, "file_target": f"/{name}",
            "permissions": rng.choice((31, 31, 15, 1) if is_dir else (19, 19, 1, 3)),
            "stime": stime, "accepted": 0, "expiration": None, "token": None, "mail_send": 0,
            "share_name": None, "password_by_talk": 0, "note": None, "hide_download": 0,
            "label": None, "attributes": None, "password_expiration_time": None,
        }
        if share_type == 0:
            row["accepted"] = 1  # NC 24 accepts user shares automatically
        elif share_type == 3:
            row.update(token=self._random(_HUMAN, 15), label=rng.choice(("",) * 4 + _LABELS),
                       permissions=rng.choice((17, 17, 31, 4)) if is_dir else 17,
                       hide_download=int(rng.random() < 0.1))
            if rng.random() < 0.35:
                row["password"] = self._hash()
            if rng.random() < 0.3:  # some of these have already expired: still counted
                row["expiration"] = _day(stime + rng.randint(7, 90) * DAY) + " 00:00:00"
        elif share_type == 4:
            first = rng.choice(FIRST_NAMES).lower()
            row.update(share_with=f"{first}@{rng.choice(('client.example', 'gmail.example'))}",
                       token=self._random(_HUMAN, 15), permissions=17, file_target="",
                       note="", label="", password=self._hash() if rng.random() < 0.3 else None)
        elif share_type == 6:
            remote = rng.choice(_REMOTES).removeprefix("https://").rstrip("/")
            row.update(share_with=f"{rng.choice(FIRST_NAMES).lower()}@{remote}", file_target="",
                       token=self._random(_HUMAN, 15), permissions=31 if is_dir else 1)
        elif share_type == 7:
            row["share_with"] = self._random(_ALNUM, 31)  # the team's (circle's) singleId
        elif share_type == 10:
            row.update(share_with=self._random("abcdefghijklmnopqrstuvwxyz0123456789", 8),
                       file_target=f"/{{TALK_PLACEHOLDER}}/{name}",
                       token=self._random(_HUMAN, 15), permissions=31 if is_dir else 19)
        elif share_type == 12:
            row.update(share_with=str(rng.randint(1, 900)),  # the Deck card id
                       file_target=f"/{{DECK_PLACEHOLDER}}/{name}")
        return row

    def _share_mount(self, row: dict[str, Any]) -> None:
        """Recipients who have logged in see the share as a mount in their files."""
        if row["share_type"] not in (0, 2) or row["permissions"] == 0:
            return
        recipient = self.by_uid.get(str(row["share_with"]))
        owner = self.by_uid[str(row["uid_owner"])]
        root = row["file_source"]
        if recipient is None or not recipient.storage or recipient is owner:
            return
        if (recipient.uid, root) in self.mounted:
            return
        self.mounted.add((recipient.uid, root))
        self.mounts.append((len(self.mounts) + 1, owner.storage, root, recipient.uid,
                            f"/{recipient.uid}/files{row['file_target']}/", None, SHARE_MOUNT))

    def _received(self) -> None:
        """oc_share_external: federated shares other servers sent to local users."""
        rng = self.rng
        users = [u for u in self.users if u.storage and u.kind != "service"]
        seen: set[tuple[str, str]] = set()
        for _ in range(max(1, round(_RECEIVED_FEDERATED * len(self.users) / DEMO_USERS))):
            if not users:
                return
            user = rng.choice(users)
            kind = rng.choice(("pdf", "docx", "xlsx", "zip", "jpg"))
            name = "/" + self._name(kind, self._when(user.first_login, self.now))
            accepted = int(rng.random() < 0.7)
            mountpoint = name if accepted else f"{{{{TemporaryMountPointName#{name}}}}}"
            digest = md5(mountpoint)
            if (user.uid, digest) in seen:
                continue
            seen.add((user.uid, digest))
            self.external.append((len(self.external) + 1, -1, 0, rng.choice(_REMOTES),
                                  str(rng.randint(100, 60_000)), self._random(_HUMAN, 15), None,
                                  name, rng.choice(FIRST_NAMES).lower(), user.uid, mountpoint,
                                  digest, accepted))

    # -- sessions ------------------------------------------------------------------------------

    def build_tokens(self) -> None:
        rng, now = self.rng, self.now
        # (last_activity, uid, login_name, name, type, remember)
        rows: list[tuple[int, str, str, str, int, int]] = []
        for user in self.users:
            last = user.last_login
            if last is None or user.basic_auth_only:
                continue
            first = user.first_login
            login = user.email if user.email and rng.random() < 0.1 else user.uid
            mine: list[tuple[int, str, str, str, int, int]] = []
            # (an hour's margin keeps every token inside its lifetime even after the
            # last-login adjustment below)
            if now - last < _REMEMBER_LIFETIME - HOUR and user.kind != "service":
                for _ in range(rng.choices((1, 2, 3), (6, 3, 1))[0]):
                    oldest = max(first, now - _REMEMBER_LIFETIME + HOUR)
                    mine.append((self._when(oldest, last, 1.0), user.uid, login,
                                 rng.choice(_BROWSERS), 0, 1))
            if now - last < _SESSION_LIFETIME - HOUR and rng.random() < 0.08:
                oldest = max(first, now - _SESSION_LIFETIME + HOUR)
                mine.append((self._when(oldest, last, 1.0), user.uid, login, rng.choice(_WEBDAV),
                             0, 0))
            for app in user.apps:
                spread = {"desktop": 3 * DAY, "rclone": HOUR}.get(app, 20 * DAY)
                if rng.random() < 0.15:  # an old device nobody revoked
                    activity = self._when(first, last, 1.0)
                else:
                    activity = max(first, last - int(rng.expovariate(1 / spread)))
                mine.append((activity, user.uid, user.uid, rng.choice(_APPS[app]), 1, 0))
            if mine and rng.random() < 0.9:
                # the client behind the last login; lastLogin moves on each login, while
                # last_activity is only written once a minute
                i = rng.randrange(len(mine))
                mine[i] = (max(first, last - rng.randint(0, 59)), *mine[i][1:])
            rows += mine
        rows.sort()  # ids in creation order, which roughly follows activity
        androids = [i for i, r in enumerate(rows) if "Nextcloud-android" in r[3]]
        wipe = rng.choice(androids) if androids and len(self.users) >= 50 else -1
        for number, (activity, uid, login, name, kind, remember) in enumerate(rows, start=1):
            if number - 1 == wipe:
                kind = 2  # a lost phone waiting for its remote wipe
            public = base64.b64encode(self.rng.randbytes(294)).decode()
            pem = "\n".join(public[i:i + 64] for i in range(0, len(public), 64))
            self.tokens.append((
                number, uid, login,
                base64.b64encode(self.rng.randbytes(256)).decode(),  # encrypted login password
                _ua(name), hashlib.sha512(self.rng.randbytes(32)).hexdigest(), kind, remember,
                activity, activity, None, None,
                # the real private key is ~3.6 kB of hex ciphertext; nothing reads it
                self.rng.randbytes(128).hex(),
                f"-----BEGIN PUBLIC KEY-----\n{pem}\n-----END PUBLIC KEY-----\n", 2, 0))
            if kind == 0 and remember:  # the remember-me cookie's server side
                self.prefs.append((uid, "login_token", self._random(_ALNUM + "+/", 32),
                                   str(max(self.by_uid[uid].first_login,
                                           activity - rng.randint(0, 5 * DAY)))))

    # -- preferences and accounts --------------------------------------------------------------

    def build_preferences(self) -> None:
        rng = self.rng
        for user in self.users:
            add = self.prefs.append
            if user.last_login is not None:
                add((user.uid, "login", "lastLogin", str(user.last_login)))
                add((user.uid, "core", "templateDirectory", ""))
                add((user.uid, "activity", "configured", "yes"))
                if user.kind != "service" and rng.random() < 0.7:
                    add((user.uid, "core", "timezone", rng.choice(_TIMEZONES)))
                if rng.random() < 0.2:
                    add((user.uid, "core", "lang", rng.choice(_LANGS)))
                if rng.random() < 0.03:
                    add((user.uid, "password_policy", "failedLoginAttempts",
                         str(rng.randint(1, 4))))
            elif user.kind != "admin" and rng.random() < 0.35:
                # admins often set a quota when they create the account
                user.quota = rng.choices([q for q, _ in _QUOTAS], [w for _, w in _QUOTAS])[0]
            if user.disabled:
                add((user.uid, "core", "enabled", "false"))
            if user.quota is not None:
                add((user.uid, "files", "quota", user.quota))
            if user.email:
                add((user.uid, "settings", "email", user.email))

    def _account(self, user: _User) -> str:
        def prop(value: object, scope: str = "v2-local", verified: str = "0") -> dict[str, Any]:
            return {"value": value, "scope": scope, "verified": verified}

        data = {
            "displayname": prop(user.display or user.uid, "v2-federated"),
            "address": prop(""), "website": prop(""),
            "email": prop(user.email, "v2-federated", "1" if user.email else "0"),
            "avatar": prop("", "v2-federated"), "phone": prop(""), "twitter": prop(""),
            "organisation": prop(""), "role": prop(""), "headline": prop(""),
            "biography": prop(""), "profile_enabled": prop("1"),
        }
        return json.dumps(data, separators=(",", ":"))  # escaped like PHP's json_encode

    def appconfig(self) -> list[tuple[str, str, str]]:
        now = self.now
        rows = [
            ("core", "installedat", f"{self.installed}.{self.rng.randint(1000, 9999)}"),
            ("core", "lastupdatedat", f"{now - 40 * DAY}.{self.rng.randint(1000, 9999)}"),
            ("core", "lastcron", str(now - self.rng.randint(0, 290))),
            ("core", "backgroundjobs_mode", "cron"),
            ("core", "public_files", "files_sharing/public.php"),
            ("core", "public_webdav", "dav/appinfo/v1/publicwebdav.php"),
            ("core", "shareapi_allow_links", "yes"),
            ("core", "vendor", "nextcloud"),
            ("files", "default_quota", DEFAULT_QUOTA),
            ("sharebymail", "sendpasswordmail", "yes"),
            # what serverinfo's UpdateStorageStats job last stored (it runs every 3 h)
            ("serverinfo", "cached_count_filecache", str(len(self.cache.rows))),
            ("serverinfo", "cached_count_storages", str(len(self.storages))),
        ]
        for app, version, types in _APP_VERSIONS:
            rows += [(app, "enabled", "yes"), (app, "installed_version", version),
                     (app, "types", types)]
        return rows

    # -- output --------------------------------------------------------------------------------

    def dataset(self) -> Dataset:
        """The tables, read from what the build steps made; the password hashes and the
        configuration are drawn as they are written."""
        share_columns = COLUMNS["oc_share"]
        return nextcloud_dataset({
            "oc_users": lambda: ((u.uid, u.display, self._hash(), u.uid.lower())
                                 for u in self.users),
            "oc_accounts": lambda: ((u.uid, self._account(u)) for u in self.users),
            "oc_preferences": lambda: self.prefs,
            "oc_appconfig": self.appconfig,
            "oc_groups": lambda: self.groups,
            "oc_group_user": lambda: ((gid, uid) for gid, _ in self.groups
                                      for uid in self.members[gid]),
            "oc_mimetypes": lambda: ((i, m) for m, i in self.mimetypes.ids.items()),
            "oc_storages": lambda: ((number, name, 1, None) for number, name in self.storages),
            "oc_filecache": lambda: self.cache.rows,
            "oc_authtoken": lambda: self.tokens,
            "oc_share": lambda: ([row[c] for c in share_columns] for row in self.shares),
            "oc_mounts": lambda: self.mounts,
            "oc_share_external": lambda: self.external,
        })

    def rows(self) -> int:
        """Rows of the database, for the writer's progress."""
        return (2 * len(self.users) + len(self.prefs) + len(self.groups)
                + sum(map(len, self.members.values())) + len(self.mimetypes.ids)
                + len(self.storages) + len(self.cache.rows) + len(self.tokens)
                + len(self.shares) + len(self.mounts) + len(self.external))


def build_demo_database(path: str | Path, *, now: float, users: int = DEMO_USERS,
                        seed: int = 7, progress: Progress | None = None) -> None:
    """Create a Nextcloud 24 SQLite database at `path` with `users` synthetic accounts whose
    activity is spread over the years before `now` (unix seconds). The same seed and `now` give
    the same rows. An existing file at `path` is replaced atomically. `progress` is told each
    step and how much of the build is done."""
    if users < 1:
        raise ValueError("users must be at least 1")
    # Hundreds of thousands of row lists and no reference cycles: the cyclic collector would
    # only rescan the growing heap again and again (a third of the time for 10,000 users).
    collecting = gc.isenabled()
    gc.disable()
    try:
        steps = _Steps(progress)
        builder = _Builder(random.Random(seed), int(now), users, steps)
        steps.start("accounts")
        builder.make_users()
        builder.assign_activity()
        steps.start("files")
        builder.build_files()
        steps.start("groups and shares")
        builder.build_groups()
        builder.build_shares()
        steps.start("tokens")
        builder.build_tokens()
        steps.start("preferences")
        builder.build_preferences()
        steps.start("writing the database")
        total = builder.rows()
        write_sqlite(Path(path), builder.dataset(), written=lambda done: steps.part(done / total))
        steps.part(1.0)
    finally:
        if collecting:
            gc.enable()
