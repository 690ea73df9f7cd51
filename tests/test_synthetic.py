"""The pieces every synthetic database is made of: the splitter, apportioning, activity bands,
numbered names, and the writer that streams rows into SQLite in batches."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from contextlib import closing

import pytest

from exporter.nextcloud_data import NEXTCLOUD_SCHEMA
from exporter.synthetic import (
    ACTIVITY_BANDS,
    Dataset,
    apportion,
    last_activity,
    numbered_person,
    statements,
    table,
    write_sqlite,
)
from tests.conftest import NEXTCLOUD_DB

NOW = 1_795_424_683


def test_statements_are_the_real_schemas_one_by_one():
    """Nextcloud's schema splits into exactly the statements its sqlite_master holds, the
    oc_share one spanning two lines (its Doctrine comment ends a line) included."""
    with closing(sqlite3.connect(f"file:{NEXTCLOUD_DB}?mode=ro", uri=True)) as real:
        held = {sql for (sql,) in real.execute("SELECT sql FROM sqlite_master")}
    assert {statement.removesuffix(";") for statement in NEXTCLOUD_SCHEMA} <= held
    assert any("\n" in statement for statement in NEXTCLOUD_SCHEMA)
    assert statements("SELECT ';';\nSELECT 2;\n") == ("SELECT ';';", "SELECT 2;")


@pytest.mark.parametrize(("total", "weights"), [
    (100, [3, 4, 12, 15, 17, 17, 19, 5, 8]), (7, [1.5, 0.1, 0.1, 9.0]), (10_000, [0.3] * 999)])
def test_apportion_rounds_each_share_down_or_up(total, weights):
    counts = apportion(total, weights, random.Random(1))
    whole = sum(weights)
    for count, weight in zip(counts, weights, strict=True):
        assert int(total * weight / whole) <= count <= int(total * weight / whole) + 1
    assert abs(sum(counts) - total) <= len(weights)


def test_apportion_keeps_the_total_on_average():
    totals = [sum(apportion(50, [0.5] * 30, random.Random(seed))) for seed in range(200)]
    assert abs(sum(totals) / len(totals) - 50) < 1


def test_last_activity_falls_in_the_bands_and_heavy_users_are_more_recent():
    rng = random.Random(3)
    oldest = max(band[1] for band, _ in ACTIVITY_BANDS if band)
    draws = [last_activity(rng, NOW) for _ in range(20_000)]
    never = draws.count(0) / len(draws)
    assert 0.08 < never < 0.12  # the None band's 10 %
    assert all(NOW - oldest <= t < NOW for t in draws if t)
    heavy = [last_activity(rng, NOW, weight=5.0) for _ in range(20_000)]
    assert heavy.count(0) < draws.count(0) / 5  # two draws: never only if both are
    assert sorted(heavy)[len(heavy) // 2] > sorted(draws)[len(draws) // 2]


def test_numbered_accounts_cycle_through_names():
    assert numbered_person(0) == ("anna", "anderson")
    assert numbered_person(1) == ("ben", "anderson")
    assert numbered_person(30) == ("anna", "becker")
    assert len({numbered_person(i) for i in range(750)}) == 750
    assert numbered_person(750) == numbered_person(0)


def test_write_sqlite_replaces_the_file_and_builds_indexes_after_the_rows(tmp_path):
    path = tmp_path / "data.db"
    path.write_text("not a database")
    progress: list[int] = []
    dataset = Dataset(statements("CREATE TABLE t (a INTEGER);\nCREATE UNIQUE INDEX ta ON t (a);"),
                      (table("t", "a", lambda: [(n,) for n in range(5)]),))
    assert write_sqlite(path, dataset, batch=2, written=progress.append) == {"t": 5}
    assert progress == [2, 4, 5]
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT count(*) FROM t").fetchone() == (5,)
        assert db.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall() == [
            ("ta",)]
    assert [p.name for p in tmp_path.iterdir()] == ["data.db"]


def test_write_sqlite_pulls_rows_one_batch_at_a_time(tmp_path):
    """The writer never holds more than a batch: when a batch is written, the generator has
    made no row of the next."""
    made: list[int] = []
    pulled_when_written: list[int] = []

    def rows() -> Iterator[tuple[int]]:
        for n in range(10):
            made.append(n)
            yield (n,)

    dataset = Dataset(statements("CREATE TABLE t (a INTEGER);"), (table("t", "a", rows),))
    write_sqlite(tmp_path / "data.db", dataset, batch=3,
                 written=lambda done: pulled_when_written.append(len(made) - done))
    assert pulled_when_written == [0, 0, 0, 0]


def test_write_sqlite_leaves_the_old_file_when_a_row_fails(tmp_path):
    path = tmp_path / "data.db"
    path.write_text("old")
    dataset = Dataset(statements("CREATE TABLE t (a INTEGER NOT NULL);"),
                      (table("t", "a", lambda: [(1,), (None,)]),))
    with pytest.raises(sqlite3.IntegrityError):
        write_sqlite(path, dataset)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.db"]
