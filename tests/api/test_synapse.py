"""GET /_synapse/admin/v1/statistics/users/media over a real socket, on the real Synapse 1.163
database in SQLite, PostgreSQL and MariaDB: every answer Synapse gave (api_index.json) comes back
the same, from the snapshot and through a time-filtered database query alike, and filters the
captures do not cover equal Synapse's own SQL run on the SQLite fixture."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import pytest
from sqlalchemy import create_engine

from exporter import api
from exporter.api.synapse import MEDIA_STATISTICS, like
from exporter.config import ApiKey
from exporter.db import DatabaseUnavailable
from exporter.http import App, Context
from exporter.runner import Runner
from exporter.server import HttpServer
from tests.conftest import (
    API_KEY,
    BACKENDS,
    NEXTCLOUD_DB,
    SYNAPSE,
    fixture_copy,
    make_config,
    read_json,
    sqlite_execute,
)
from tests.copy_db import copy_tables

SYNAPSE_DB = fixture_copy(SYNAPSE / "homeserver.db")
NOW = read_json(SYNAPSE / "phone_home_stats.json")["now_ms"] / 1000
CAPTURES = [entry for entry in read_json(SYNAPSE / "api_index.json")["entries"]
            if entry["path"] == MEDIA_STATISTICS]
SINGLE = [entry for entry in CAPTURES if "paginated_limit" not in entry]
WALKS = [entry for entry in CAPTURES if "paginated_limit" in entry]
ANSWERED = [entry for entry in SINGLE if entry["status"] == 200]
MEDIA = read_json(SYNAPSE / "db_tables.json")["rows"]["local_media_repository"]
FIRST_MS, LAST_MS = min(m["created_ts"] for m in MEDIA), max(m["created_ts"] for m in MEDIA)
# Truthy bounds on the first and the last upload: nothing is left out if both are inclusive,
# and the answer must come from the database instead of the snapshot.
EVERYTHING = {"from_ts": str(FIRST_MS), "until_ts": str(LAST_MS)}
BEARER = {"Authorization": f"Bearer {API_KEY}"}


def capture_id(entry: dict[str, Any]) -> str:
    return entry["file"].removeprefix("api/media_stats__").removesuffix(".json")


def canonical(value: Any) -> str:
    """JSON text that tells 1 from 1.0 and true from 1, which == would not."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def get(base_url: str, query: dict[str, str] | list[tuple[str, str]],
        headers: dict[str, str] | None = None) -> tuple[int, Any]:
    url = f"{base_url}{MEDIA_STATISTICS}?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, headers=BEARER if headers is None else headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Content-Type"] == "application/json"
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        assert error.headers["Content-Type"] == "application/json"
        return error.code, json.loads(error.read())


def serve(runner: Runner, keys: tuple[ApiKey, ...] | None = None,
          read: Any = None) -> HttpServer:
    context = Context(lambda: runner.snapshot, runner.config.api_keys if keys is None else keys,
                      clock=runner.clock, read=runner.read if read is None else read)
    return HttpServer(App(context, api.routes(context)), "127.0.0.1", 0).start()


def synapse_sql(query: dict[str, str]) -> dict[str, Any]:
    """Synapse's answer: the SQL of its get_users_media_usage_paginate, verbatim, on the SQLite
    fixture, and its servlet's paging (research/synapse.md §1)."""
    start, limit = int(query.get("from", 0)), int(query.get("limit", 100))
    filters, args = [], []
    if query.get("search_term"):
        filters.append("(lmr.user_id LIKE ? OR displayname LIKE ?)")
        args += ["@%" + query["search_term"] + "%:%", "%" + query["search_term"] + "%"]
    if int(query.get("from_ts", 0)):
        filters.append("created_ts >= ?")
        args.append(int(query["from_ts"]))
    if int(query.get("until_ts", 0)):
        filters.append("created_ts <= ?")
        args.append(int(query["until_ts"]))
    where = "WHERE " + " AND ".join(filters) if filters else ""
    base = f"""FROM local_media_repository AS lmr
               LEFT JOIN profiles AS p ON lmr.user_id = p.full_user_id
               {where} GROUP BY lmr.user_id, displayname"""
    column = {"user_id": "lmr.user_id"}.get(query.get("order_by", "user_id"),
                                             query.get("order_by"))
    order = "DESC" if query.get("dir") == "b" else "ASC"
    with closing(sqlite3.connect(f"file:{SYNAPSE_DB}?mode=ro", uri=True)) as db:
        total = db.execute(f"SELECT COUNT(*) FROM (SELECT lmr.user_id {base})", args).fetchone()
        rows = db.execute(f"""SELECT lmr.user_id, displayname, COUNT(lmr.user_id) AS media_count,
                                     SUM(media_length) AS media_length {base}
                              ORDER BY {column} {order} LIMIT ? OFFSET ?""",
                          [*args, limit, start]).fetchall()
    body: dict[str, Any] = {
        "users": [dict(zip(("user_id", "displayname", "media_count", "media_length"), row,
                           strict=True)) for row in rows],
        "total": total[0]}
    if start + limit < total[0]:
        body["next_token"] = start + len(rows)
    return body


@pytest.fixture(scope="module", params=BACKENDS)
def runner(request: pytest.FixtureRequest,
           server_database: Callable[[str, str, Any], str]) -> Iterator[Runner]:
    url = (f"sqlite:///{SYNAPSE_DB}" if request.param == "sqlite"
           else server_database(request.param, "synapse_api", SYNAPSE_DB))
    runner = Runner(make_config(url, "synapse"), clock=lambda: NOW, keep_history=False)
    runner.run_all()
    assert runner.snapshot.failures == {}
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def base_url(runner: Runner) -> Iterator[str]:
    server = serve(runner)
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


@pytest.mark.parametrize("entry", SINGLE, ids=capture_id)
def test_every_capture_is_answered_as_synapse_did(base_url, entry):
    captured = read_json(SYNAPSE / entry["file"])
    headers = {} if captured["body"].get("errcode") in ("M_MISSING_TOKEN", "M_FORBIDDEN") \
        else None
    if captured["body"].get("errcode") == "M_FORBIDDEN":
        headers = {"Authorization": "Bearer not-one-of-our-keys-0123456789"}
    status, body = get(base_url, entry["query"], headers)
    assert (status, canonical(body)) == (entry["status"], canonical(captured["body"]))
    assert status == captured["status"]


@pytest.mark.parametrize("entry", ANSWERED, ids=capture_id)
def test_every_capture_is_answered_alike_through_the_database(base_url, entry):
    captured = read_json(SYNAPSE / entry["file"])["body"]
    status, body = get(base_url, {**entry["query"], **EVERYTHING})
    assert (status, canonical(body)) == (200, canonical(captured))


@pytest.mark.parametrize("window", [{}, EVERYTHING], ids=["snapshot", "database"])
@pytest.mark.parametrize("entry", WALKS, ids=capture_id)
def test_paginated_walks_follow_next_token_as_captured(base_url, entry, window):
    captured = read_json(SYNAPSE / entry["file"])
    pages, users, query = [], [], {**entry["query"], "limit": str(entry["paginated_limit"])}
    while True:
        status, body = get(base_url, {**query, **window})
        pages.append({"body": body, "query": dict(query), "status": status})
        users += body["users"]
        if "next_token" not in body:
            break
        query["from"] = str(body["next_token"])
    assert canonical(pages) == canonical(captured["pages"])
    assert canonical(users) == canonical(captured["merged_users"])
    assert len(pages) == captured["page_count"]


def test_synapses_own_sql_gives_every_captured_answer():
    """The oracle of the tests below, checked against the real server's answers."""
    for entry in ANSWERED:
        assert synapse_sql(entry["query"]) == read_json(SYNAPSE / entry["file"])["body"], entry


# Edges on real upload times: the very first, one in the middle (alice's and tie_b's phase
# boundary) and the very last, so each inclusive bound keeps a row that a strict one would drop.
WINDOWS = [{"from_ts": str(FIRST_MS), "until_ts": "1791547216536"},
           {"from_ts": "1793707233322", "until_ts": "1795176045243"},
           {"from_ts": "1795424618297"},
           {"until_ts": "1791547216273"},
           {"from_ts": str(LAST_MS + 1)}]


@pytest.mark.parametrize("order", [{"order_by": o, "dir": d} for o in
                                   ("user_id", "displayname", "media_count", "media_length")
                                   for d in ("f", "b")], ids=lambda o: "-".join(o.values()))
@pytest.mark.parametrize("window", WINDOWS, ids=lambda w: "-".join(w))
def test_time_windows_equal_synapses_sql(base_url, window, order):
    # A page, an empty page past the end, and none at all: the total is still counted.
    for paging in ({}, {"from": "1", "limit": "3"}, {"from": "1000"}, {"limit": "0"}):
        query = {**window, **order, **paging}
        status, body = get(base_url, query)
        assert (status, canonical(body)) == (200, canonical(synapse_sql(query))), query


# LIKE without ESCAPE: % and _ are wildcards; ASCII letters match in either case; the user id
# pattern needs a ':' after the term; display names are searched too.
SEARCHES = ["ali", "ALI", "_", "%", "test.local", ":", "@", "tie_", "e_e", "Z", "1+1", "'",
            "\\", "%:%", "bob", "nobody"]


@pytest.mark.parametrize("window", [{}, EVERYTHING], ids=["snapshot", "database"])
@pytest.mark.parametrize("term", SEARCHES)
def test_searches_equal_synapses_sql(base_url, term, window):
    for order in ({}, {"order_by": "media_length", "dir": "b"}, {"order_by": "displayname"}):
        query = {"search_term": term, **order}
        status, body = get(base_url, {**query, **window})
        assert (status, canonical(body)) == (200, canonical(synapse_sql(query))), query


def test_a_linguistic_postgresql_collation_changes_nothing(postgres_server):
    """Synapse wants the C locale on PostgreSQL; a database created with an ICU locale, which
    sorts "adam" before "Alice" and "+dave" among the d's, still answers as SQLite does."""
    engine = create_engine(postgres_server.admin_url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("DROP DATABASE IF EXISTS synapse_api_icu WITH (FORCE)")
            conn.exec_driver_sql("CREATE DATABASE synapse_api_icu TEMPLATE template0 ENCODING "
                                 "'UTF8' LOCALE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
    finally:
        engine.dispose()
    url = postgres_server.admin_url("synapse_api_icu")
    copy_tables(f"sqlite:///{SYNAPSE_DB}", url)
    runner = Runner(make_config(url, "synapse"), clock=lambda: NOW, keep_history=False)
    server = serve(runner)
    try:
        for query in ({"order_by": "displayname"}, {"order_by": "user_id", "dir": "b"},
                      {"order_by": "displayname", "search_term": "ALI"},
                      {"order_by": "media_length"}):
            status, body = get(f"http://127.0.0.1:{server.port}", {**query, **EVERYTHING})
            assert (status, body) == (200, synapse_sql(query)), query
    finally:
        server.stop()
        runner.close()


def test_the_snapshots_like_matches_exactly_what_sqlites_like_matches():
    rng = random.Random(7)
    with closing(sqlite3.connect(":memory:")) as sqlite:
        for _ in range(5000):
            pattern = "".join(rng.choice("aAbB%_:é@É") for _ in range(rng.randint(0, 6)))
            text = "".join(rng.choice("aAbB:é@É_%") for _ in range(rng.randint(0, 8)))
            expected = sqlite.execute("SELECT ? LIKE ?", (text, pattern)).fetchone()[0]
            assert like(pattern)(text) is bool(expected), (pattern, text)
    assert like("%")(None) is False


def test_searches_behave_as_observed_on_synapse(base_url):
    def found(term: str) -> set[str]:
        return {user["user_id"] for user in get(base_url, {"search_term": term})[1]["users"]}

    assert len(found("_")) == len(found("%")) == 25
    # carol's display name holds "example.invalid".
    assert found("ALI") == found("ali") == {"@alice:test.local", "@carol:test.local"}
    assert found("test.local") == set()
    assert found(":") == {"@carol:test.local"}
    assert found("@") == {"@=sum:test.local", "@walter:test.local"}


@pytest.mark.parametrize(("query", "errcode", "error"), [
    ({"search_term": "ünï"}, "M_UNKNOWN", "Query parameter 'search_term' must be ascii"),
    ({"search_term": "金"}, "M_UNKNOWN", "Query parameter 'search_term' must be ascii"),
    ({"order_by": "médià"}, "M_UNKNOWN", "Query parameter 'order_by' must be ascii"),
    # Synapse checks every value of a string parameter and uses the first.
    ([("dir", "b"), ("dir", "x")], "M_INVALID_PARAM", "Query parameter 'dir' must be one of "
     "['b', 'f']"),
    # In Synapse's order: order_by before from/limit, until_ts before search_term before dir.
    ({"order_by": "x", "limit": "x"}, "M_INVALID_PARAM", "Query parameter 'order_by' must be "
     "one of ['media_length', 'media_count', 'user_id', 'displayname']"),
    ({"from": "x", "limit": "x"}, "M_INVALID_PARAM", "Query parameter from must be an integer"),
    ({"until_ts": "5", "from_ts": "5", "search_term": "", "dir": "x"}, "M_INVALID_PARAM",
     "Query parameter until_ts must be greater than from_ts."),
    ({"search_term": "", "dir": "x"}, "M_INVALID_PARAM",
     "Query parameter search_term cannot be an empty string."),
    ({"limit": "٣"}, "M_INVALID_PARAM", "Query parameter limit must be an integer"),
])
def test_parameters_are_checked_as_synapse_checks_them(base_url, query, errcode, error):
    assert get(base_url, query) == (400, {"errcode": errcode, "error": error})


def test_integers_are_read_as_synapse_reads_them(base_url):
    # The first value counts; int() also takes a sign and surrounding spaces.
    status, body = get(base_url, [("limit", "+2 "), ("limit", "x"), ("from", "1")])
    assert status == 200 and len(body["users"]) == 2 and body["next_token"] == 3


def test_refusals_have_synapses_shape(base_url, runner):
    assert get(base_url, {"order_by": "bogus"}, {}) == \
        (401, {"errcode": "M_MISSING_TOKEN", "error": "Missing access token"})
    assert get(base_url, {}, {"Authorization": "Bearer wrong"}) == \
        (403, {"errcode": "M_FORBIDDEN", "error": "You are not a server admin"})
    server = serve(runner, keys=())
    try:
        status, body = get(f"http://127.0.0.1:{server.port}", {})
    finally:
        server.stop()
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    assert body["error"].startswith("The API is disabled")


def test_unfiltered_calls_never_read_the_database(runner):
    reads: list[object] = []

    def read(relations: object, query: object) -> object:
        reads.append(relations)
        raise DatabaseUnavailable("connection refused")

    server = serve(runner, read=read)
    url = f"http://127.0.0.1:{server.port}"
    try:
        for entry in ANSWERED:
            status, body = get(url, {**entry["query"], "search_term": "a"})
            assert (status, body) == (200, synapse_sql({**entry["query"], "search_term": "a"}))
        assert reads == []
        assert get(url, {"until_ts": "1"}) == (503, {
            "errcode": "M_UNKNOWN",
            "error": "The database could not be read: DatabaseUnavailable: connection refused"})
        assert reads == [["media"]]
    finally:
        server.stop()


def test_before_the_collectors_ran_the_database_answers():
    runner = Runner(make_config(f"sqlite:///{SYNAPSE_DB}", "synapse"), clock=lambda: NOW,
                    keep_history=False)
    server = serve(runner)
    try:
        assert not runner.snapshot.ready
        status, body = get(f"http://127.0.0.1:{server.port}", {"order_by": "media_count"})
        assert (status, body) == (200, synapse_sql({"order_by": "media_count"}))
    finally:
        server.stop()
        runner.close()


def test_other_platforms_do_not_have_the_route():
    runner = Runner(make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud"), keep_history=False)
    server = serve(runner)
    try:
        assert get(f"http://127.0.0.1:{server.port}", {}) == \
            (404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
    finally:
        server.stop()
        runner.close()


def test_pages_from_the_snapshot_follow_each_refresh(tmp_path):
    """Pages are cut from the snapshot's rows sorted once; a refresh brings a new upload in.
    A time window reads the database: it has the upload at once, and after the refresh too
    (its statement is built again on the refreshed relations)."""
    database = tmp_path / "homeserver.db"
    shutil.copyfile(SYNAPSE_DB, database)
    runner = Runner(make_config(f"sqlite:///{database}", "synapse"), clock=lambda: NOW,
                    keep_history=False)
    runner.run_all()
    server = serve(runner)
    url = f"http://127.0.0.1:{server.port}"
    order = {"order_by": "media_length", "dir": "b"}
    try:
        _, before = get(url, order)
        alice = next(u for u in before["users"] if u["user_id"] == "@alice:test.local")
        sqlite_execute(database, "INSERT INTO local_media_repository (media_id, media_type, "
                       "media_length, created_ts, upload_name, user_id) VALUES ('bench1', "
                       "'image/png', 5000000, 1795424000000, 'big.png', '@alice:test.local')")
        assert get(url, order) == (200, before)  # the snapshot has not changed yet
        status, windowed = get(url, {**order, **EVERYTHING})
        assert status == 200 and windowed["users"][0]["media_length"] == \
            alice["media_length"] + 5000000
        runner.run("media")
        assert get(url, {**order, **EVERYTHING}) == (200, windowed)
        status, after = get(url, order)
        assert status == 200 and after["total"] == before["total"]
        assert after["users"][0] == {**alice, "media_count": alice["media_count"] + 1,
                                     "media_length": alice["media_length"] + 5000000}
        assert after["users"][1:] == [u for u in before["users"] if u != alice]
    finally:
        server.stop()
        runner.close()
