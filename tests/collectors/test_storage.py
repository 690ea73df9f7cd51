"""The storage collector's sums and histograms over users equal what SQL computes from the same
rows, also at the edges the fixtures lack: a user with a quota and no home storage, a home
storage without a size, a quota of 0 or none, usage over the quota."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from tests.conftest import run_collector

GIB = 1024**3
HOMES = [("full", 3 * GIB, 10), ("over", 5 * GIB, 2), ("unsized", None, 1), ("free", 0, 0),
         ("unlimited", GIB, 4)]
QUOTAS = [("full", 3 * GIB), ("over", 4 * GIB), ("unsized", GIB), ("free", 10 * GIB),
          ("unlimited", None), ("zero", 0), ("homeless", 2 * GIB)]


def test_storage_histograms_equal_sql_over_the_same_rows(tmp_path):
    path = tmp_path / "app.db"
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE homes (user_id TEXT, used_bytes INTEGER, files INTEGER)")
        db.execute("CREATE TABLE quotas (user_id TEXT, quota_bytes INTEGER)")
        db.executemany("INSERT INTO homes VALUES (?, ?, ?)", HOMES)
        db.executemany("INSERT INTO quotas VALUES (?, ?)", QUOTAS)
    relations = {"home_storage": "SELECT * FROM homes", "quotas": "SELECT * FROM quotas",
                 "storage_roots": "SELECT used_bytes FROM homes"}
    _, result = run_collector(f"sqlite:///{path}", "custom", "storage",
                              database={"relations": relations})
    metrics = {m.name: m for m in result.metrics}
    used = metrics["usage_user_storage_used_bytes"]
    ratio = metrics["usage_user_quota_utilization_ratio"]
    with closing(sqlite3.connect(path)) as db:
        # The questions as SQL asks them (the collector's queries before it summarized the rows).
        assert db.execute("SELECT COUNT(*), SUM(used_bytes), SUM(files), "
                          "SUM(CASE WHEN used_bytes <= ? THEN 1 ELSE 0 END) FROM homes",
                          (GIB,)).fetchone() == (used.count, used.sum,
                                                 metrics["usage_files"].samples[0][1],
                                                 dict(used.buckets)[GIB])
        over_sql = """
            SELECT COUNT(*), SUM(CAST(COALESCE(h.used_bytes, 0) AS REAL) / q.quota_bytes),
                   SUM(CASE WHEN COALESCE(h.used_bytes, 0) > q.quota_bytes THEN 1 ELSE 0 END),
                   SUM(CASE WHEN CAST(COALESCE(h.used_bytes, 0) AS REAL) / q.quota_bytes <= 1.0
                       THEN 1 ELSE 0 END)
            FROM quotas q LEFT JOIN homes h ON h.user_id = q.user_id WHERE q.quota_bytes > 0"""
        assert db.execute(over_sql).fetchone() == (
            ratio.count, ratio.sum, metrics["usage_users_over_quota"].samples[0][1],
            dict(ratio.buckets)[1.0])
    assert (used.count, ratio.count) == (5, 5)  # every home; the quotas above 0
    assert metrics["usage_users_over_quota"].samples == (((), 1.0),)  # "over"
    assert result.users["quota_bytes"]["zero"] == 0
    assert result.users["used_bytes"]["unsized"] is None
