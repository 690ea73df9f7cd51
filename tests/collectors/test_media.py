"""The media collector's edges, which the Synapse fixture does not all have: rows without a user,
users whose uploads are all pending, and platforms without media."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from exporter.runner import Runner
from tests.conftest import NEXTCLOUD_DB, make_config, run_collector

MIB = 1024**2


def test_pending_uploads_and_rows_without_a_user(tmp_path):
    path = tmp_path / "homeserver.db"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE local_media_repository (media_id TEXT, user_id TEXT, "
                   "media_length INTEGER, created_ts BIGINT)")
        db.execute("CREATE TABLE profiles (full_user_id TEXT, displayname TEXT)")
        db.execute("CREATE TABLE schema_version (version INTEGER)")
        db.execute("INSERT INTO schema_version VALUES (94)")
        db.executemany("INSERT INTO local_media_repository VALUES (?, ?, ?, 0)", [
            ("a", "@big:x", 3 * MIB), ("b", "@big:x", None),
            ("c", "@pending:x", None), ("d", "@empty:x", 0), ("e", None, 5)])
    snapshot, result = run_collector(f"sqlite:///{path}", "synapse", "media")
    metrics = {m.name: m for m in result.metrics}
    assert metrics["usage_media_files"].samples == (((), 5.0),)
    assert metrics["usage_media_bytes"].samples == (((), 3.0 * MIB + 5),)
    assert metrics["usage_media_pending_uploads"].samples == (((), 2.0),)
    # Attributed rows only; a user with nothing but pending uploads has no size (None), as in
    # Synapse's statistics, and counts as 0 bytes in the histogram.
    assert result.users == {"media_count": {"@big:x": 2, "@pending:x": 1, "@empty:x": 1},
                            "media_bytes": {"@big:x": 3 * MIB, "@pending:x": None,
                                            "@empty:x": 0}}
    histogram = metrics["usage_user_media_bytes"]
    assert dict(histogram.buckets)[MIB] == 2
    assert dict(histogram.buckets)[4 * MIB] == 3 == histogram.count
    assert histogram.sum == 3 * MIB
    assert snapshot.platform_version == "94"


def test_not_applicable_without_a_media_relation():
    runner = Runner(make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud"))
    try:
        status = runner.snapshot.collectors["media"]
    finally:
        runner.close()
    assert status.state == "not_applicable"
    assert status.last_error == "nextcloud has no media"
