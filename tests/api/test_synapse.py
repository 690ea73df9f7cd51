"""GET /_synapse/admin/v1/statistics/users/media over a real socket, on the two real Synapse 1.163
homeservers: on SQLite (also copied into MariaDB) and on PostgreSQL (restored from its dump).
Every answer each Synapse gave (its api_index.json) comes back the same, from the snapshot and
through a time-filtered database query alike, on PostgreSQL up to the order of rows with equal
sort keys, which Synapse leaves open there. Filters the captures do not cover equal Synapse's own
SQL run on the engine the homeserver runs on, the SQLite one copied into PostgreSQL included."""

from __future__ import annotations

import functools
import json
import random
import sqlite3
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DataError

from exporter import api
from exporter.api.synapse import MEDIA_STATISTICS, like
from exporter.config import ApiKey
from exporter.daemon import application
from exporter.db import DatabaseUnavailable
from exporter.http import App, Context, FailedAttempts
from exporter.platforms.synapse import SYNAPSE_ON_POSTGRESQL, SYNAPSE_ON_SQLITE
from exporter.runner import Runner
from exporter.server import HttpServer
from tests.conftest import API_KEY, NEXTCLOUD_DB, SYNAPSE_PG, make_config
from tests.synapse_fixtures import (
    POSTGRESQL_HOMESERVER,
    SETUPS,
    SQLITE_DB,
    SQLITE_HOMESERVER,
    Homeserver,
    Setup,
    canonical,
)

BEARER = {"Authorization": f"Bearer {API_KEY}"}
# Where the engine answers as the homeserver's Synapse did: its captures apply.
AS_CAPTURED = [setup for setup in SETUPS if setup.engine is setup.homeserver.engine]


def capture_id(entry: dict[str, Any]) -> str:
    return entry["file"].removeprefix("api/media_stats__").removesuffix(".json")


def captured_as(homeserver: Homeserver, name: str) -> dict[str, Any]:
    """The capture api/media_stats__<name>.json of the homeserver's api_index."""
    return next(e for e in homeserver.media_captures if capture_id(e) == name)


def captures(kind: Callable[[dict[str, Any]], bool]) -> list[Any]:
    """(setup, capture) for each setup that answers as captured and each capture of `kind`."""
    return [pytest.param(setup, entry, id=f"{setup.id}-{capture_id(entry)}")
            for setup in AS_CAPTURED for entry in setup.homeserver.media_captures if kind(entry)]


def single(entry: dict[str, Any]) -> bool:
    return "paginated_limit" not in entry


def answered(entry: dict[str, Any]) -> bool:
    return single(entry) and entry["status"] == 200


def every(setups: list[Setup] | tuple[Setup, ...]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("setup", setups, ids=lambda s: s.id)


def order_of(query: dict[str, str]) -> str:
    return query.get("order_by", "user_id")


def windowed(query: dict[str, str]) -> bool:
    """Whether Synapse filters the call by time (a bound of 0 filters nothing): the route then
    reads the database."""
    return bool(int(query.get("from_ts", 0)) or int(query.get("until_ts", 0)))


def everything(homeserver: Homeserver) -> dict[str, str]:
    """Truthy bounds on the first and the last upload: nothing is left out if both are
    inclusive, and the answer must come from the database instead of the snapshot."""
    times = upload_times(homeserver)
    return {"from_ts": str(times[0]), "until_ts": str(times[-1])}


def upload_times(homeserver: Homeserver) -> list[int]:
    return sorted({row["created_ts"] for row in homeserver.rows["local_media_repository"]})


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
                      clock=runner.clock, read=runner.read if read is None else read,
                      profile=runner.profile)
    return HttpServer(App(context, api.routes(context)), "127.0.0.1", 0).start()


def synapse_sql(homeserver_db: Engine, query: dict[str, str]) -> dict[str, Any]:
    """Synapse's answer: the SQL of its get_users_media_usage_paginate, verbatim, on the
    homeserver's own database, and its servlet's paging (docs/platforms/synapse.md, "Media
    statistics API"). The rows are read unpaged and rows with equal sort keys, which the SQL
    leaves in no order (PostgreSQL returns them in any), put in user id order before the page is
    cut: the order the route promises. Everything else is the engine's."""
    start, limit = int(query.get("from", 0)), int(query.get("limit", 100))
    filters, args = [], {}
    if query.get("search_term"):
        filters.append("(lmr.user_id LIKE :user_pattern OR displayname LIKE :name_pattern)")
        args["user_pattern"] = "@%" + query["search_term"] + "%:%"
        args["name_pattern"] = "%" + query["search_term"] + "%"
    if int(query.get("from_ts", 0)):
        filters.append("created_ts >= :from_ts")
        args["from_ts"] = int(query["from_ts"])
    if int(query.get("until_ts", 0)):
        filters.append("created_ts <= :until_ts")
        args["until_ts"] = int(query["until_ts"])
    where = "WHERE " + " AND ".join(filters) if filters else ""
    base = f"""FROM local_media_repository AS lmr
               LEFT JOIN profiles AS p ON lmr.user_id = p.full_user_id
               {where} GROUP BY lmr.user_id, displayname"""
    order_by = order_of(query)
    column = {"user_id": "lmr.user_id"}.get(order_by, order_by)
    order = "DESC" if query.get("dir") == "b" else "ASC"
    with homeserver_db.connect() as db:
        total = db.execute(text(f"SELECT COUNT(*) FROM (SELECT lmr.user_id {base}) "
                                "AS count_user_ids"), args).scalar_one()
        rows = db.execute(text(f"""SELECT lmr.user_id, displayname,
                                          COUNT(lmr.user_id) AS media_count,
                                          SUM(media_length) AS media_length {base}
                                   ORDER BY {column} {order}"""), args).all()
    users = [dict(zip(("user_id", "displayname", "media_count", "media_length"), row,
                      strict=True)) for row in rows]
    users = [user for _, run in groupby(users, key=lambda user: user[order_by])
             for user in sorted(run, key=lambda user: user["user_id"])]
    body: dict[str, Any] = {"users": users[start:start + limit], "total": total}
    if start + limit < total:
        body["next_token"] = start + len(body["users"])
    return body


@dataclass
class Served:
    """A setup's database, a refreshed runner on it and our server over that, and Synapse's own
    SQL on the database of the Synapse the route answers as: the PostgreSQL one itself, else the
    SQLite file (of which a MariaDB database is a copy)."""

    database_url: str
    runner: Runner
    base_url: str
    oracle: Callable[[dict[str, str]], dict[str, Any]]


@pytest.fixture(scope="module")
def served(request: pytest.FixtureRequest) -> Iterator[Callable[[Setup], Served]]:
    """Each setup's Served, made on first use and kept for the module, whatever order the
    tests of several setups run in."""
    made: dict[Setup, Served] = {}
    with ExitStack() as stack:
        def serve_setup(setup: Setup) -> Served:
            if setup not in made:
                url = setup.url(request, "synapse_api")
                runner = stack.enter_context(closing(Runner(
                    make_config(url, "synapse"), clock=lambda: setup.homeserver.now_ms / 1000,
                    keep_history=False)))
                runner.run_all()
                assert runner.snapshot.failures == {}
                server = serve(runner)
                stack.callback(server.stop)
                engine = create_engine(url if setup.engine is SYNAPSE_ON_POSTGRESQL
                                       else f"sqlite:///file:{SQLITE_DB}?mode=ro&uri=true")
                stack.callback(engine.dispose)
                made[setup] = Served(url, runner, f"http://127.0.0.1:{server.port}",
                                     functools.partial(synapse_sql, engine))
            return made[setup]
        yield serve_setup


@pytest.fixture
def live(served: Callable[[Setup], Served], setup: Setup) -> Served:
    return served(setup)


@pytest.fixture
def homeserver(setup: Setup) -> Homeserver:
    return setup.homeserver


@pytest.mark.parametrize(("setup", "entry"), captures(single))
def test_every_capture_is_answered_as_synapse_did(live, homeserver, entry):
    captured = homeserver.read(entry["file"])
    headers = {} if captured["body"].get("errcode") in ("M_MISSING_TOKEN", "M_FORBIDDEN") \
        else None
    if captured["body"].get("errcode") == "M_FORBIDDEN":
        headers = {"Authorization": "Bearer not-one-of-our-keys-0123456789"}
    status, body = get(live.base_url, entry["query"], headers)
    order_by = order_of(entry["query"])
    assert (status, homeserver.comparable(body, order_by)) == \
        (entry["status"], homeserver.comparable(captured["body"], order_by))
    assert status == captured["status"]


@pytest.mark.parametrize(("setup", "entry"), captures(answered))
def test_every_capture_is_answered_alike_through_the_database(live, homeserver, entry):
    captured = homeserver.read(entry["file"])["body"]
    query = entry["query"]
    if not windowed(query):  # a capture with a window reads the database already
        query = {**query, **everything(homeserver)}
    status, body = get(live.base_url, query)
    order_by = order_of(entry["query"])
    assert (status, homeserver.comparable(body, order_by)) == \
        (200, homeserver.comparable(captured, order_by))


@pytest.mark.parametrize("through", ["snapshot", "database"])
@pytest.mark.parametrize(("setup", "entry"), captures(lambda e: not single(e)),
)
def test_paginated_walks_follow_next_token_as_captured(live, homeserver, entry, through):
    """Each page's query, status, total and next_token as captured, and the rows of all pages
    together (on PostgreSQL a run of tied rows may cross a page edge in another order)."""
    captured = homeserver.read(entry["file"])
    window = everything(homeserver) if through == "database" else {}
    pages, users, query = [], [], {**entry["query"], "limit": str(entry["paginated_limit"])}
    while True:
        status, body = get(live.base_url, {**query, **window})
        pages.append({"body": body, "query": dict(query), "status": status})
        users += body["users"]
        if "next_token" not in body:
            break
        query["from"] = str(body["next_token"])

    def outline(walk: list[dict[str, Any]]) -> str:
        return canonical([{**page, "body": {**page["body"], "users": len(page["body"]["users"])}}
                          for page in walk])

    order_by = order_of(entry["query"])
    assert outline(pages) == outline(captured["pages"])
    assert homeserver.comparable({"users": users}, order_by) == \
        homeserver.comparable({"users": captured["merged_users"]}, order_by)
    assert len(pages) == captured["page_count"]


@pytest.mark.parametrize("homeserver", [SQLITE_HOMESERVER, POSTGRESQL_HOMESERVER],
                         ids=lambda h: h.name)
def test_rows_are_compared_up_to_ties_on_postgresql_only(homeserver):
    """The comparison the captures are held to: on PostgreSQL the order within a run of equal
    sort keys is open, nothing else; on SQLite the order is Synapse's own, ties included."""
    a, b, c = ({"user_id": f"@{name}", "n": n} for name, n in (("a", 1), ("b", 1), ("c", 2)))

    def same(users: list[dict[str, Any]], total: int = 3) -> bool:
        return homeserver.comparable({"users": users, "total": total}, "n") == \
            homeserver.comparable({"users": [a, b, c], "total": 3}, "n")

    assert same([a, b, c])
    assert same([b, a, c]) is (homeserver is POSTGRESQL_HOMESERVER)
    assert not same([a, c, b]) and not same([c, a, b]) and not same([a, b, c], total=4)


@every(AS_CAPTURED)
def test_synapses_own_sql_gives_every_captured_answer(homeserver, live):
    """The oracle of the tests below, checked against the real server's answers."""
    for entry in filter(answered, homeserver.media_captures):
        order_by = order_of(entry["query"])
        assert homeserver.comparable(live.oracle(entry["query"]), order_by) == \
            homeserver.comparable(homeserver.read(entry["file"])["body"], order_by), entry


def windows(homeserver: Homeserver) -> list[dict[str, str]]:
    """Edges on real upload times, so each inclusive bound keeps a row a strict one would drop:
    from the first upload to one a third of the way, from there to two thirds, from the last,
    until 1 ms before the third, and from after the last (nothing)."""
    times = upload_times(homeserver)
    third, two_thirds = times[len(times) // 3], times[2 * len(times) // 3]
    return [{"from_ts": str(times[0]), "until_ts": str(third)},
            {"from_ts": str(third), "until_ts": str(two_thirds)},
            {"from_ts": str(times[-1])},
            {"until_ts": str(third - 1)},
            {"from_ts": str(times[-1] + 1)}]


@pytest.mark.parametrize("order", [{"order_by": o, "dir": d} for o in
                                   ("user_id", "displayname", "media_count", "media_length")
                                   for d in ("f", "b")], ids=lambda o: "-".join(o.values()))
@pytest.mark.parametrize("window", range(5))
@every(SETUPS)
def test_time_windows_equal_synapses_sql(live, homeserver, window, order):
    # A page, an empty page past the end, and none at all: the total is still counted.
    for paging in ({}, {"from": "1", "limit": "3"}, {"from": "1000"}, {"limit": "0"}):
        query = {**windows(homeserver)[window], **order, **paging}
        status, body = get(live.base_url, query)
        assert (status, canonical(body)) == (200, canonical(live.oracle(query))), query


# LIKE without ESCAPE: % and _ are wildcards; on SQLite ASCII letters match in either case, on
# PostgreSQL in their own case only and \ escapes the next character; the user id pattern needs
# a ':' after the term; display names are searched too.
SEARCHES = ["ali", "ALI", "Ali", "_", "%", "test.local", ":", "@", "tie_", "e_e", "Z", "1+1", "'",
            "\\", "\\%", "\\_", "a\\", "\\\\", "\\a", "%\\%%", "_\\_", "%:%", "bob", "nobody"]


@pytest.mark.parametrize("window", ["snapshot", "database"])
@pytest.mark.parametrize("term", SEARCHES)
@every(SETUPS)
def test_searches_equal_synapses_sql(live, homeserver, term, window):
    for order in ({}, {"order_by": "media_length", "dir": "b"}, {"order_by": "displayname"}):
        query = {"search_term": term, **order}
        bounds = everything(homeserver) if window == "database" else {}
        status, body = get(live.base_url, {**query, **bounds})
        assert (status, canonical(body)) == (200, canonical(live.oracle(query))), query


@pytest.fixture(scope="module")
def icu_base_url(postgres_server) -> Iterator[str]:
    """The PostgreSQL homeserver restored into a database with an ICU locale, which sorts "adam"
    before "Alice" and "+dave" among the d's."""
    url = postgres_server.restore_dump(
        "synapse_api_icu", SYNAPSE_PG / "dump.sql",
        locale="TEMPLATE template0 LOCALE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
    runner = Runner(make_config(url, "synapse"),
                    clock=lambda: POSTGRESQL_HOMESERVER.now_ms / 1000, keep_history=False)
    runner.run_all()
    server = serve(runner)
    yield f"http://127.0.0.1:{server.port}"
    server.stop()
    runner.close()


@pytest.mark.parametrize("capture", ["order_displayname_f", "order_displayname_b",
                                     "order_user_id_b", "order_media_length_f", "search_11"])
def test_a_linguistic_postgresql_collation_changes_nothing(icu_base_url, capture):
    """Synapse wants the C locale on PostgreSQL; on another one the route still answers as
    Synapse on the C locale did, from the snapshot and through the database."""
    homeserver = POSTGRESQL_HOMESERVER
    entry = captured_as(homeserver, capture)
    captured = homeserver.read(entry["file"])["body"]
    order_by = order_of(entry["query"])
    for bounds in ({}, everything(homeserver)):
        status, body = get(icu_base_url, {**entry["query"], **bounds})
        assert (status, homeserver.comparable(body, order_by)) == \
            (200, homeserver.comparable(captured, order_by)), bounds


# --- LIKE, checked against the engines themselves ----------------------------------------

# Terms as Synapse wraps them ('%' + term + '%', '@%' + term + '%:%') and bare patterns, against
# texts with wildcards, backslashes, both cases and non-ASCII letters of both cases.
TERMS = ["%", "_", "\\", "\\%", "\\_", "\\\\", "a\\", "\\a", "ali", "ALI", "é", "É", "ß", "ss",
         "k", "K", "i", "İ", "1+1", "a_e", "%%", "_%_"]
PATTERNS = sorted({p for term in TERMS for p in ("%" + term + "%", "@%" + term + "%:%", term)}
                  | {"", "%", "_", "a%", "%a", "a%b%c", "%_%_%_%", "\\", "a\\", "\\\\\\"})
TEXTS = ["", "%", "_", "\\", "\\%", "a%b", "a_b", "ali", "ALI", "Alice Liddell", "@ali:test",
         "@ALI:test", "@tie_a:test.local", "é", "É", "Ēve", "ß", "SS", "ss", "k", "K", "\u212a",
         "i", "I", "İ", "\u0131", "1+1", "a\nb", "a\\b", "abc", "xaxbxcx", "@:%", "金"]


def sqlite_like(pairs: list[tuple[str, str]]) -> list[bool | None]:
    """SQLite's `text LIKE pattern` for each pair, as Synapse's query runs it (no ESCAPE)."""
    with closing(sqlite3.connect(":memory:")) as db:
        return [bool(db.execute("SELECT ? LIKE ?", pair).fetchone()[0]) for pair in pairs]


def postgresql_like(url: str, pairs: list[tuple[str, str]]) -> list[bool | None]:
    """PostgreSQL's `text LIKE pattern` for each pair, on the C-locale database of the
    PostgreSQL homeserver; None where PostgreSQL refuses the pattern."""
    texts: dict[str, list[str]] = {}
    for text_, pattern in pairs:
        texts.setdefault(pattern, []).append(text_)
    answers: dict[tuple[str, str], bool | None] = {}
    engine = create_engine(url)
    try:
        with engine.connect() as db:
            for pattern, each in texts.items():
                try:
                    found = db.execute(text(
                        "SELECT x.t LIKE :pattern FROM unnest(CAST(:texts AS text[])) "
                        "WITH ORDINALITY AS x(t, n) ORDER BY x.n"),
                        {"pattern": pattern, "texts": each}).scalars().all()
                except DataError:  # "LIKE pattern must not end with escape character"
                    db.rollback()
                    found = [None] * len(each)
                answers.update(zip(((text_, pattern) for text_ in each), found, strict=True))
    finally:
        engine.dispose()
    return [answers[pair] for pair in pairs]


def ours(engine: Any, pairs: list[tuple[str, str]]) -> list[bool | None]:
    answers: list[bool | None] = []
    for text_, pattern in pairs:
        try:
            answers.append(like(pattern, engine)(text_))
        except ValueError:
            answers.append(None)
    return answers


def random_pairs(seed: int, count: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [("".join(rng.choice("aAbB:é@É_%\\\n") for _ in range(rng.randint(0, 8))),
             "".join(rng.choice("aAbB%_:é@É\\") for _ in range(rng.randint(0, 6))))
            for _ in range(count)]


def test_the_snapshots_like_matches_exactly_what_sqlites_like_matches():
    pairs = [(text_, pattern) for pattern in PATTERNS for text_ in TEXTS] + \
        random_pairs(7, 5000)
    assert ours(SYNAPSE_ON_SQLITE, pairs) == sqlite_like(pairs)
    assert like("%", SYNAPSE_ON_SQLITE)(None) is False


def test_the_snapshots_like_matches_exactly_what_postgresqls_like_matches(synapse_pg_url):
    pairs = [(text_, pattern) for pattern in PATTERNS for text_ in TEXTS] + \
        random_pairs(8, 5000)
    expected = postgresql_like(synapse_pg_url, pairs)
    assert None in expected  # patterns ending in an escape are among them
    # PostgreSQL refuses a pattern ending in an escape once matching reaches that end, we refuse
    # it outright; Synapse's patterns end in `%`, so the route never has one.
    for pair, mine, theirs in zip(pairs, ours(SYNAPSE_ON_POSTGRESQL, pairs), expected,
                                  strict=True):
        assert mine == theirs or (mine is None and theirs is False), pair
    assert like("%", SYNAPSE_ON_POSTGRESQL)(None) is False


@pytest.mark.parametrize("engine", [SYNAPSE_ON_SQLITE, SYNAPSE_ON_POSTGRESQL],
                         ids=lambda e: e.name)
def test_like_takes_polynomial_time_on_terms_that_make_regexes_backtrack(engine):
    """Each piece between `%`s takes the first place it fits and is never tried again: a term
    of many wildcards that cannot match a long text fails at once (a backtracking matcher would
    take about len(text) ** pieces steps, years here)."""
    text_ = "a" * 5000
    started = time.monotonic()
    for pattern in ("%a%a%a%a%a%a%a%a%a%a%b%", "%_%_%_%_%_%_%_%_%_%_%b", "%" + "%_" * 40 + "b"):
        assert like(pattern, engine)(text_) is False
    assert like("%a%a%a%a%a%a%a%a%a%a%", engine)(text_) is True
    assert time.monotonic() - started < 5  # about 1 ms; the bound only tells polynomial apart


@every([setup for setup in AS_CAPTURED if setup.homeserver is SQLITE_HOMESERVER])
def test_searches_behave_as_observed_on_synapse_on_sqlite(live):
    """What docs/platforms/synapse.md ("Media statistics API") says Synapse on SQLite answers;
    on PostgreSQL the same terms are among the captured answers (search_*), which the capture
    tests replay."""
    def found(term: str) -> set[str]:
        return {user["user_id"] for user in get(live.base_url, {"search_term": term})[1]["users"]}

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
@every(SETUPS)
def test_parameters_are_checked_as_synapse_checks_them(live, query, errcode, error):
    assert get(live.base_url, query) == (400, {"errcode": errcode, "error": error})


@every(SETUPS)
def test_integers_are_read_as_synapse_reads_them(live):
    # The first value counts; int() also takes a sign and surrounding spaces.
    status, body = get(live.base_url, [("limit", "+2 "), ("limit", "x"), ("from", "1")])
    assert status == 200 and len(body["users"]) == 2 and body["next_token"] == 3


@every(SETUPS)
def test_refusals_have_synapses_shape(live):
    assert get(live.base_url, {"order_by": "bogus"}, {}) == \
        (401, {"errcode": "M_MISSING_TOKEN", "error": "Missing access token"})
    assert get(live.base_url, {}, {"Authorization": "Bearer wrong"}) == \
        (403, {"errcode": "M_FORBIDDEN", "error": "You are not a server admin"})
    server = serve(live.runner, keys=())
    try:
        status, body = get(f"http://127.0.0.1:{server.port}", {})
    finally:
        server.stop()
    assert status == 403 and body["errcode"] == "M_FORBIDDEN"
    assert body["error"].startswith("The API is disabled")


@every(SETUPS)
def test_unfiltered_calls_never_read_the_database(live, homeserver):
    reads: list[object] = []

    def read(relations: object, query: object) -> object:
        reads.append(relations)
        raise DatabaseUnavailable("connection refused")

    server = serve(live.runner, read=read)
    url = f"http://127.0.0.1:{server.port}"
    try:
        for entry in filter(answered, homeserver.media_captures):
            if windowed(entry["query"]):
                continue
            query = {**entry["query"], "search_term": "a"}
            assert get(url, query) == (200, live.oracle(query))
        assert reads == []
        assert get(url, {"until_ts": "1"}) == (503, {
            "errcode": "M_UNKNOWN",
            "error": "The database could not be read: DatabaseUnavailable: connection refused"})
        assert reads == [["media"]]
    finally:
        server.stop()


@every(SETUPS)
def test_before_the_collectors_ran_the_database_answers(live, homeserver):
    runner = Runner(make_config(live.database_url, "synapse"),
                    clock=lambda: homeserver.now_ms / 1000, keep_history=False)
    server = serve(runner)
    try:
        assert not runner.snapshot.ready
        for order in ({"order_by": "media_count"}, {"order_by": "displayname", "dir": "b"}):
            assert get(f"http://127.0.0.1:{server.port}", order) == (200, live.oracle(order))
    finally:
        server.stop()
        runner.close()


@every(AS_CAPTURED)
def test_the_daemons_app_answers_as_the_homeservers_engine(live, homeserver):
    """The daemon's own routes (daemon.application) know the engine: where NULL sorts differs
    between SQLite and PostgreSQL in these two answers."""
    server = HttpServer(application(live.runner, FailedAttempts()), "127.0.0.1", 0).start()
    try:
        for name in ("order_media_length_f", "order_displayname_f"):
            entry = captured_as(homeserver, name)
            order_by = order_of(entry["query"])
            status, body = get(f"http://127.0.0.1:{server.port}", entry["query"])
            assert (status, homeserver.comparable(body, order_by)) == \
                (200, homeserver.comparable(homeserver.read(entry["file"])["body"], order_by))
    finally:
        server.stop()


def test_other_platforms_do_not_have_the_route():
    runner = Runner(make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud"), keep_history=False)
    server = serve(runner)
    try:
        assert get(f"http://127.0.0.1:{server.port}", {}) == \
            (404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
    finally:
        server.stop()
        runner.close()


@pytest.fixture
def writable_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A database of the homeserver of its own, for a test that uploads."""
    if request.param is POSTGRESQL_HOMESERVER:
        postgres_server = request.getfixturevalue("postgres_server")
        return postgres_server.restore_dump("synapse_api_uploads", SYNAPSE_PG / "dump.sql")
    database = tmp_path / "homeserver.db"
    database.write_bytes(SQLITE_DB.read_bytes())
    return f"sqlite:///{database}"


@pytest.mark.parametrize(("homeserver", "writable_url"),
                         [(h, h) for h in (SQLITE_HOMESERVER, POSTGRESQL_HOMESERVER)],
                         indirect=["writable_url"], ids=lambda h: h.name)
def test_pages_from_the_snapshot_follow_each_refresh(homeserver, writable_url):
    """Pages are cut from the snapshot's rows sorted once; a refresh brings a new upload in.
    A time window reads the database: it has the upload at once, and after the refresh too
    (its statement is built again on the refreshed relations)."""
    runner = Runner(make_config(writable_url, "synapse"), clock=lambda: homeserver.now_ms / 1000,
                    keep_history=False)
    runner.run_all()
    server = serve(runner)
    url = f"http://127.0.0.1:{server.port}"
    order = {"order_by": "media_length", "dir": "b"}
    bounds = everything(homeserver)
    platform_db = create_engine(writable_url)
    try:
        _, before = get(url, order)
        alice = next(u for u in before["users"] if u["user_id"] == "@alice:test.local")
        uploaded = {**alice, "media_count": alice["media_count"] + 1,
                    "media_length": alice["media_length"] + 5000000}  # the most of anyone
        with platform_db.begin() as db:
            db.execute(text("INSERT INTO local_media_repository (media_id, media_type, "
                            "media_length, created_ts, upload_name, user_id) VALUES ('bench1', "
                            "'image/png', 5000000, :at, 'big.png', '@alice:test.local')"),
                       {"at": int(bounds["until_ts"])})
        platform_db.dispose()
        assert get(url, order) == (200, before)  # the snapshot has not changed yet
        status, windowed = get(url, {**order, **bounds})
        assert status == 200
        assert next(u for u in windowed["users"] if u["media_length"] is not None) == uploaded
        runner.run("media")
        assert get(url, {**order, **bounds}) == (200, windowed)
        assert get(url, order) == (200, windowed)
        assert [u for u in windowed["users"] if u != uploaded] == \
            [u for u in before["users"] if u != alice]
    finally:
        platform_db.dispose()
        server.stop()
        runner.close()
