"""Nothing a config says makes the exporter write to the platform database: its SQL is held to one
reading statement, every session is read-only whatever a statement did to it, SQLite lets
statements only read, and the history store may not live in the platform database under any
spelling. Each attack here wrote to, or dropped tables in, the platform database before."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from exporter.config import ConfigError, same_database
from exporter.db import Database
from exporter.readonly import statement_problem
from exporter.runner import Runner
from tests.conftest import NEXTCLOUD_DB, ROOT, make_config

READING = ["SELECT 1", "select 1;", "  WITH t AS (SELECT 1 AS n) SELECT n FROM t", "VALUES (1)",
           "(SELECT 1) UNION (SELECT 2)", "-- why\nSELECT 1", "/* why */ SELECT 1"]
NOT_READING = {
    "a second statement": "SELECT 1; DROP TABLE oc_users",
    "a subquery broken out of": "SELECT 1 AS n) AS q LIMIT 0; CREATE TABLE t (n INT); SELECT (1",
    "a ';' in a literal": "SELECT ';' AS n",
    "ATTACH": "ATTACH DATABASE 'file:x.db' AS w",
    "a session SET": "SET SESSION TRANSACTION READ WRITE",
    "DDL": "CREATE TABLE t (n INT)",
    "a write": "DELETE FROM oc_users",
    "PRAGMA": "PRAGMA writable_schema = ON",
    "a commented write": "/* SELECT */ DELETE FROM oc_users",
    "a MySQL executable comment": "SELECT 1 /*! , (SELECT 2) */",
}


@pytest.mark.parametrize("sql", READING)
def test_one_reading_statement_is_accepted(sql):
    assert statement_problem(sql) is None


@pytest.mark.parametrize("sql", NOT_READING.values(), ids=NOT_READING.keys())
def test_anything_else_is_refused(sql):
    assert statement_problem(sql)


def copy_of_nextcloud(tmp_path: Path) -> Path:
    db = tmp_path / "nextcloud.db"
    shutil.copyfile(NEXTCLOUD_DB, db)
    return db


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master "
                                               "WHERE type = 'table'")}


def custom_query(name: str, sql: str) -> dict:
    return {"name": name, "sql": sql, "interval": "1h", "timeout": "20s",
            "metrics": [{"name": f"{name}_n", "help": "n.", "value": "n"}]}


def test_every_place_a_config_gives_sql_refuses_a_second_statement_by_its_yaml_path(tmp_path):
    url = f"sqlite:///{copy_of_nextcloud(tmp_path)}"
    escape = "SELECT 1 AS n; DROP TABLE oc_users"
    with pytest.raises(ConfigError) as refused:
        make_config(url, "custom", database={"relations": {"users": escape}},
                    custom_metrics=[custom_query("q", escape)])
    paths = {problem.split(":")[0] for problem in refused.value.problems}
    assert {"database.relations.users", "custom_metrics[0].sql"} <= paths


def test_a_query_exporter_file_cannot_attach_and_drop_a_platform_table(tmp_path):
    db = copy_of_nextcloud(tmp_path)
    config = tmp_path / "qe.yaml"
    config.write_text(f"""\
databases:
  nc: {{dsn: "sqlite:///{db}"}}
metrics:
  m_a: {{type: gauge, description: a}}
  m_b: {{type: gauge, description: b}}
queries:
  attach: {{databases: [nc], metrics: [m_a], sql: "ATTACH DATABASE 'file:{db}' AS w"}}
  drop: {{databases: [nc], metrics: [m_b], sql: "DROP TABLE w.oc_users"}}
""")
    done = subprocess.run([sys.executable, "-m", "exporter", "collect", "--config.file",
                           str(config)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "queries.attach.sql: must be a SELECT" in done.stderr
    assert "queries.drop.sql: must be a SELECT" in done.stderr
    assert "oc_users" in tables(db)


@pytest.mark.parametrize("statement", [
    "ATTACH DATABASE 'file:{db}' AS w", "PRAGMA user_version = 7", "CREATE TEMP TABLE t (n INT)",
    "INSERT INTO oc_storages (id, numeric_id) VALUES ('w', 9)"])
def test_a_sqlite_connection_only_reads_whatever_reaches_it(tmp_path, statement):
    db = copy_of_nextcloud(tmp_path)
    database = Database(make_config(f"sqlite:///{db}", "nextcloud").database)
    try:
        with database.connect(5) as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM oc_users")).scalar()
            with pytest.raises(DBAPIError, match="not authorized"):
                conn.exec_driver_sql(statement.format(db=db))
    finally:
        database.close()
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA user_version").fetchone() == (0,)
        assert check.execute("SELECT COUNT(*) FROM oc_storages WHERE id = 'w'").fetchone() == (0,)


def written(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT COUNT(*) FROM oc_storages "
                                     "WHERE id = 'written-by-a-query'")).scalar()
    finally:
        engine.dispose()


def test_a_select_that_turns_the_postgresql_default_off_cannot_make_a_later_query_write(
        server_database):
    """Both are one reading statement. The session's default is only a default: the exporter
    rolls back every transaction (which undoes the set_config) and starts each read-only."""
    url = server_database("postgresql", "readonly_set_config", NEXTCLOUD_DB)
    turn_off = ("SELECT COUNT(set_config('default_transaction_read_only', 'off', false)) AS n")
    write = ("WITH w AS (INSERT INTO oc_storages (id, numeric_id) VALUES "
             "('written-by-a-query', 999999) RETURNING 1) SELECT COUNT(*) AS n FROM w")
    runner = Runner(make_config(url, "nextcloud", custom_metrics=[
        custom_query("off", turn_off), custom_query("write", write)]))
    try:
        for _ in range(3):  # the same pooled connection each time
            runner.run("sql:off")
            snapshot = runner.run("sql:write")
    finally:
        runner.close()
    assert snapshot.collectors["sql:write"].state == "failed"
    assert "read-only transaction" in snapshot.collectors["sql:write"].last_error
    assert written(url) == 0


def test_a_mariadb_session_made_read_write_is_read_only_again_at_its_next_checkout(
        server_database):
    url = server_database("mariadb", "readonly_session", NEXTCLOUD_DB)
    database = Database(make_config(url, "nextcloud").database)
    try:
        with database.connect(5) as conn:  # whatever changed the session's mode
            conn.exec_driver_sql("SET SESSION TRANSACTION READ WRITE")
        with database.connect(5) as conn, pytest.raises(DBAPIError, match="READ ONLY"):
            conn.exec_driver_sql("INSERT INTO oc_storages (id, numeric_id) "
                                 "VALUES ('written-by-a-query', 999999)")
    finally:
        database.close()
    assert written(url) == 0


def test_history_in_the_platform_sqlite_file_written_as_a_uri_is_the_same_file(tmp_path):
    db = copy_of_nextcloud(tmp_path)
    assert same_database(f"sqlite:///{db}", f"sqlite:///file:{db}?uri=true")
    assert same_database(f"sqlite:///{db}", f"sqlite:///file://{db}?mode=rw")


@pytest.mark.parametrize("history", [
    "postgresql://u:p@localhost/other?dbname=nextcloud",  # psycopg's dbname wins
    "postgresql://u:p@db.example/nextcloud?host=localhost",  # libpq's host wins
    "postgresql://u:p@127.0.0.2/nextcloud",  # all of 127/8 is this machine
    "postgresql://u:p@localhost./nextcloud",  # the root label
])
def test_history_naming_the_platform_database_another_way_is_the_same_database(history):
    assert same_database("postgresql://u:p@localhost/nextcloud", history)


def test_another_database_on_the_same_server_is_not(tmp_path):
    assert not same_database("postgresql://u:p@localhost/nextcloud",
                             "postgresql://u:p@localhost/history")
    assert not same_database(f"sqlite:///{tmp_path / 'a.db'}",
                             f"sqlite:///file:{tmp_path / 'b.db'}?uri=true")
