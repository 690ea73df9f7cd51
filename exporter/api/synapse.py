"""Synapse's admin API, drop-in: GET /_synapse/admin/v1/statistics/users/media.

Answers as Synapse 1.163 does on SQLite (research/synapse.md §1; the tests replay every captured
answer): the same checks in the same order, errors as {"errcode", "error"}, the same paging.
Unfiltered calls are answered from the snapshot (media and users collectors); calls with from_ts
or until_ts run one aggregate query like Synapse's. Both sort and search alike on every backend:
text byte-wise, NULL as the smallest value, ties by user id, LIKE with `%` and `_` as wildcards
and ASCII letters in either case, as SQLite does. Media rows without a user id are left out.
"""

from __future__ import annotations

import re
import string
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
from exporter.snapshot import Snapshot

MEDIA_STATISTICS = "/_synapse/admin/v1/statistics/users/media"
ORDER_BY = ("media_length", "media_count", "user_id", "displayname")  # as Synapse lists them
DIRECTIONS = ("b", "f")
# LIMIT and OFFSET are signed 64-bit in SQL; Python would page past that without complaint.
SQL_INT_MAX = 2**63 - 1
ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)

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


def integer(request: Request, name: str) -> int | None:
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
    start = integer(request, "from") or 0
    limit = integer(request, "limit")
    from_ts = integer(request, "from_ts") or 0
    until_ts = integer(request, "until_ts")
    if until_ts is not None and until_ts <= from_ts:
        raise invalid("Query parameter until_ts must be greater than from_ts.")
    search_term = strings(request, "search_term")
    if search_term == "":
        raise invalid("Query parameter search_term cannot be an empty string.")
    direction = strings(request, "dir", DIRECTIONS) or "f"
    return MediaQuery(order_by, start, 100 if limit is None else limit, from_ts, until_ts,
                      search_term, direction == "b")


# --- from the snapshot ----------------------------------------------------------------------


def like(pattern: str) -> Callable[[str | None], bool]:
    """SQLite's LIKE without ESCAPE: `%` any run, `_` any one character, ASCII letters in
    either case; NULL never matches. Not a regex: a term such as `%%%_%%%%` makes a regex
    backtrack exponentially, holding a worker thread for good."""
    folded = re.sub("%+", "%", ascii_fold(pattern))
    if "_" in folded:
        return lambda value: value is not None and wildcard_match(folded, ascii_fold(value))
    parts = folded.split("%")
    return lambda value: value is not None and parts_match(parts, ascii_fold(value))


def ascii_fold(text: str) -> str:
    """ASCII letters in lower case, every other character as it is (str.lower would fold more)."""
    return text.lower() if text.isascii() else text.translate(ASCII_LOWER)


def parts_match(parts: list[str], text: str) -> bool:
    """Whether a pattern without `_`, split at its `%`s, matches all of `text`: it starts with
    the first part, ends with the last and holds the others in order between them. The
    leftmost place of each part is the one to take, so each is one search in C."""
    if len(parts) == 1:
        return text == parts[0]
    first, last = parts[0], parts[-1]
    end = len(text) - len(last)
    if end < len(first) or not text.startswith(first) or not text.endswith(last):
        return False
    at = len(first)
    for part in parts[1:-1]:
        found = text.find(part, at, end)
        if found < 0:
            return False
        at = found + len(part)
    return True


def wildcard_match(pattern: str, text: str) -> bool:
    """Whether `pattern` (runs of `%` collapsed) matches all of `text`. On a mismatch it resumes
    one character later after the last `%`: at most len(text) * (len(text) + 2) steps, whatever
    the pattern."""
    p = t = 0
    star, resume = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == "%":
            star, resume = p, t
            p += 1
        elif p < len(pattern) and pattern[p] in ("_", text[t]):
            p += 1
            t += 1
        elif star >= 0:
            resume += 1
            p, t = star + 1, resume
        else:
            return False
    return set(pattern[p:]) <= {"%"}


def snapshot_rows(snapshot: Snapshot) -> list[Row] | None:
    """Every uploader with the media collector's count and bytes and the users collector's
    display name; None until both have a result."""
    columns = snapshot.user_columns()
    if "media_count" not in columns or "display_name" not in columns:
        return None
    names, sizes = columns["display_name"], columns["media_bytes"]
    return [(user_id, names.get(user_id), count, sizes.get(user_id))
            for user_id, count in columns["media_count"].items()]


def in_order(rows: Iterable[Row], order_by: str, backwards: bool) -> list[Row]:
    column = COLUMN[order_by]

    def key(row: Row) -> tuple[bool, Any]:
        return (True, row[column]) if row[column] is not None else (False, 0)  # NULL first

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
        self._orders: dict[tuple[str, bool], list[Row]] = {}

    def ordered(self, snapshot: Snapshot, query: MediaQuery) -> list[Row] | None:
        with self._lock:
            if snapshot is not self._snapshot:
                self._snapshot, self._rows, self._orders = snapshot, snapshot_rows(snapshot), {}
            if self._rows is None:
                return None
            key = (query.order_by, query.backwards)
            if key not in self._orders:
                self._orders[key] = in_order(self._rows, *key)
            return self._orders[key]


def snapshot_page(ordered: list[Row], query: MediaQuery) -> tuple[list[Row], int]:
    """The page of rows already in the query's order; a search keeps that order."""
    if query.search_term is not None:
        user_id, display_name = (like(p) for p in query.patterns())
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

    def __call__(self, query: MediaQuery) -> Callable[[Connection, Mapping[str, Subquery]],
                                                      tuple[list[Row], int]]:
        def run(conn: Connection, relations: Mapping[str, Subquery]) -> tuple[list[Row], int]:
            page, total = self._statements(relations["media"], conn.dialect.name, query)
            values: dict[str, Any] = {
                "from_ts": query.from_ts, "until_ts": query.until_ts,
                "limit": min(query.limit, SQL_INT_MAX), "offset": min(query.start, SQL_INT_MAX)}
            if query.search_term is not None:
                # lower() folds only ASCII on SQLite and on the C locale Synapse requires of
                # PostgreSQL; the backslash, an escape character there, stays a plain character.
                values["user_pattern"], values["name_pattern"] = (
                    p.lower().replace("\\", "\\\\") for p in query.patterns())
            rows = conn.execute(page, values).all()
            if rows:  # each row carries the number of rows before paging
                return [row[:4] for row in rows], rows[0][4]
            return [], conn.execute(total, values).scalar_one()  # past the end, or limit=0
        return run

    def _statements(self, media: Subquery, dialect: str,
                    query: MediaQuery) -> tuple[Select[Any], Select[Any]]:
        shape = (dialect, query.search_term is not None, bool(query.from_ts),
                 bool(query.until_ts), query.order_by, query.backwards)
        built = self._built.get(shape)
        if built is None or built[0] is not media:  # the relations are rebuilt on a refresh
            built = self._built[shape] = (media, *_page_statements(media, dialect, *shape[1:]))
        return built[1], built[2]


def _page_statements(media: Subquery, dialect: str, searched: bool, since: bool, until: bool,
                     order_by: str, backwards: bool) -> tuple[Select[Any], Select[Any]]:
    """(the page with the count of all rows in each row, the count alone) for one shape."""
    filters = [media.c.user_id.is_not(None)]
    if searched:
        filters.append(or_(
            func.lower(media.c.user_id).like(bindparam("user_pattern"), escape="\\"),
            func.lower(media.c.display_name).like(bindparam("name_pattern"), escape="\\")))
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
            .order_by(order(case((users.c[order_by].is_(None), 0), else_=1)),
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


def routes(context: Context) -> dict[str, Handler]:
    orders = SnapshotOrders()
    pages = DatabasePages()

    def fetch(snapshot: Snapshot, query: MediaQuery) -> tuple[list[Row], int]:
        rows = None if query.filtered_by_time else orders.ordered(snapshot, query)
        if rows is not None:
            return snapshot_page(rows, query)
        if context.read is None:
            raise MatrixError(503, "M_UNKNOWN", "The database cannot be read from this API.")
        try:
            return context.read(["media"], pages(query))
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
