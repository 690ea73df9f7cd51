"""Synapse's admin API, drop-in: GET /_synapse/admin/v1/statistics/users/media.

Answers as Synapse 1.163 does on the database engine the homeserver runs on
(docs/platforms/synapse.md, "Media statistics API" and "On PostgreSQL"; the tests replay every
answer captured on SQLite and on PostgreSQL): the same checks
in the same order, errors as {"errcode", "error"}, the same paging. Unfiltered calls are answered
from the snapshot (media and users collectors); calls with from_ts or until_ts run one aggregate
query like Synapse's. Both sort and search as the engine does (exporter.platforms.synapse's
SynapseEngine: LIKE's case and escape, where NULL sorts), text byte-wise. Rows with equal sort
keys, which Synapse leaves in no fixed order, come by user id. Media rows without a user id are
left out.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Select,
    Subquery,
    asc,
    bindparam,
    case,
    cast,
    collate,
    desc,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.mysql import BINARY
from sqlalchemy.exc import SQLAlchemyError

from exporter.db import DatabaseUnavailable, describe_error
from exporter.http import Context, Handler, HttpError, Request, Response, retry_after_header
from exporter.platforms.synapse import SynapseEngine, SynapseProfile
from exporter.snapshot import Snapshot

MEDIA_STATISTICS = "/_synapse/admin/v1/statistics/users/media"
ORDER_BY = ("media_length", "media_count", "user_id", "displayname")  # as Synapse lists them
DIRECTIONS = ("b", "f")
# LIMIT and OFFSET are signed 64-bit in SQL; Python would page past that without complaint.
SQL_INT_MAX = 2**63 - 1

# user_id, displayname, media_count, media_length
Row = tuple[str, str | None, int, int | None]
COLUMN = {"user_id": 0, "displayname": 1, "media_count": 2, "media_length": 3}

log = structlog.get_logger()


class MatrixError(Exception):
    def __init__(self, status: int, errcode: str, error: str,
                 limited: HttpError | None = None) -> None:
        super().__init__(error)
        self.status, self.errcode, self.error = status, errcode, error
        self.limited = limited

    def response(self) -> Response:
        """Synapse's error body; a rate limit also says when to retry, in the body as Synapse
        does and in Retry-After (MSC4041)."""
        body: dict[str, Any] = {"errcode": self.errcode, "error": self.error}
        if self.limited is None or self.limited.retry_after is None:
            return Response.json(body, self.status)
        response = Response.json({**body, "retry_after_ms": self.limited.retry_after * 1000},
                                 self.status)
        response.headers += retry_after_header(self.limited)
        return response


def invalid(message: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", message)


@dataclass(frozen=True)
class MediaQuery:
    order_by: str
    start: int
    limit: int
    from_ts: int
    until_ts: int | None
    search_term: str | None
    backwards: bool

    @property
    def filtered_by_time(self) -> bool:
        # Synapse applies each bound only when it is truthy: from_ts=0 filters nothing.
        return bool(self.from_ts or self.until_ts)

    def patterns(self) -> tuple[str, str]:
        """Synapse's LIKE patterns for the user id and the display name, unescaped: the term's
        `%` and `_` stay wildcards; `:` after it keeps the server name out of user id matches."""
        assert self.search_term is not None
        return f"@%{self.search_term}%:%", f"%{self.search_term}%"


def strings(request: Request, name: str, allowed: tuple[str, ...] | None = None) -> str | None:
    """Synapse's parse_string: every value must be ASCII (and allowed); the first one counts."""
    values = request.query.get(name)
    if values is None:
        return None
    for value in values:
        if not value.isascii():
            raise MatrixError(400, "M_UNKNOWN", f"Query parameter {name!r} must be ascii")
        if allowed is not None and value not in allowed:
            raise invalid(f"Query parameter {name!r} must be one of "
                          f"[{', '.join(repr(v) for v in allowed)}]")
    return values[0]


def optional_integer(request: Request, name: str) -> int | None:
    """Synapse's parse_integer: int() of the first value's bytes, so ASCII digits only."""
    values = request.query.get(name)
    if values is None:
        return None
    try:
        value = int(values[0].encode())
    except ValueError:
        raise invalid(f"Query parameter {name} must be an integer") from None
    if value < 0:
        raise invalid(f"Query parameter {name} must be a positive integer.")
    return value


def parse(request: Request) -> MediaQuery:
    order_by = strings(request, "order_by", ORDER_BY) or "user_id"
    start = optional_integer(request, "from") or 0
    limit = optional_integer(request, "limit")
    from_ts = optional_integer(request, "from_ts") or 0
    until_ts = optional_integer(request, "until_ts")
    if until_ts is not None and until_ts <= from_ts:
        raise invalid("Query parameter until_ts must be greater than from_ts.")
    search_term = strings(request, "search_term")
    if search_term == "":
        raise invalid("Query parameter search_term cannot be an empty string.")
    direction = strings(request, "dir", DIRECTIONS) or "f"
    return MediaQuery(order_by, start, 100 if limit is None else limit, from_ts, until_ts,
                      search_term, direction == "b")


# --- from the snapshot ----------------------------------------------------------------------


def like(pattern: str, engine: SynapseEngine) -> Callable[[str | None], bool]:
    """`value LIKE pattern` as the engine Synapse runs on evaluates it, without ESCAPE: `%` any
    run of characters, `_` any one; on SQLite ASCII letters in either case, on PostgreSQL every
    character in its own case and `\\` taking the next one as it is. NULL never matches.

    A regular expression whose pieces between `%`s are atomic groups, each taking the first place
    it fits: the leftmost leaves the most text for the pieces after it, so none is tried again
    and a term such as `%_%_%_%_x` costs about len(text) * len(pattern) steps, not exponentially
    many (a worker thread is never held for good)."""
    pieces = [""]  # the pattern between its `%`s, each as a regular expression
    characters = iter(pattern)
    for character in characters:
        if character == engine.like_escape:
            escaped = next(characters, None)
            if escaped is None:  # refused, as PostgreSQL does; Synapse's patterns end in `%`
                raise ValueError("LIKE pattern must not end with escape character")
            pieces[-1] += re.escape(escaped)
        elif character == "%":
            pieces.append("")
        else:
            pieces[-1] += "." if character == "_" else re.escape(character)
    if len(pieces) == 1:
        expression = pieces[0]
    else:
        first, *middle, last = pieces
        expression = first + "".join(f"(?>.*?{piece})" for piece in middle if piece) + ".*" + last
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if engine.like_folds_ascii_case else 0)
    match = re.compile(expression, flags).fullmatch
    return lambda value: value is not None and match(value) is not None


def snapshot_rows(snapshot: Snapshot) -> list[Row] | None:
    """Every uploader with the media collector's count and bytes and the users collector's
    display name; None until both have a result."""
    columns = snapshot.user_columns()
    if "media_count" not in columns or "display_name" not in columns:
        return None
    names, sizes = columns["display_name"], columns["media_bytes"]
    return [(user_id, names.get(user_id), count, sizes.get(user_id))
            for user_id, count in columns["media_count"].items()]


def in_order(rows: Iterable[Row], order_by: str, backwards: bool,
             engine: SynapseEngine) -> list[Row]:
    column = COLUMN[order_by]

    def key(row: Row) -> tuple[bool, Any]:
        # False before True: NULL before every value on SQLite, after them on PostgreSQL.
        value = row[column]
        if value is None:
            return (not engine.null_sorts_first, 0)
        return (engine.null_sorts_first, value)

    # Sorted by user id first: sort() is stable, also with reverse=True, so ties stay in user
    # id order in both directions.
    return sorted(sorted(rows, key=lambda row: row[0]), key=key, reverse=backwards)


class SnapshotOrders:
    """The uploaders of the latest snapshot in each order asked for, sorted once per snapshot
    (snapshots never change), so that a page is a slice and not a sort of every uploader."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._rows: list[Row] | None = None
        self._orders: dict[tuple[str, bool, SynapseEngine], list[Row]] = {}

    def ordered(self, snapshot: Snapshot, query: MediaQuery,
                engine: SynapseEngine) -> list[Row] | None:
        with self._lock:
            if snapshot is not self._snapshot:
                self._snapshot, self._rows, self._orders = snapshot, snapshot_rows(snapshot), {}
            if self._rows is None:
                return None
            key = (query.order_by, query.backwards, engine)
            if key not in self._orders:
                self._orders[key] = in_order(self._rows, *key)
            return self._orders[key]


def snapshot_page(ordered: list[Row], query: MediaQuery,
                  engine: SynapseEngine) -> tuple[list[Row], int]:
    """The page of rows already in the query's order; a search keeps that order."""
    if query.search_term is not None:
        user_id, display_name = (like(p, engine) for p in query.patterns())
        ordered = [row for row in ordered if user_id(row[0]) or display_name(row[1])]
    return ordered[query.start:query.start + query.limit], len(ordered)


# --- from the database ----------------------------------------------------------------------


def bytewise(expr: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """Text compared by code point (UTF-8 byte order), as SQLite's BINARY collation does,
    whatever the database's own collation."""
    if dialect == "postgresql":
        return collate(expr, "C")
    if dialect in ("mysql", "mariadb"):
        return cast(expr, BINARY())
    return expr


class DatabasePages:
    """Pages of the time-windowed (or searched) statistics, read from the database. The page
    statement is built once per query shape (which filters, which order) and relation, with the
    values as bind parameters: building it is most of a call's work on a small database."""

    def __init__(self) -> None:
        self._built: dict[tuple[Any, ...], tuple[Subquery, Select[Any], Select[Any]]] = {}

    def __call__(self, query: MediaQuery, engine: SynapseEngine,
                 ) -> Callable[[Connection, Mapping[str, Subquery]], tuple[list[Row], int]]:
        def run(conn: Connection, relations: Mapping[str, Subquery]) -> tuple[list[Row], int]:
            page, total = self._statements(relations["media"], conn.dialect.name, engine, query)
            values: dict[str, Any] = {
                "from_ts": query.from_ts, "until_ts": query.until_ts,
                "limit": min(query.limit, SQL_INT_MAX), "offset": min(query.start, SQL_INT_MAX)}
            if query.search_term is not None:
                values["user_pattern"], values["name_pattern"] = (
                    like_pattern(p, engine) for p in query.patterns())
            rows = conn.execute(page, values).all()
            if rows:  # each row carries the number of rows before paging
                return [row[:4] for row in rows], rows[0][4]
            return [], conn.execute(total, values).scalar_one()  # past the end, or limit=0
        return run

    def _statements(self, media: Subquery, dialect: str, engine: SynapseEngine,
                    query: MediaQuery) -> tuple[Select[Any], Select[Any]]:
        shape = (dialect, engine, query.search_term is not None, bool(query.from_ts),
                 bool(query.until_ts), query.order_by, query.backwards)
        built = self._built.get(shape)
        if built is None or built[0] is not media:  # the relations are rebuilt on a refresh
            built = self._built[shape] = (media, *_page_statements(media, *shape))
        return built[1], built[2]


def like_pattern(pattern: str, engine: SynapseEngine) -> str:
    """The pattern to bind to `matches`: on SQLite's rules in lower case, the backslash a plain
    character there, doubled for the ESCAPE that other databases need; on PostgreSQL as it is."""
    if engine.like_folds_ascii_case:
        return pattern.lower().replace("\\", "\\\\")
    return pattern


def matches(text: ColumnElement[Any], pattern: str, engine: SynapseEngine) -> ColumnElement[bool]:
    """Synapse's `text LIKE pattern`: on PostgreSQL that very SQL; on SQLite's rules, on SQLite
    or on a copy of its database elsewhere, both sides in lower case (lower() folds only ASCII on
    SQLite, and the pattern is ASCII) and the backslash escaped."""
    if engine.like_folds_ascii_case:
        return func.lower(text).like(bindparam(pattern), escape="\\")
    return text.like(bindparam(pattern))


def _page_statements(media: Subquery, dialect: str, engine: SynapseEngine, searched: bool,
                     since: bool, until: bool, order_by: str,
                     backwards: bool) -> tuple[Select[Any], Select[Any]]:
    """(the page with the count of all rows in each row, the count alone) for one shape."""
    filters = [media.c.user_id.is_not(None)]
    if searched:
        filters.append(or_(matches(media.c.user_id, "user_pattern", engine),
                           matches(media.c.display_name, "name_pattern", engine)))
    if since:
        filters.append(media.c.created_ms >= bindparam("from_ts"))
    if until:
        filters.append(media.c.created_ms <= bindparam("until_ts"))  # inclusive, as in Synapse
    users = (select(media.c.user_id, media.c.display_name.label("displayname"),
                    func.count().label("media_count"),
                    cast(func.sum(media.c.bytes), BigInteger).label("media_length"))
             .where(*filters).group_by(media.c.user_id, media.c.display_name)
             .subquery("users"))
    key = users.c[order_by]
    order = desc if backwards else asc
    if order_by in ("user_id", "displayname"):
        key = bytewise(key, dialect)
    page = (select(users.c.user_id, users.c.displayname, users.c.media_count,
                   users.c.media_length, func.count().over().label("total"))
            .order_by(order(case((users.c[order_by].is_(None), 0 if engine.null_sorts_first else 2),
                                 else_=1)),
                      order(key), bytewise(users.c.user_id, dialect))
            .limit(bindparam("limit", type_=BigInteger))
            .offset(bindparam("offset", type_=BigInteger)))
    return page, select(func.count()).select_from(users)


# --- the route ------------------------------------------------------------------------------


def authorize(context: Context, request: Request) -> None:
    try:
        context.authorize(request)
    except HttpError as error:
        if error.status == 401:
            raise MatrixError(401, "M_MISSING_TOKEN", "Missing access token") from None
        if error.status == 429:
            raise MatrixError(429, "M_LIMIT_EXCEEDED", "Too Many Requests", error) from None
        # A key that is not ours is refused as Synapse refuses a user who is not an admin;
        # with no keys configured at all, our reason says so.
        raise MatrixError(403, "M_FORBIDDEN", "You are not a server admin"
                          if error.code == 403.1 else error.message) from None


def homeserver_engine(context: Context) -> SynapseEngine:
    if not isinstance(context.profile, SynapseProfile):
        raise TypeError("the Synapse route needs the Synapse profile of the database it reads")
    return context.profile.engine


def routes(context: Context) -> dict[str, Handler]:
    orders = SnapshotOrders()
    pages = DatabasePages()

    def fetch(snapshot: Snapshot, query: MediaQuery) -> tuple[list[Row], int]:
        engine = homeserver_engine(context)
        rows = None if query.filtered_by_time else orders.ordered(snapshot, query, engine)
        if rows is not None:
            return snapshot_page(rows, query, engine)
        if context.read is None:
            raise MatrixError(503, "M_UNKNOWN", "The database cannot be read from this API.")
        try:
            return context.read(["media"], pages(query, engine))
        except (DatabaseUnavailable, SQLAlchemyError) as error:
            log.warning("api_read_failed", route=MEDIA_STATISTICS, error=describe_error(error))
            raise MatrixError(503, "M_UNKNOWN",
                              f"The database could not be read: {describe_error(error)}") from None

    def media_statistics(request: Request) -> Response:
        try:
            authorize(context, request)
            snapshot = context.snapshot()
            if snapshot.platform != "synapse":
                raise MatrixError(404, "M_UNRECOGNIZED", "Unrecognized request")
            query = parse(request)
            users, total = fetch(snapshot, query)
        except MatrixError as error:
            return error.response()
        body: dict[str, Any] = {
            "users": [{"user_id": user_id, "displayname": name, "media_count": count,
                       "media_length": length} for user_id, name, count, length in users],
            "total": total}
        if query.start + query.limit < total:
            body["next_token"] = query.start + len(users)
        return Response.json(body)

    return {MEDIA_STATISTICS: media_statistics}
