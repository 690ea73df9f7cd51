"""The demo database is a consistent Nextcloud 24 database with activity in every window."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.demo_data import DEMO_USERS, build_demo_database
from tests.conftest import NEXTCLOUD_DB

NOW = 1_795_424_683  # any instant works; this is the one the real Nextcloud fixture was taken at
WINDOWS = {"5m": 300, "1h": 3600, "1d": 86400, "7d": 604800, "30d": 2592000, "90d": 7776000,
           "365d": 31536000}
TABLES = ("oc_users", "oc_preferences", "oc_appconfig", "oc_accounts", "oc_authtoken", "oc_share",
          "oc_share_external", "oc_filecache", "oc_storages", "oc_mounts", "oc_mimetypes",
          "oc_groups", "oc_group_user")


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


@pytest.fixture(scope="module")
def demo_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "nextcloud.db"
    build_demo_database(path, now=NOW)
    return path


@pytest.fixture()
def db(demo_path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect(demo_path)
    yield conn
    conn.close()


def scalar(db: sqlite3.Connection, sql: str, *args: object) -> int:
    return db.execute(sql, args).fetchone()[0]


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with connect(path) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in TABLES}


def test_default_size(db):
    assert scalar(db, "SELECT COUNT(*) FROM oc_users") == DEMO_USERS == 400
    assert 1000 < scalar(db, "SELECT COUNT(*) FROM oc_filecache") < 50_000
    assert 60 <= scalar(db, "SELECT COUNT(*) FROM oc_share") <= 200
    assert 300 <= scalar(db, "SELECT COUNT(*) FROM oc_authtoken") <= 800


def test_schema_is_nextclouds_own(db):
    """Every table and index is created by exactly the statement Nextcloud 24 used (SQLite's own
    tables, sqlite_sequence and the planner's sqlite_stat1, aside)."""
    real = connect(NEXTCLOUD_DB)
    try:
        ours = db.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                          "AND name NOT LIKE 'sqlite!_%' ESCAPE '!'").fetchall()
        assert {name for kind, name, _ in ours if kind == "table"} == set(TABLES)
        for kind, name, sql in ours:
            assert real.execute("SELECT sql FROM sqlite_master WHERE type = ? AND name = ?",
                                (kind, name)).fetchone() == (sql,), name
        for table in TABLES:
            indexes = {r[0] for r in real.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                "AND sql IS NOT NULL", (table,))}
            assert indexes <= {name for _, name, _ in ours}, table
    finally:
        real.close()


def test_folder_sizes_are_sums_of_children(db):
    wrong = db.execute("""
        SELECT p.fileid, p.path, p.size, COALESCE(SUM(c.size), 0)
        FROM oc_filecache p
        JOIN oc_mimetypes m ON m.id = p.mimetype AND m.mimetype = 'httpd/unix-directory'
        LEFT JOIN oc_filecache c ON c.parent = p.fileid
        GROUP BY p.fileid HAVING p.size != COALESCE(SUM(c.size), 0)""").fetchall()
    assert wrong == []


def test_filecache_tree_is_consistent(db):
    rows = db.execute("SELECT fileid, storage, path, path_hash, parent, name, mimetype, mimepart "
                      "FROM oc_filecache").fetchall()
    by_id = {r[0]: r for r in rows}
    mimetypes = dict(db.execute("SELECT id, mimetype FROM oc_mimetypes"))
    for fileid, storage, path, path_hash, parent, name, mime, part in rows:
        assert path_hash == hashlib.md5(path.encode()).hexdigest()
        assert mimetypes[part] == mimetypes[mime].split("/")[0]
        if path == "":
            assert parent == -1 and name == ""
            continue
        up = by_id[parent]
        assert up[1] == storage and parent < fileid
        assert path == (f"{up[2]}/{name}" if up[2] else name)
    # one root per storage, and every storage row is used
    assert scalar(db, "SELECT COUNT(*) FROM oc_filecache WHERE parent = -1") == \
        scalar(db, "SELECT COUNT(*) FROM oc_storages")


def test_content_kinds(db):
    def count(like: str) -> int:
        return scalar(db, "SELECT COUNT(*) FROM oc_filecache WHERE path LIKE ? ESCAPE '\\'",
                      like)

    for prefix in ("files/%", "files_versions/%", "files_trashbin/files/%", "thumbnails/%",
                   "appdata\\_%/avatar/%", "appdata\\_%/preview/%"):
        assert count(prefix) > 0, prefix
    assert count("cache") == count("files")  # every home has both
    assert scalar(db, "SELECT COUNT(*) FROM oc_storages WHERE id = ?",
                  "local::/var/www/nextcloud/data/") == 1
    kinds = {m for (m,) in db.execute("SELECT DISTINCT m.mimetype FROM oc_filecache f "
                                      "JOIN oc_mimetypes m ON m.id = f.mimetype")}
    assert {"httpd/unix-directory", "image/jpeg", "application/pdf", "video/mp4",
            "text/markdown"} <= kinds


def test_every_user_who_logged_in_has_a_home(db):
    users = db.execute("""
        SELECT u.uid, p.configvalue, s.numeric_id, m.root_id, m.mount_provider_class, f.fileid,
               r.fileid
        FROM oc_users u
        LEFT JOIN oc_preferences p
          ON p.userid = u.uid AND p.appid = 'login' AND p.configkey = 'lastLogin'
        LEFT JOIN oc_storages s ON s.id = 'home::' || u.uid
        LEFT JOIN oc_mounts m ON m.user_id = u.uid AND m.mount_point = '/' || u.uid || '/'
        LEFT JOIN oc_filecache f ON f.storage = s.numeric_id AND f.path = 'files'
        LEFT JOIN oc_filecache r ON r.storage = s.numeric_id AND r.path = ''""").fetchall()
    never = 0
    for uid, last_login, storage, mount_root, provider, files, root in users:
        if last_login is None:
            never += 1
            assert storage is None and mount_root is None, uid
            continue
        assert int(last_login) <= NOW
        assert storage is not None and files is not None, uid
        assert mount_root == root and provider == "OC\\Files\\Mount\\LocalHomeMountProvider", uid
    assert 0 < never < len(users) / 4


def test_active_users_grow_with_the_window(db):
    def active(seconds: int) -> int:
        return scalar(db, "SELECT COUNT(*) FROM oc_preferences WHERE appid = 'login' "
                          "AND configkey = 'lastLogin' AND CAST(configvalue AS INTEGER) >= ?",
                      NOW - seconds)

    counts = [active(s) for s in WINDOWS.values()]
    assert counts[0] > 0
    assert counts == sorted(set(counts)), dict(zip(WINDOWS, counts, strict=True))
    ever = scalar(db, "SELECT COUNT(*) FROM oc_preferences WHERE configkey = 'lastLogin'")
    assert counts[-1] < ever  # some last logged in more than a year ago
    # skewed like a real instance: far fewer active today than this year
    assert counts[2] < counts[-1] / 2


def test_sessions(db):
    by_type = dict(db.execute("SELECT type, COUNT(*) FROM oc_authtoken GROUP BY type"))
    assert by_type[0] > 0 and by_type[1] > 0
    assert scalar(db, "SELECT COUNT(*) FROM oc_authtoken WHERE type = 0 AND remember = 1") > 0
    assert scalar(db, "SELECT COUNT(*) FROM oc_authtoken WHERE type = 1 AND remember = 1") == 0
    names = [n for (n,) in db.execute("SELECT name FROM oc_authtoken")]
    for client in ("mirall/3.", "Nextcloud-android/", "Nextcloud-iOS/", "DAVx5/", "rclone/",
                   "Firefox/", "Chrome/"):
        assert any(client in n for n in names), client
    assert all(len(n) <= 128 for n in names)
    # browser remember-me tokens expire after 15 days of inactivity
    assert scalar(db, "SELECT COUNT(*) FROM oc_authtoken WHERE type = 0 AND last_activity < ?",
                  NOW - 15 * 86400) == 0
    # sessions never outlive the user's last login, and only users who logged in have them
    assert scalar(db, """SELECT COUNT(*) FROM oc_authtoken t LEFT JOIN oc_preferences p
                         ON p.userid = t.uid AND p.appid = 'login' AND p.configkey = 'lastLogin'
                         WHERE p.configvalue IS NULL
                            OR t.last_activity > CAST(p.configvalue AS INTEGER)""") == 0
    recent = scalar(db, "SELECT COUNT(DISTINCT uid) FROM oc_authtoken WHERE last_activity >= ?",
                    NOW - 3600)
    assert recent > 0


def test_every_share_type(db):
    by_type = dict(db.execute("SELECT share_type, COUNT(*) FROM oc_share GROUP BY share_type"))
    for share_type in (0, 1, 2, 3, 4, 6, 7, 10, 12):
        assert by_type.get(share_type, 0) > 0, share_type
    assert scalar(db, "SELECT COUNT(*) FROM oc_share_external") > 0
    links = db.execute("SELECT COUNT(*), COUNT(password), COUNT(expiration) FROM oc_share "
                       "WHERE share_type = 3").fetchone()
    assert 0 < links[1] < links[0] and 0 < links[2] < links[0]
    # shares point at files of their owner's home storage
    assert scalar(db, """SELECT COUNT(*) FROM oc_share sh
                         LEFT JOIN oc_filecache f ON f.fileid = sh.file_source
                         LEFT JOIN oc_storages s ON s.numeric_id = f.storage
                         WHERE s.id IS NOT 'home::' || sh.uid_owner""") == 0


def test_group_shares_have_one_row_per_member(db):
    for share_id, gid, owner in db.execute(
            "SELECT id, share_with, uid_owner FROM oc_share WHERE share_type = 1"):
        members = {u for (u,) in db.execute("SELECT uid FROM oc_group_user WHERE gid = ?",
                                            (gid,))}
        rows = [u for (u,) in db.execute(
            "SELECT share_with FROM oc_share WHERE share_type = 2 AND parent = ?", (share_id,))]
        assert sorted(rows) == sorted(members) and owner in members
    assert scalar(db, "SELECT COUNT(*) FROM oc_share c LEFT JOIN oc_share p ON p.id = c.parent "
                      "WHERE c.share_type = 2 AND p.share_type IS NOT 1") == 0


def test_users_groups_and_quotas(db):
    assert scalar(db, "SELECT COUNT(*) FROM oc_preferences WHERE appid = 'core' "
                      "AND configkey = 'enabled' AND configvalue = 'false'") > 0
    assert ("admin",) in db.execute("SELECT uid FROM oc_group_user WHERE gid = 'admin'")
    assert scalar(db, "SELECT COUNT(*) FROM oc_groups") >= 5
    assert db.execute("SELECT configvalue FROM oc_appconfig WHERE appid = 'files' "
                      "AND configkey = 'default_quota'").fetchone() == ("5 GB",)
    quotas = {q for (q,) in db.execute("SELECT configvalue FROM oc_preferences "
                                       "WHERE appid = 'files' AND configkey = 'quota'")}
    assert {"none", "default", "1 GB", "500 MB"} <= quotas

    def limit(quota: str | None) -> int | None:
        quota = "5 GB" if quota in (None, "default") else quota
        if quota == "none":
            return None
        number, unit = quota.split()
        return int(float(number) * 1024 ** {"MB": 2, "GB": 3}[unit])

    usage = db.execute("""
        SELECT f.size, q.configvalue FROM oc_users u
        JOIN oc_storages s ON s.id = 'home::' || u.uid
        JOIN oc_filecache f ON f.storage = s.numeric_id AND f.path = 'files'
        LEFT JOIN oc_preferences q
          ON q.userid = u.uid AND q.appid = 'files' AND q.configkey = 'quota'""").fetchall()
    ratios = [used / limit(q) for used, q in usage if limit(q)]
    assert any(0.85 <= r <= 1 for r in ratios) and any(r > 1 for r in ratios)
    sizes = sorted(used for used, _ in usage)
    assert sizes[-1] > 1024**3  # a few heavy users with gigabytes
    assert sizes[len(sizes) // 2] < 100 * 1024**2  # most keep little more than the skeleton


def test_serverinfo_cache_matches(db):
    cached = dict(db.execute("SELECT configkey, configvalue FROM oc_appconfig "
                             "WHERE appid = 'serverinfo' AND configkey LIKE 'cached_count_%'"))
    assert int(cached["cached_count_filecache"]) == scalar(
        db, "SELECT COUNT(*) FROM oc_filecache "
            "WHERE storage IN (SELECT numeric_id FROM oc_storages)")
    assert int(cached["cached_count_storages"]) == scalar(db, "SELECT COUNT(*) FROM oc_storages")


def test_deterministic(demo_path, tmp_path):
    again = tmp_path / "again.db"
    build_demo_database(again, now=NOW, seed=7)
    assert dump(again) == dump(demo_path)
    other = tmp_path / "other.db"
    build_demo_database(other, now=NOW, seed=8)
    assert dump(other)["oc_users"] != dump(demo_path)["oc_users"]


def test_replaces_an_existing_file(tmp_path):
    path = tmp_path / "nextcloud.db"
    path.write_text("not a database")
    build_demo_database(str(path), now=NOW, users=20)
    with connect(path) as conn:
        assert scalar(conn, "SELECT COUNT(*) FROM oc_users") == 20
    assert [p.name for p in tmp_path.iterdir()] == ["nextcloud.db"]


@pytest.mark.parametrize("users", [1, 2, 3, 9, 40])
def test_small_instances(tmp_path, users):
    path = tmp_path / "small.db"
    build_demo_database(path, now=NOW, users=users)
    with connect(path) as conn:
        assert scalar(conn, "SELECT COUNT(*) FROM oc_users") == users
        assert scalar(conn, "SELECT COUNT(*) FROM oc_preferences WHERE configkey = 'lastLogin' "
                            "AND CAST(configvalue AS INTEGER) >= ?", NOW - 300) >= 1


def test_rejects_no_users(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        build_demo_database(tmp_path / "x.db", now=NOW, users=0)
