"""The reference (our transcription of the metrics app's SQL) reproduces the real app's answers
on the real ownCloud fixture, which makes it the oracle for the edge cases only the hand-built
test database has; that database is consistent, and the reference answers hold up when
recomputed a second way (plain Python over the rows)."""

from __future__ import annotations

import shutil
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from tests.conftest import OWNCLOUD, OWNCLOUD_DB, read_json
from tests.platforms import owncloud_reference as ref
from tests.platforms.owncloud_db import (
    APP_DEFAULT_QUOTA,
    DB,
    LDAP,
    LONG_UID,
    ORPHAN_TOKEN_UID,
    OWNCLOUD_FREE_BYTES,
    OWNCLOUD_NOW,
    PROFILES,
    TABLES,
    TWO_WEEKS,
    build_owncloud_db,
    owncloud_rows,
)

FREE = OWNCLOUD_FREE_BYTES


def _build(tmp: Path, name: str, **kwargs: Any) -> Path:
    path = tmp / name
    build_owncloud_db(str(path), **kwargs)
    return path


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("owncloud"), "owncloud.db")


@pytest.fixture(scope="module")
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    con = sqlite3.connect(db_path)
    yield con
    con.close()


def q(conn: sqlite3.Connection, sql: str) -> list[tuple]:
    return conn.execute(sql).fetchall()


def dir_id(conn: sqlite3.Connection) -> int:
    return q(conn, "SELECT id FROM oc_mimetypes WHERE mimetype='httpd/unix-directory'")[0][0]


# --------------------------------------------------------------------------- the real app


def test_the_reference_reproduces_the_real_app_on_its_own_database(owncloud_now) -> None:
    app = read_json(OWNCLOUD / "metrics_api.json")["ocs"]["data"]
    storage = app["files"]["storage"]
    engine = create_engine(f"sqlite:///{OWNCLOUD_DB}")
    try:
        with engine.connect() as c:
            capacity = {"available_storage": storage["total"]}
            system = ref.system_metrics(c, int(owncloud_now), 0, **capacity)
            users = ref.user_data(c, 0, **capacity)
            rows = ref.users_csv_rows(c, 0, **capacity)
    finally:
        engine.dispose()
    assert {**system, "userData": users} == app
    downloaded = ref.parse_csv((OWNCLOUD / "metrics_download_users.csv").read_text())
    by_user = {row["userId"]: row for row in downloaded}
    unlimited = {uid for uid, entry in users.items() if entry["quota"]["total"] == storage["total"]}
    assert len(rows) == len(downloaded)
    for row in rows:  # the CSV's own disk total differs from the JSON's; the rest is equal
        disk = ("quotaFree", "quotaTotal") if row["userId"] in unlimited else ()
        assert {k: str(v) for k, v in row.items() if k not in disk} == \
            {k: v for k, v in by_user[row["userId"]].items() if k not in disk}


# --------------------------------------------------------------------------- builder


def test_schema(db_path: Path) -> None:
    con = sqlite3.connect(db_path)
    names = {r[0] for r in q(con, "SELECT name FROM sqlite_master WHERE type='table'")}
    con.close()
    assert {f"oc_{t}" for t in TABLES} <= names


def test_deterministic(tmp_path: Path, db_path: Path) -> None:
    again = _build(tmp_path, "again.db")
    dump = ["\n".join(sqlite3.connect(p).iterdump()) for p in (db_path, again)]
    assert dump[0] == dump[1]


def test_folder_sizes_are_recursive_sums(conn: sqlite3.Connection) -> None:
    d = dir_id(conn)
    rows = q(conn, "SELECT fileid, storage, path, parent, mimetype, size FROM oc_filecache")
    children: dict[int, list[int]] = {}
    for _fid, _st, _path, parent, _m, size in rows:
        children.setdefault(parent, []).append(size)
    checked = 0
    for fid, _st, path, _parent, mimetype, size in rows:
        if mimetype == d and size != -1:
            assert size == sum(children.get(fid, [])), path
            checked += 1
    assert checked > 100
    # exactly one unscanned root, and its children are scanned
    unscanned = [r for r in rows if r[3] == -1 and r[5] == -1]
    assert len(unscanned) == 1
    assert all(s >= 0 for s in children[unscanned[0][0]])


def test_filecache_paths_and_parents(conn: sqlite3.Connection) -> None:
    rows = q(conn, "SELECT fileid, storage, path, parent, name FROM oc_filecache")
    by_id = {r[0]: r for r in rows}
    for fid, storage, path, parent, name in rows:
        if parent == -1:
            assert path == "" and name == "", fid
            continue
        p = by_id[parent]
        assert p[1] == storage
        assert path == (name if p[2] == "" else f"{p[2]}/{name}")
    roots = Counter(r[1] for r in rows if r[3] == -1)
    assert set(roots.values()) == {1}
    assert len(roots) == q(conn, "SELECT COUNT(*) FROM oc_storages")[0][0]


def test_every_home_has_its_mount(conn: sqlite3.Connection) -> None:
    storages = dict(q(conn, "SELECT id, numeric_id FROM oc_storages"))
    roots = dict(q(conn, "SELECT storage, fileid FROM oc_filecache WHERE parent = -1"))
    mounts = {
        (u, mp): (s, r)
        for s, r, u, mp in q(
            conn, "SELECT storage_id, root_id, user_id, mount_point FROM oc_mounts"
        )
    }
    homes = 0
    for sid, num in storages.items():
        for prefix in ("home::", "object::user:"):
            if sid.startswith(prefix):
                uid = sid[len(prefix) :]
                assert mounts[(uid, f"/{uid}/")] == (num, roots[num])
                homes += 1
    assert homes > 25
    # every mount points at a filecache entry of its storage
    fc = set(q(conn, "SELECT storage, fileid FROM oc_filecache"))
    assert all((s, r) in fc for s, r in mounts.values())
    # legacy and hashed homes are mounted too
    assert ("olduser", "/olduser/") in mounts and (LONG_UID, f"/{LONG_UID}/") in mounts


def test_never_logged_in_users_have_no_home(conn: sqlite3.Connection) -> None:
    never = {r[0] for r in q(conn, "SELECT user_id FROM oc_accounts WHERE last_login = 0")}
    mounted = {r[0] for r in q(conn, "SELECT user_id FROM oc_mounts")}
    assert len(never) == 5 and not never & mounted


def test_shares_point_at_owner_files(conn: sqlite3.Connection) -> None:
    rows = q(
        conn,
        """SELECT s.id FROM oc_share s
        LEFT JOIN oc_filecache f ON f.fileid = s.file_source
        LEFT JOIN oc_mounts m ON m.storage_id = f.storage AND m.user_id = s.uid_owner
             AND m.mount_point = '/' || s.uid_owner || '/'
        WHERE m.id IS NULL""",
    )
    assert rows == []
    parents = q(
        conn,
        """SELECT c.id FROM oc_share c LEFT JOIN oc_share g
        ON g.id = c.parent AND g.share_type = 1 WHERE c.share_type = 2 AND g.id IS NULL""",
    )
    assert parents == []


def test_edge_cases_present(conn: sqlite3.Connection) -> None:
    def n(sql: str) -> int:
        return q(conn, sql)[0][0]

    now = OWNCLOUD_NOW
    assert n("SELECT COUNT(DISTINCT state) FROM oc_accounts") == 4
    for backend in (DB, LDAP):
        assert n(f"SELECT COUNT(*) FROM oc_accounts WHERE backend = '{backend}'") > 5
    for quota in ("'5 GB'", "'100 MB'", "'none'", "'default'", "'1073741824'", "'1.5 GB'"):
        assert n(f"SELECT COUNT(*) FROM oc_accounts WHERE quota = {quota}") > 0, quota
    assert n("SELECT COUNT(*) FROM oc_accounts WHERE quota IS NULL") > 0
    assert q(conn, "SELECT configvalue FROM oc_appconfig WHERE configkey='default_quota'") == [
        (APP_DEFAULT_QUOTA,)
    ]
    assert n(f"SELECT COUNT(*) FROM oc_accounts WHERE last_login = {now - TWO_WEEKS}") == 3
    assert n(f"SELECT COUNT(*) FROM oc_accounts WHERE last_login = {now - TWO_WEEKS - 1}") == 1
    assert n("SELECT COUNT(*) FROM oc_accounts WHERE last_login = 0") > 0
    assert n("SELECT MIN(last_login) FROM oc_accounts WHERE last_login > 0") == now - 400 * 86400
    assert (
        n("""SELECT COUNT(*) FROM oc_preferences WHERE appid='owncloud'
             AND configkey='isGuest' AND configvalue='1'""")
        == 4
    )
    assert n("SELECT COUNT(DISTINCT type) FROM oc_authtoken") == 2
    names = [r[0] for r in q(conn, "SELECT name FROM oc_authtoken")]
    for needle in ("mirall/", "ownCloud-android", "ownCloud-iOS", "Firefox/", "(none)"):
        assert any(needle in name for name in names), needle
    assert n(f"SELECT COUNT(*) FROM oc_authtoken WHERE uid = '{ORPHAN_TOKEN_UID}'") == 1
    assert (
        n("""SELECT COUNT(*) FROM oc_accounts WHERE last_login > 0
             AND user_id NOT IN (SELECT uid FROM oc_authtoken)""")
        > 0
    )
    ids = [r[0] for r in q(conn, "SELECT id FROM oc_storages")]
    assert sum(i.startswith("object::user:") for i in ids) == 2
    assert sum(i.startswith("home::") for i in ids) > 25
    assert "local::/var/owncloud/data/" in ids and "local::/var/owncloud/data/olduser/" in ids
    assert any(i.startswith("smb::") for i in ids) and any(i.startswith("shared::") for i in ids)
    assert sum(len(i) == 32 and ":" not in i for i in ids) == 1  # md5 of a >64-char id
    types = Counter(r[0] for r in q(conn, "SELECT share_type FROM oc_share"))
    assert set(types) == {0, 1, 2, 3, 4, 6, 7}
    assert n("SELECT COUNT(DISTINCT accepted) FROM oc_share") == 3
    assert n("SELECT COUNT(*) FROM oc_share WHERE share_type=3 AND share_with IS NOT NULL") > 0
    assert n("SELECT COUNT(*) FROM oc_share WHERE share_type=3 AND expiration IS NOT NULL") > 0
    assert (
        n("""SELECT COUNT(*) FROM oc_share s JOIN oc_preferences p ON p.userid = s.share_with
             AND p.configkey = 'isGuest' AND p.configvalue = '1' WHERE s.share_type=0""")
        > 0
    )
    # received-share mounts of another user's storage under /<uid>/files/Shared/
    assert n("SELECT COUNT(*) FROM oc_mounts WHERE mount_point LIKE '/%/files/Shared/%/'") > 5
    # an external storage with a 'files/' folder whose files must not be counted
    assert (
        n("""SELECT COUNT(*) FROM oc_filecache f JOIN oc_storages s ON s.numeric_id=f.storage
             WHERE s.id LIKE 'smb::%' AND f.path LIKE 'files/%'""")
        > 0
    )


def test_scale_multiplies_users(tmp_path: Path) -> None:
    rows = owncloud_rows(scale=3)
    uids = [a["user_id"] for a in rows["accounts"]]
    assert len(uids) == 3 * len(PROFILES) == len(set(uids))
    assert owncloud_rows(scale=3) == rows
    path = _build(tmp_path, "scaled.db", scale=2)
    con = sqlite3.connect(path)
    m = ref.system_metrics(con, OWNCLOUD_NOW, FREE)
    assert m["users"]["totalCount"] == 2 * len(PROFILES)
    assert m["users"]["activeUsersCount"] == 2 * 21
    con.close()


# --------------------------------------------------------------------------- reference


def test_computer_file_size() -> None:
    cfs = ref.computer_file_size
    assert cfs("5 GB") == 5368709120
    assert cfs("100 MB") == 104857600
    assert cfs("1.5 GB") == 1610612736
    assert cfs("1073741824") == 1073741824
    assert cfs("0 B") == 0
    assert cfs("10gb") == 10 * 1024**3
    assert cfs("2 k") == 2048
    assert cfs("5 GiB") == 5  # leftmost '([kmgtp]?b?)$' match is just 'b'
    assert cfs("5 foo") is False


def test_active_users_second_way(conn: sqlite3.Connection) -> None:
    m = ref.system_metrics(conn, OWNCLOUD_NOW, FREE)
    logins = dict(q(conn, "SELECT user_id, last_login FROM oc_accounts"))
    active = {u for u, t in logins.items() if t >= OWNCLOUD_NOW - TWO_WEEKS}
    assert m["users"]["activeUsersCount"] == len(active) == 21
    assert {"erin", "p.rossi", "li.wei@supplier.example"} <= active  # exactly on the boundary
    assert "frank" not in active  # one second too old
    assert m["users"]["totalCount"] == len(logins) == 40
    tokens = {r[0] for r in q(conn, "SELECT uid FROM oc_authtoken")}
    assert m["users"]["concurrentUsersCount"] == len(tokens)
    assert ORPHAN_TOKEN_UID in tokens and ORPHAN_TOKEN_UID not in logins


def _home_mounts(conn: sqlite3.Connection) -> list[int]:
    """The storages mounted by the user they are the home of, once per such mount."""
    sids = dict(q(conn, "SELECT numeric_id, id FROM oc_storages"))
    return [storage for storage, uid in q(conn, "SELECT storage_id, user_id FROM oc_mounts")
            if sids[storage].endswith(f"::{uid}") or sids[storage] == f"object::user:{uid}"]


def _python_file_counts(conn: sqlite3.Connection, directory: int) -> tuple[int, Counter[int]]:
    """Files under 'files/' of home storages, with the app's join multiplicity."""
    per_storage: Counter[int] = Counter()
    for storage, path, mimetype in q(conn, "SELECT storage, path, mimetype FROM oc_filecache"):
        if path.startswith("files/") and mimetype != directory:
            per_storage[storage] += 1
    return sum(per_storage[storage] for storage in _home_mounts(conn)), per_storage


def test_files_and_storage_second_way(conn: sqlite3.Connection) -> None:
    m = ref.system_metrics(conn, OWNCLOUD_NOW, FREE)
    total, _ = _python_file_counts(conn, dir_id(conn))
    assert m["files"]["totalFilesCount"] == total > 0
    roots = dict(q(conn, "SELECT storage, size FROM oc_filecache WHERE parent = -1"))
    homes = _home_mounts(conn)
    used = sum(roots[storage] for storage in homes if roots.get(storage, 0) > 0)
    files = Counter()
    for storage, path, mimetype, size in q(conn, "SELECT storage, path, mimetype, size "
                                                 "FROM oc_filecache"):
        if path.startswith("files/") and mimetype != 2:
            files[storage] += size
    used_quota = sum(files[storage] for storage in homes)
    assert -1 in roots.values() and 0 in roots.values()
    assert 0 < used < sum(size for size in roots.values() if size > 0)  # other storages left out
    assert m["files"]["storage"] == {
        "used": used,
        "usedQuota": used_quota,
        "usedOther": used - used_quota,
        "total": FREE + used,
        "free": FREE,
        "relative": 0,
    }
    # objectstore override and the negative clamp
    s = ref.storage_totals(conn, FREE, available_storage=used + 10)
    assert (s["free"], s["total"]) == (10, used + 10)
    assert ref.storage_totals(conn, -2)["free"] == 0


def test_shares_second_way(conn: sqlite3.Connection) -> None:
    m = ref.system_metrics(conn, OWNCLOUD_NOW, FREE)["shares"]
    rows = q(conn, "SELECT share_type, share_with FROM oc_share")
    guests = {
        r[0]
        for r in q(
            conn,
            """SELECT userid FROM oc_preferences WHERE appid='owncloud'
                                     AND configkey='isGuest' AND configvalue='1'""",
        )
    }
    by_type = Counter(t for t, _ in rows)
    guest = sum(1 for t, w in rows if t == 0 and w in guests)
    assert m == {
        "userShareCount": by_type[0] - guest,
        "groupShareCount": by_type[1],
        "linkShareCount": by_type[3],
        "guestShareCount": guest,
        "federatedShareCount": by_type[6],
    }
    assert guest > 0 and by_type[2] > 0 and by_type[4] > 0 and by_type[7] > 0


def test_directory_mimetype_resolved_by_name(tmp_path: Path, owncloud_now: float) -> None:
    """On a copy of the real database with the folder mimetype moved off id 2, the reference
    finds it by name; the app's own literal 2 (FilesMetrics, QuotaMetrics) miscounts."""
    path = tmp_path / "moved.db"
    shutil.copyfile(OWNCLOUD_DB, path)
    variant = sqlite3.connect(path)
    with variant:
        moved = q(variant, "SELECT MAX(id) + 1 FROM oc_mimetypes")[0][0]
        variant.execute("UPDATE oc_mimetypes SET id = ? WHERE id = 2", (moved,))
        variant.execute("UPDATE oc_filecache SET mimetype = ? WHERE mimetype = 2", (moved,))
    app = read_json(OWNCLOUD / "metrics_api.json")["ocs"]["data"]
    now, total = int(owncloud_now), app["files"]["storage"]["total"]
    metrics = ref.system_metrics(variant, now, 0, available_storage=total)
    storage = metrics["files"].pop("storage")
    assert metrics["files"]["totalFilesCount"] == app["files"]["totalFilesCount"]
    quota_keys = ("usedQuota", "usedOther")
    assert {k: v for k, v in storage.items() if k not in quota_keys} == \
        {k: v for k, v in app["files"]["storage"].items() if k not in quota_keys}
    assert ref.user_data(variant, 0, available_storage=total) == app["userData"]
    # With the literal 2 folders count as files, and their sizes as used quota.
    literal = ref.total_files_count(variant, literal_directory_mimetype=True)
    assert literal > app["files"]["totalFilesCount"]
    assert storage["usedQuota"] > app["files"]["storage"]["usedQuota"]
    variant.close()

def test_user_data_membership(conn: sqlite3.Connection) -> None:
    data = ref.user_data(conn, FREE)
    sids = dict(q(conn, "SELECT numeric_id, id FROM oc_storages"))
    with_files = {r[0] for r in q(conn, "SELECT storage FROM oc_filecache WHERE path='files'")}
    expected = set()
    for storage, uid, mp in q(conn, "SELECT storage_id, user_id, mount_point FROM oc_mounts"):
        sid = sids[storage]
        if (
            mp == f"/{uid}/"
            and storage in with_files
            and (sid.endswith(f"::{uid}") or sid == f"object::user:{uid}")
        ):
            expected.add(uid)
    assert set(data) == expected
    missing = {p.uid for p in PROFILES} - set(data)
    assert missing == {
        "newhire",
        "intern",
        "l.kowalski",
        "v.old",
        "pending.guest@external.example",
        "olduser",
        LONG_UID,
    }
    assert "mallory" in data  # state 3 is not filtered


def test_user_data_values(conn: sqlite3.Connection) -> None:
    data = ref.user_data(conn, FREE)
    system_total = ref.system_metrics(conn, OWNCLOUD_NOW, FREE)["files"]["storage"]["total"]
    totals = {u: d["quota"]["total"] for u, d in data.items()}
    assert totals["alice"] == 5 * 1024**3
    assert totals["bob"] == totals["carol"] == 2 * 1024**3  # 'default' and NULL
    assert totals["admin"] == totals["t.yamamoto"] == system_total  # 'none'
    assert totals["erin"] == 1073741824 and totals["grace"] == 1610612736
    assert totals["anna.meyer@partner-firm.example"] == 0
    assert data["dave"]["quota"]["free"] < 0
    for d in data.values():
        q_ = d["quota"]
        assert q_["free"] == q_["total"] - q_["used"] and q_["relative"] == 0
    assert data["alice"]["backend"] == "Database"
    assert data["erin"]["backend"] == "LDAP"
    assert data["anna.meyer@partner-firm.example"]["backend"] == "Database (Guest)"
    assert data["tom@contractor.example"]["backend"] == "Database"  # isGuest = '0'
    raw = ref.user_data(conn, FREE, backend_names={})
    assert raw["erin"]["backend"] == LDAP
    assert data["r.garcia"]["shares"]["userShareCount"] == -1  # 1 type-0 minus 2 type-4
    # used = size of 'files'; u.weber's root is unscanned (-1) but 'files' is not
    used = dict(
        q(
            conn,
            """SELECT m.user_id, f.size FROM oc_mounts m JOIN oc_filecache f
        ON f.storage = m.storage_id AND f.path = 'files'
        WHERE m.mount_point = '/' || m.user_id || '/'""",
        )
    )
    assert all(d["quota"]["used"] == used[u] for u, d in data.items())
    assert data["u.weber"]["quota"]["used"] > 0


def test_user_data_second_way(conn: sqlite3.Connection) -> None:
    data = ref.user_data(conn, FREE)
    sessions = Counter(r[0] for r in q(conn, "SELECT uid FROM oc_authtoken"))
    shares = Counter(q(conn, "SELECT uid_owner, share_type FROM oc_share"))
    _, per_storage = _python_file_counts(conn, dir_id(conn))
    home = dict(
        q(conn, "SELECT user_id, storage_id FROM oc_mounts WHERE mount_point = '/'||user_id||'/'")
    )
    logins = dict(q(conn, "SELECT user_id, last_login FROM oc_accounts"))
    for uid, d in data.items():
        assert d["activeSessions"] == sessions[uid]
        assert d["lastLogin"] == logins[uid]
        assert d["files"]["totalFiles"] == per_storage[home[uid]]
        assert d["shares"] == {
            "userShareCount": shares[(uid, 0)] - shares[(uid, 4)],
            "groupShareCount": shares[(uid, 1)],
            "linkShareCount": shares[(uid, 3)],
            "guestShareCount": shares[(uid, 4)],
            "federatedShareCount": shares[(uid, 6)],
        }
    # some users sit in userData with no sessions at all
    assert any(d["activeSessions"] == 0 for d in data.values())


def test_csv(conn: sqlite3.Connection) -> None:
    rows = ref.users_csv_rows(conn, FREE)
    data = ref.user_data(conn, FREE)
    assert [r["userId"] for r in rows] == sorted(data)
    assert all(tuple(r) == ref.USERS_CSV_HEADER for r in rows)
    garcia = next(r for r in rows if r["userId"] == "r.garcia")
    assert (garcia["sharesUser"], garcia["sharesGuest"]) == (1, 2)  # raw, not subtracted
    text = ref.render_csv(rows)
    assert text.splitlines()[0] == ",".join(ref.USERS_CSV_HEADER)
    assert '"Müller, Hans"' in text and '"Olivia ""Liv"" Brown"' in text
    assert '"Anna Meyer"' in text  # fputcsv encloses fields with a space
    back = ref.parse_csv(text)
    assert [b["userDisplayName"] for b in back] == [r["userDisplayName"] for r in rows]
    wide = ref.users_csv_rows(conn, FREE)
    assert list(wide[0])[-1] == "userBackend" and wide[0]["userBackend"] in (DB, LDAP)
    sysrow = ref.system_csv_row(conn, OWNCLOUD_NOW, FREE)
    m = ref.system_metrics(conn, OWNCLOUD_NOW, FREE)
    assert tuple(sysrow) == ref.SYSTEM_CSV_HEADER
    assert sysrow["usedStorage"] == m["files"]["storage"]["used"]
    assert sysrow["userShares"] == m["shares"]["userShareCount"]
    assert ref.render_csv([sysrow]).count("\n") == 2


def test_sqlalchemy_connection_matches(db_path: Path, conn: sqlite3.Connection) -> None:
    engine = create_engine(f"sqlite:///{db_path}")
    with engine.connect() as sa:
        assert ref.system_metrics(sa, OWNCLOUD_NOW, FREE) == ref.system_metrics(
            conn, OWNCLOUD_NOW, FREE
        )
        assert ref.user_data(sa, FREE) == ref.user_data(conn, FREE)
    engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_reference_portable_to_servers(
    backend: str,
    db_path: Path,
    conn: sqlite3.Connection,
    server_database: Callable[[str, str, Path], str],
) -> None:
    """The same answers on PostgreSQL ('||') and MariaDB (CONCAT) as on SQLite."""
    url = server_database(backend, "owncloud_reference", db_path)
    engine = create_engine(url)
    try:
        with engine.connect() as sa:
            assert ref.system_metrics(sa, OWNCLOUD_NOW, FREE) == ref.system_metrics(
                conn, OWNCLOUD_NOW, FREE
            )
            assert ref.user_data(sa, FREE) == ref.user_data(conn, FREE)
    finally:
        engine.dispose()
