"""A deterministic ownCloud 10 database (SQLite) for testing the metrics-app definitions.

Schema: the real ownCloud 10.15.2 schema (tests/fixtures/owncloud/schema.sql).
Data: 40 hand-designed user profiles per ``scale`` unit, built around ``OWNCLOUD_NOW`` so
every edge case of section 1 (metrics app) is present.  No clock, no unseeded randomness:
two builds with the same arguments are byte-for-byte identical in content.

Notable edge cases (uids of the first copy; copies >= 1 get a numeric suffix, see uid_for()):

* last_login exactly ``now - 1209600`` (active, inclusive): erin, p.rossi, li.wei@...;
  ``now - 1209601`` (not active): frank; never (0): newhire, intern, l.kowalski, v.old,
  pending.guest@...
* homes: 'home::<uid>' for most, 'object::user:<uid>' for carol and heidi, legacy
  'local::/var/owncloud/data/olduser/' for olduser (does NOT match the app's
  ``st.id LIKE '%::'||uid`` so olduser is missing from userData and their files are not
  counted), a >64-char storage id stored as md5 for the long uid ``LONG_UID`` (same effect),
  home root with size -1 (unscanned) for u.weber; users who never logged in have no
  storage, mount or filecache rows.
* other storages: 'local::/var/owncloud/data/' (root storage, not mounted), an SMB external
  storage that even contains a 'files/' folder (must not be counted), a legacy 'shared::'
  storage with a root of size 0.
* guests (preference owncloud/isGuest='1'): anna.meyer@, john.doe@, li.wei@, pending.guest@
  (never logged in); tom@contractor.example has isGuest='0' (not a guest anywhere).
* shares of types 0 (incl. to guests, pending and rejected), 1 (+ type 2 member rows), 3
  (password / expiration / both / expired), 4 (legacy rows: r.garcia owns more type 4 than
  type 0 so the per-user userShareCount is negative), 6 and 7.
* authtokens of type 0 and 1 with browser, mirall, ownCloud-android, ownCloud-iOS, app
  password and '(none)' names; stale type-0 tokens; users without tokens; one orphan token
  of a uid that has no account ('former.employee').
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OWNCLOUD_NOW = 1795424683  # the "as of" instant all timestamps are built around
OWNCLOUD_FREE_BYTES = 500 * 1024**3  # a plausible statvfs free value to pair with the DB
DATADIR = "/var/owncloud/data"
DIR_MIMETYPE = "httpd/unix-directory"
APP_DEFAULT_QUOTA = "2 GB"  # appconfig files/default_quota
TWO_WEEKS = 14 * 24 * 60 * 60
INSTANCE_ID = "oc8x2k1l9f3a"

H = 3600
D = 86400

DB = "OC\\User\\Database"
LDAP = "OCA\\User_LDAP\\User_Proxy"

LONG_UID = "maximilian.von-habsburg-lothringen@research.institute.example"

# --------------------------------------------------------------------------- schema

# The real ownCloud 10.15.2 schema, as that server created it.
SCHEMA = Path(__file__).resolve().parent.parent / "fixtures" / "owncloud" / "schema.sql"

TABLES = (
    "accounts",
    "account_terms",
    "users",
    "preferences",
    "appconfig",
    "authtoken",
    "share",
    "storages",
    "mounts",
    "mimetypes",
    "filecache",
    "groups",
    "group_user",
)


def owncloud_ddl() -> str:
    """The real schema as one script (SQLite makes sqlite_sequence itself)."""
    return "\n".join(line for line in SCHEMA.read_text().splitlines()
                     if not line.startswith("CREATE TABLE sqlite_sequence"))


# --------------------------------------------------------------------------- mimetypes

# Order of a default install: 'httpd' = 1, 'httpd/unix-directory' = 2, then as first seen.
_FILE_MIMETYPES = (
    "httpd",
    "application",
    "application/pdf",
    "image",
    "image/jpeg",
    "image/png",
    "text",
    "text/plain",
    "text/markdown",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "video",
    "video/mp4",
    "application/octet-stream",
    "text/html",
    "application/javascript",
    "text/css",
)
_EXT_MIME = {
    "pdf": "application/pdf",
    "jpg": "image/jpeg",
    "png": "image/png",
    "txt": "text/plain",
    "log": "text/plain",
    "md": "text/markdown",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "mp4": "video/mp4",
    "html": "text/html",
    "js": "application/javascript",
    "css": "text/css",
}


def mimetype_ids() -> dict[str, int]:
    """mimetype -> id, 'httpd/unix-directory' = 2 as on a default install."""
    order = list(_FILE_MIMETYPES)
    order.insert(1, DIR_MIMETYPE)
    return {m: i for i, m in enumerate(order, start=1)}


def _mime_of(name: str) -> str:
    # versions ('x.docx.v123') and trash ('x.docx.d123') keep the original extension
    parts = name.split(".")
    if len(parts) >= 3 and parts[-1][:1] in "vd" and parts[-1][1:].isdigit():
        parts = parts[:-1]
    return _EXT_MIME.get(parts[-1].lower() if len(parts) > 1 else "", "application/octet-stream")


# --------------------------------------------------------------------------- user profiles

UA = {
    "chrome": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Safari/537.36",
    "edge": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
    "firefox": "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "safari": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "mirall_win": "Mozilla/5.0 (Windows) mirall/5.2.1.13040 (ownCloud, windows-10.0.19045"
    " ClientArchitecture: x86_64 OsArchitecture: x86_64)",
    "mirall_linux": "Mozilla/5.0 (Linux) mirall/4.2.0.11670 (ownCloud, ubuntu-22.04"
    " ClientArchitecture: x86_64 OsArchitecture: x86_64)",
    "mirall_mac": "Mozilla/5.0 (Macintosh) mirall/5.3.0.14102 (ownCloud, osx-23.4.0"
    " ClientArchitecture: arm64 OsArchitecture: arm64)",
    "android": "Mozilla/5.0 (Android) ownCloud-android/4.2.1",
    "ios": "Mozilla/5.0 (iOS) ownCloud-iOS/12.2.0",
    "none": "(none)",  # empty names became '(none)' (Version20180319102121)
    "app_backup": "backup-script",  # app password named by the user
    "app_dav": "Thunderbird CardBook",
}


@dataclass(frozen=True)
class Profile:
    uid: str
    display: str
    backend: str
    state: int  # 0 initial, 1 enabled, 2 disabled, 3 deleted
    quota: str | None
    last_ago: int | None  # seconds before now; None = never logged in (last_login 0)
    home: str = "home"  # home | object | legacy | hashed | none
    tokens: tuple[tuple[str, int, int], ...] = ()  # (UA key, type, seconds since activity)
    guest: str | None = None  # value of preference owncloud/isGuest
    unscanned_root: bool = False
    big_file: bool = False
    groups: tuple[str, ...] = ()


P = Profile
PROFILES: tuple[Profile, ...] = (
    P(
        "admin",
        "ownCloud Admin",
        DB,
        1,
        "none",
        2 * H,
        tokens=(("chrome", 0, 300), ("mirall_linux", 1, 600)),
        groups=("admin", "staff"),
    ),
    P(
        "alice",
        "Alice Wonder",
        DB,
        1,
        "5 GB",
        3 * H,
        tokens=(
            ("firefox", 0, 120),
            ("mirall_win", 1, 60),
            ("android", 1, 4 * H),
            ("ios", 1, 2 * D),
        ),
        groups=("engineering", "staff"),
    ),
    P(
        "bob",
        "Bob Builder",
        DB,
        1,
        "default",
        1 * D,
        tokens=(("safari", 0, 2 * D), ("ios", 1, 1 * D)),
        groups=("engineering", "staff"),
    ),
    P(
        "carol",
        "Carol Danvers",
        DB,
        1,
        None,
        5 * D,
        home="object",
        tokens=(("mirall_mac", 1, 5 * D),),
        groups=("engineering", "staff", "project-apollo"),
    ),
    P(
        "dave",
        "Dave Grohl",
        DB,
        1,
        "100 MB",
        10 * D,
        big_file=True,
        tokens=(("android", 1, 10 * D),),
        groups=("engineering", "staff"),
    ),
    P(
        "erin",
        "Erin Hunter",
        LDAP,
        1,
        "1073741824",
        TWO_WEEKS,
        tokens=(("none", 1, TWO_WEEKS),),
        groups=("engineering", "project-apollo"),
    ),
    P(
        "frank",
        "Frank Castle",
        LDAP,
        1,
        "default",
        TWO_WEEKS + 1,
        tokens=(("chrome", 0, TWO_WEEKS + 1),),
    ),
    P("grace", "Grace Hopper", LDAP, 1, "1.5 GB", 20 * D),
    P(
        "heidi",
        "Heidi Klum",
        LDAP,
        1,
        "10 GB",
        30 * D,
        home="object",
        tokens=(("firefox", 0, 30 * D), ("mirall_linux", 1, 30 * D)),
        groups=("project-apollo",),
    ),
    P("ivan", "Ivan Petrov", LDAP, 2, "5 GB", 90 * D, tokens=(("mirall_win", 1, 90 * D),)),
    P("judy", "Judy Hopps", DB, 2, None, 200 * D, groups=("staff",)),
    P("mallory", "Mallory Knox", DB, 3, "default", 400 * D, tokens=(("none", 1, 400 * D),)),
    P(
        "olduser",
        "Legacy Larry",
        DB,
        1,
        "5 GB",
        40 * D,
        home="legacy",
        tokens=(("mirall_win", 1, 40 * D),),
        groups=("staff",),
    ),
    P(
        LONG_UID,
        "Maximilian von Habsburg-Lothringen",
        DB,
        1,
        "default",
        6 * D,
        home="hashed",
        tokens=(("chrome", 0, 6 * D),),
    ),
    P("newhire", "New Hire", LDAP, 0, None, None, home="none"),
    P("intern", "Summer Intern", DB, 1, "default", None, home="none", groups=("staff",)),
    P("l.kowalski", "Łukasz Kowalski", LDAP, 1, None, None, home="none"),
    P("v.old", "Viktor Old", LDAP, 2, None, None, home="none"),
    P(
        "scanner",
        "scanner",
        DB,
        1,
        "none",
        1 * H,
        tokens=(("none", 1, 1 * H), ("app_backup", 1, 1 * H)),
    ),
    P(
        "u.weber",
        "Ursula Weber",
        DB,
        1,
        "5 GB",
        4 * D,
        unscanned_root=True,
        tokens=(("firefox", 0, 600),),
        groups=("staff",),
    ),
    P(
        "anna.meyer@partner-firm.example",
        "Anna Meyer",
        DB,
        1,
        "0 B",
        2 * D,
        guest="1",
        tokens=(("chrome", 0, 900),),
    ),
    P(
        "john.doe@customer.example",
        "John Doe",
        DB,
        1,
        None,
        18 * D,
        guest="1",
        tokens=(("ios", 1, 18 * D),),
    ),
    P("li.wei@supplier.example", "Li Wei", DB, 1, "0 B", TWO_WEEKS, guest="1"),
    P("pending.guest@external.example", "Pat Pending", DB, 1, "0 B", None, home="none", guest="1"),
    P(
        "tom@contractor.example",
        "Tom Contractor",
        DB,
        1,
        "default",
        3 * D,
        guest="0",
        tokens=(("mirall_mac", 1, 3 * D),),
    ),
    P(
        "m.schmidt",
        "Maria Schmidt",
        LDAP,
        1,
        "default",
        6 * H,
        tokens=(("chrome", 0, 200), ("mirall_win", 1, 6 * H), ("android", 1, 1 * D)),
    ),
    P(
        "k.nguyen",
        "Khanh Nguyen",
        LDAP,
        1,
        "5 GB",
        2 * D,
        tokens=(("edge", 0, 2 * D),),
        groups=("engineering",),
    ),
    P(
        "p.rossi",
        "Paolo Rossi",
        LDAP,
        1,
        None,
        TWO_WEEKS,
        tokens=(("mirall_linux", 1, 3 * D),),
        groups=("engineering",),
    ),
    P("l.martin", "Léa Martin", LDAP, 1, "10 GB", 45 * D),
    P(
        "a.johansson",
        "Astrid Johansson",
        LDAP,
        1,
        "default",
        7 * D,
        tokens=(("ios", 1, 7 * D), ("android", 1, 8 * D)),
    ),
    P(
        "r.garcia",
        "Rosa García",
        DB,
        1,
        "5 GB",
        12 * H,
        tokens=(("firefox", 0, 12 * H),),
        groups=("staff",),
    ),
    P("t.yamamoto", "山本 拓也", LDAP, 1, "none", 25 * D, tokens=(("mirall_win", 1, 25 * D),)),
    P(
        "e.dubois",
        "Émile Dubois",
        DB,
        1,
        "100 MB",
        13 * D,
        tokens=(("chrome", 0, 13 * D),),
        groups=("sales", "staff"),
    ),
    P("n.okafor", "Ngozi Okafor", LDAP, 1, "default", 60 * D),
    P(
        "h.mueller",
        "Müller, Hans",
        LDAP,
        1,
        "2 GB",
        1 * D,
        tokens=(("none", 0, 1 * D), ("mirall_linux", 1, 1 * D), ("app_dav", 1, 1 * D)),
    ),
    P(
        "c.silva",
        "Carla Silva",
        DB,
        1,
        "default",
        120 * D,
        tokens=(("android", 1, 120 * D),),
        groups=("sales", "staff"),
    ),
    P("d.ivanova", "Daria Ivanova", LDAP, 2, None, 300 * D),
    P(
        "o.brown",
        'Olivia "Liv" Brown',
        DB,
        1,
        "5 GB",
        15 * D,
        tokens=(("safari", 0, 15 * D),),
        groups=("sales", "staff"),
    ),
    P(
        "b.tanaka",
        "Ben Tanaka",
        LDAP,
        1,
        "1073741824",
        8 * D,
        tokens=(("mirall_mac", 1, 8 * D), ("ios", 1, 9 * D)),
        groups=("project-apollo",),
    ),
    P(
        "f.schulz",
        "Fritz Schulz",
        DB,
        1,
        "default",
        11 * D,
        tokens=(("chrome", 0, 11 * D),),
        groups=("sales", "staff"),
    ),
)
ORPHAN_TOKEN_UID = "former.employee"  # authtoken row whose uid has no account
GROUPS = ("admin", "staff", "engineering", "project-apollo", "sales")

# Shares of one copy: (type, owner, share_with, item, accepted, extra) where item is a path
# below the owner's home ('files/…'; '#doc' = first file of files/Documents) and extra holds
# type-specific flags.  Type-2 rows of group shares are listed in GROUP_MEMBER_ROWS.
SHARES: tuple[tuple[int, str, str | None, str, int, str], ...] = (
    (0, "alice", "bob", "files/Projects", 0, ""),
    (0, "alice", "carol", "#doc", 0, ""),
    (0, "bob", "alice", "files/Photos", 0, ""),
    (0, "dave", "erin", "files/Projects", 0, ""),
    (0, "heidi", "grace", "files/Documents", 0, ""),
    (0, "m.schmidt", "k.nguyen", "files/Projects", 0, ""),
    (0, "admin", "alice", "#doc", 0, ""),
    (0, "judy", "bob", "files/Photos", 0, ""),  # owner disabled
    (0, "mallory", "alice", "files/Projects", 0, ""),  # owner state 3
    (0, LONG_UID, "alice", "files/Projects", 0, ""),  # owner missing from userData
    (0, "olduser", "bob", "files/Documents", 0, ""),  # legacy-home owner
    (0, "k.nguyen", "h.mueller", "files/Photos", 1, ""),  # pending
    (0, "r.garcia", "a.johansson", "#doc", 2, ""),  # rejected
    (0, "dave", "tom@contractor.example", "files/Photos", 0, ""),  # isGuest='0'
    (0, "c.silva", "newhire", "files/Projects", 0, ""),  # recipient never logged in
    (0, "alice", "anna.meyer@partner-firm.example", "files/Projects", 0, ""),  # guests ...
    (0, "alice", "john.doe@customer.example", "files/Documents", 0, ""),
    (0, "bob", "anna.meyer@partner-firm.example", "#doc", 0, ""),
    (0, "carol", "li.wei@supplier.example", "files/Projects", 0, ""),
    (0, "heidi", "pending.guest@external.example", "files/Photos", 0, ""),
    (0, "m.schmidt", "anna.meyer@partner-firm.example", "files/Photos", 0, ""),
    (1, "alice", "engineering", "files/Projects", 0, ""),
    (1, "bob", "staff", "files/Documents", 0, ""),
    (1, "admin", "staff", "files/Projects", 0, ""),
    (1, "carol", "project-apollo", "files/Photos", 0, ""),
    (1, "e.dubois", "sales", "files/Documents", 0, ""),
    (3, "alice", None, "files/Photos", 0, "password,expire"),
    (3, "alice", None, "#doc", 0, ""),
    (3, "alice", None, "files/Projects", 0, "password"),
    (3, "bob", None, "files/Projects", 0, "expire"),
    (3, "carol", None, "files/Documents", 0, ""),
    (3, "dave", None, "files/Photos", 0, "password"),
    (3, "grace", None, "#doc", 0, ""),
    (3, "n.okafor", None, "files/Projects", 0, "expire"),
    (3, "ivan", None, "files/Photos", 0, ""),  # owner disabled
    (3, LONG_UID, None, "files/Documents", 0, ""),
    (3, "olduser", None, "files/Photos", 0, "password"),
    (3, "t.yamamoto", None, "files/Projects", 0, ""),
    (3, "o.brown", None, "#doc", 0, "expired"),
    (4, "r.garcia", "guest.invite@old.example", "files/Photos", 0, ""),  # legacy type 4
    (4, "r.garcia", "other@old.example", "files/Documents", 0, ""),
    (4, "alice", "legacy@old.example", "#doc", 0, ""),
    (6, "alice", "marie@cloud.partner.example", "files/Projects", 0, ""),
    (6, "bob", "ops@files.vendor.example", "files/Documents", 0, ""),
    (6, "m.schmidt", "m.schmidt@nextcloud.affiliate.example", "files/Photos", 0, ""),
    (6, "olduser", "larry@home.cloud.example", "files/Projects", 0, ""),
    (7, "alice", "designers@cloud.partner.example", "files/Photos", 0, ""),
)
# Per-member type-2 rows (members who renamed/accepted the group share): group-share owner ->
# members.  Keys are (owner, group).
GROUP_MEMBER_ROWS: dict[tuple[str, str], tuple[str, ...]] = {
    ("alice", "engineering"): ("bob", "carol", "dave"),
    ("bob", "staff"): ("alice", "judy"),
    ("admin", "staff"): ("alice",),
    ("carol", "project-apollo"): ("erin", "heidi"),
}
SMB_USERS = ("alice", "bob", "erin")  # users with the SMB external storage mounted


def uid_for(uid: str, copy: int) -> str:
    """uid of profile ``uid`` in scale copy ``copy`` (copy 0 keeps the plain uid)."""
    if copy == 0:
        return uid
    if "@" in uid:
        local, domain = uid.split("@", 1)
        return f"{local}{copy}@{domain}"
    return f"{uid}{copy}"


def home_storage_id(uid: str, kind: str) -> str | None:
    """oc_storages.id of a home, as ownCloud writes it (md5 when longer than 64 chars)."""
    if kind == "none":
        return None
    sid = {
        "home": f"home::{uid}",
        "hashed": f"home::{uid}",
        "object": f"object::user:{uid}",
        "legacy": f"local::{DATADIR}/{uid}/",
    }[kind]
    return hashlib.md5(sid.encode()).hexdigest() if len(sid) > 64 else sid


# --------------------------------------------------------------------------- file trees


@dataclass
class Node:
    name: str
    size: int = 0  # files only; folders are recursive sums
    children: list[Node] | None = None  # None = file
    force_size: int | None = None  # e.g. -1 for an unscanned root

    def folder(self, name: str) -> Node:
        node = Node(name, children=[])
        assert self.children is not None
        self.children.append(node)
        return node

    def file(self, name: str, size: int) -> Node:
        node = Node(name, size=size)
        assert self.children is not None
        self.children.append(node)
        return node

    def total(self) -> int:
        if self.children is None:
            return self.size
        return sum(c.total() for c in self.children)


_DOCS = (
    "Quarterly Report.docx",
    "Meeting Notes.txt",
    "Budget 2025.ods",
    "Contract.pdf",
    "Roadmap.pdf",
    "Ideas.md",
    "Travel Expenses.xlsx",
)
SKELETON_MANUAL = ("ownCloud Manual.pdf", 4_781_234)


def home_tree(*, guest: bool, big_file: bool, rng: random.Random) -> Node:
    root = Node("", children=[])
    files = root.folder("files")
    if guest:  # guests get an empty home
        root.folder("cache")
        return root
    files.file(*SKELETON_MANUAL)
    docs = files.folder("Documents")
    for name in rng.sample(_DOCS, rng.randint(2, 5)):
        docs.file(name, rng.randint(8_000, 2_500_000))
    photos = files.folder("Photos")
    for i in range(rng.randint(1, 4)):
        photos.file(
            f"IMG_2025{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}_{i:04d}.jpg",
            rng.randint(900_000, 6_000_000),
        )
    projects = files.folder("Projects")
    apollo = projects.folder("Apollo")
    for i in range(rng.randint(1, 3)):
        apollo.file(f"spec-{i + 1}.md", rng.randint(1_000, 60_000))
    specs = apollo.folder("Archive")
    if rng.random() < 0.6:
        specs.file("old-spec.pdf", rng.randint(50_000, 900_000))
    projects.file("timeline.xlsx", rng.randint(20_000, 200_000))
    if big_file:
        files.folder("Videos").file("holiday-2025.mp4", 157_286_400)  # 150 MiB
    thumbs = root.folder("thumbnails")
    for i, _ in enumerate(photos.children or []):
        thumbs.folder(str(1000 + i)).file("256-256.png", rng.randint(20_000, 90_000))
    versions = root.folder("files_versions").folder("Documents")
    for doc in (docs.children or [])[:2]:
        versions.file(
            f"{doc.name}.v{OWNCLOUD_NOW - rng.randint(D, 90 * D)}",
            max(1, doc.size - rng.randint(0, 5_000)),
        )
    trash = root.folder("files_trashbin")
    tfiles = trash.folder("files")
    for i in range(rng.randint(0, 2)):
        tfiles.file(
            f"draft-{i}.docx.d{OWNCLOUD_NOW - rng.randint(D, 30 * D)}", rng.randint(10_000, 300_000)
        )
    trash.folder("versions")
    root.folder("cache")
    return root


def root_storage_tree() -> Node:
    root = Node("", children=[])
    app = root.folder(f"appdata_{INSTANCE_ID}")
    js = app.folder("js").folder("core")
    js.file("merged-template-prepend.js", 312_455)
    app.folder("css").folder("core").file("styles.css", 88_120)
    app.folder("preview")
    root.file("owncloud.log", 23_456_789)
    root.file("index.html", 0)
    return root


def smb_tree() -> Node:
    root = Node("", children=[])
    files = root.folder("files")  # a folder called 'files' on an external storage
    files.file("README.txt", 1_204)
    files.file("inventory.xlsx", 45_678)
    root.file("Budget 2025.xlsx", 98_765)
    scans = root.folder("Scans")
    for i in range(3):
        scans.file(f"scan-{i:03d}.pdf", 400_000 + 1_000 * i)
    return root


def walk(node: Node, path: str = "") -> Iterator[tuple[str, Node]]:
    """(path, node) in pre-order; the root has path ''."""
    yield path, node
    for child in node.children or []:
        yield from walk(child, child.name if path == "" else f"{path}/{child.name}")


# --------------------------------------------------------------------------- row generation


def _pw_hash(seed: str) -> str:
    """A bcrypt-looking ownCloud password hash ('1|' = hash version prefix)."""
    return "1|$2y$10$" + hashlib.sha256(seed.encode()).hexdigest()[:53]


@dataclass
class _State:
    mime: dict[str, int]
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    next_fileid: int = 1
    next_storage: int = 1
    # uid -> (storage numeric id, {path: fileid})
    homes: dict[str, tuple[int, dict[str, int]]] = field(default_factory=dict)

    def add(self, table: str, **row: Any) -> None:
        self.rows.setdefault(table, []).append(row)

    def storage(self, sid: str) -> int:
        num = self.next_storage
        self.next_storage += 1
        self.add("storages", id=sid, numeric_id=num, available=1, last_checked=None)
        return num

    def filecache(self, storage: int, tree: Node, seed: str) -> dict[str, int]:
        rng = random.Random(seed)
        ids: dict[str, int] = {}
        for path, node in walk(tree):
            fileid = self.next_fileid
            self.next_fileid += 1
            ids[path] = fileid
            is_dir = node.children is not None
            mimetype = DIR_MIMETYPE if is_dir else _mime_of(node.name)
            size = node.force_size if node.force_size is not None else node.total()
            mtime = OWNCLOUD_NOW - rng.randint(H, 365 * D)
            parent = -1 if path == "" else ids[path.rpartition("/")[0]]
            self.add(
                "filecache",
                fileid=fileid,
                storage=storage,
                path=path,
                path_hash=hashlib.md5(path.encode()).hexdigest(),
                parent=parent,
                name=node.name,
                mimetype=self.mime[mimetype],
                mimepart=self.mime[mimetype.split("/")[0]],
                size=size,
                mtime=mtime,
                storage_mtime=mtime,
                encrypted=0,
                unencrypted_size=0,
                etag=hashlib.md5(f"{seed}:{path}".encode()).hexdigest()[:13],
                permissions=31 if is_dir else 27,
                checksum=None
                if is_dir
                else f"SHA1:{hashlib.sha1(f'{seed}:{path}'.encode()).hexdigest()}",
            )
        return ids


def owncloud_rows(
    *, scale: int = 1
) -> dict[str, list[dict[str, Any]]]:
    """All rows of the test database, table name (without prefix) -> rows in insert order."""
    if scale < 1:
        raise ValueError("scale must be >= 1")
    st = _State(mime=mimetype_ids())
    for mimetype, mid in sorted(st.mime.items(), key=lambda kv: kv[1]):
        st.add("mimetypes", id=mid, mimetype=mimetype)
    st.add("appconfig", appid="files", configkey="default_quota", configvalue=APP_DEFAULT_QUOTA)
    st.add("appconfig", appid="core", configkey="installedat", configvalue="1700000000.1234")
    st.add("appconfig", appid="metrics", configkey="enabled", configvalue="yes")
    for gid in GROUPS:
        st.add("groups", gid=gid)

    # the data directory itself is storage 1, as on a real install (not in oc_mounts)
    root_num = st.storage(f"local::{DATADIR}/")
    st.filecache(root_num, root_storage_tree(), "root")

    account_id = 0
    token_no = 0
    for copy in range(scale):
        for prof in PROFILES:
            uid = uid_for(prof.uid, copy)
            account_id += 1
            last_login = 0 if prof.last_ago is None else OWNCLOUD_NOW - prof.last_ago
            st.add(
                "accounts",
                id=account_id,
                email=uid if "@" in uid else f"{uid}@corp.example",
                user_id=uid,
                lower_user_id=uid.lower(),
                display_name=prof.display,
                quota=prof.quota,
                last_login=last_login,
                backend=prof.backend,
                home=f"{DATADIR}/{uid}",
                state=prof.state,
                creation_time=OWNCLOUD_NOW - 500 * D + account_id * 3 * H,
            )
            st.add("account_terms", id=account_id, account_id=account_id, term=uid.lower())
            if prof.backend == DB:
                st.add("users", uid=uid, displayname=prof.display[:64], password=_pw_hash(uid))
            if prof.guest is not None:
                st.add(
                    "preferences",
                    userid=uid,
                    appid="owncloud",
                    configkey="isGuest",
                    configvalue=prof.guest,
                )
                if prof.guest == "1":
                    st.add(
                        "preferences",
                        userid=uid,
                        appid="guests",
                        configkey="created",
                        configvalue=str(OWNCLOUD_NOW - 30 * D),
                    )
                if prof.home == "none":  # invitation not yet accepted
                    st.add(
                        "preferences",
                        userid=uid,
                        appid="guests",
                        configkey="registerToken",
                        configvalue=hashlib.md5(uid.encode()).hexdigest()[:21],
                    )
            st.add(
                "preferences",
                userid=uid,
                appid="core",
                configkey="lang",
                configvalue="de" if prof.backend == LDAP else "en",
            )
            for gid in prof.groups:
                st.add("group_user", gid=gid, uid=uid)
            for i, (ua, ttype, age) in enumerate(prof.tokens):
                token_no += 1
                st.add(
                    "authtoken",
                    id=token_no,
                    uid=uid,
                    login_name=uid,
                    password=None
                    if ttype == 1 and ua.startswith("app_")
                    else hashlib.sha256(f"pw:{uid}:{i}".encode()).hexdigest(),
                    name=UA[ua],
                    token=hashlib.sha512(f"{uid}:{i}".encode()).hexdigest(),
                    type=ttype,
                    last_activity=OWNCLOUD_NOW - age,
                    last_check=OWNCLOUD_NOW - age,
                )
            sid = home_storage_id(uid, prof.home)
            if sid is None:
                continue
            num = st.storage(sid)
            tree = home_tree(
                guest=prof.guest == "1", big_file=prof.big_file, rng=random.Random(f"tree:{uid}")
            )
            if prof.unscanned_root:
                tree.force_size = -1
            ids = st.filecache(num, tree, uid)
            st.homes[uid] = (num, ids)
            st.add("mounts", storage_id=num, root_id=ids[""], user_id=uid, mount_point=f"/{uid}/")
        # one leftover token of a deleted account, per copy
        token_no += 1
        orphan = uid_for(ORPHAN_TOKEN_UID, copy)
        st.add(
            "authtoken",
            id=token_no,
            uid=orphan,
            login_name=orphan,
            password=None,
            name=UA["mirall_win"],
            token=hashlib.sha512(f"{orphan}:orphan".encode()).hexdigest(),
            type=1,
            last_activity=OWNCLOUD_NOW - 100 * D,
            last_check=OWNCLOUD_NOW - 100 * D,
        )

    smb_num = st.storage("smb::svc-oc@fileserver.corp.example//projects/")
    smb_ids = st.filecache(smb_num, smb_tree(), "smb")
    shared_num = st.storage("shared::/bob/files/Shared/Old Project")  # OC 8 leftover
    st.filecache(shared_num, Node("", children=[]), "shared")
    for copy in range(scale):
        for user in SMB_USERS:
            uid = uid_for(user, copy)
            st.add(
                "mounts",
                storage_id=smb_num,
                root_id=smb_ids[""],
                user_id=uid,
                mount_point=f"/{uid}/files/Projects (SMB)/",
            )

    _shares(st, scale)
    for i, row in enumerate(st.rows["mounts"], start=1):
        row["id"] = i
    return st.rows


def _shares(st: _State, scale: int) -> None:
    share_id = 0
    seen_mounts = {(m["user_id"], m["root_id"]) for m in st.rows["mounts"]}
    members: dict[str, list[str]] = {}
    for gu in st.rows["group_user"]:
        members.setdefault(gu["gid"], []).append(gu["uid"])

    def mount(uid: str, storage: int, fileid: int, name: str) -> None:
        if uid in st.homes and (uid, fileid) not in seen_mounts:
            seen_mounts.add((uid, fileid))
            st.add(
                "mounts",
                storage_id=storage,
                root_id=fileid,
                user_id=uid,
                mount_point=f"/{uid}/files/Shared/{name}/",
            )

    for copy in range(scale):
        rng = random.Random(f"shares:{copy}")
        for stype, owner0, with0, item, accepted, extra in SHARES:
            owner = uid_for(owner0, copy)
            storage, ids = st.homes[owner]
            if item == "#doc":
                item = next(p for p in ids if p.startswith("files/Documents/"))
            fileid = ids[item]
            is_folder = item.count("/") == 1  # files/<Folder>
            name = item.rpartition("/")[2]
            share_with = with0
            if stype in (0, 1) and with0 is not None:
                share_with = uid_for(with0, copy) if stype == 0 else with0
            share_id += 1
            stime = OWNCLOUD_NOW - rng.randint(D, 300 * D)
            token = None
            if stype in (3, 6):
                token = hashlib.sha1(f"tok:{share_id}".encode()).hexdigest()[:15]
            if stype == 3 and "password" in extra:  # link password hash lives in share_with
                share_with = _pw_hash(f"link:{share_id}")
            expiration = None
            if "expire" in extra:
                expiration = "2026-12-31 00:00:00"
            elif "expired" in extra:
                expiration = "2025-01-31 00:00:00"  # already in the past at OWNCLOUD_NOW
            target = f"/Shared/{name}" if stype in (0, 1, 2) else f"/{name}"
            st.add(
                "share",
                id=share_id,
                share_type=stype,
                share_with=share_with,
                uid_owner=owner,
                uid_initiator=owner,
                parent=None,
                item_type="folder" if is_folder else "file",
                item_source=str(fileid),
                item_target=None,
                file_source=fileid,
                file_target=target,
                permissions=31 if is_folder else 19,
                stime=stime,
                accepted=accepted,
                expiration=expiration,
                token=token,
                mail_send=0,
                share_name="Public link" if stype == 3 else None,
                attributes=None,
            )
            if not is_folder or accepted != 0:
                continue
            if stype == 0:
                mount(share_with or "", storage, fileid, name)
            elif stype == 1:
                for member in members.get(with0 or "", []):
                    if member != owner:
                        mount(member, storage, fileid, name)
                group_share = share_id
                for member0 in GROUP_MEMBER_ROWS.get((owner0, with0 or ""), ()):
                    share_id += 1
                    st.add(
                        "share",
                        id=share_id,
                        share_type=2,
                        share_with=uid_for(member0, copy),
                        uid_owner=owner,
                        uid_initiator=owner,
                        parent=group_share,
                        item_type="folder",
                        item_source=str(fileid),
                        item_target=None,
                        file_source=fileid,
                        file_target=f"/Shared/{name} ({with0})",
                        permissions=31,
                        stime=stime,
                        accepted=0,
                        expiration=None,
                        token=None,
                        mail_send=0,
                        share_name=None,
                        attributes=None,
                    )


def build_owncloud_db(path: str, *, scale: int = 1) -> None:
    """Create the real ownCloud 10 schema at ``path`` and fill it deterministically;
    ``scale`` copies of the user profiles (the real fixture has 26 users)."""
    rows = owncloud_rows(scale=scale)
    con = sqlite3.connect(path)
    try:
        con.executescript(owncloud_ddl())
        with con:
            for table in TABLES:
                data = rows.get(table, [])
                if not data:
                    continue
                cols = list(data[0])
                con.executemany(
                    f"INSERT INTO oc_{table} ({', '.join(cols)}) "
                    f"VALUES ({', '.join(':' + c for c in cols)})",
                    data,
                )
    finally:
        con.close()
