"""Per-user rows of the snapshot: every user once, filtered by a search term, ordered by any
column and cut into pages behind an opaque token, without copying the rows.

Order: numbers (booleans as 0/1), then text (case-folded, then as written), then any other value
by its text; missing values (null) last in both directions; ties by user id, in the same
direction. A page is the first `limit` rows after the token's position (keyset paging): a bisect
into the user ids sorted once per snapshot and order, then a slice (a search term filters the
ids in one pass). Rows added or removed between two calls are neither repeated nor skipped.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import itertools
import json
import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import compress, repeat
from typing import TYPE_CHECKING, Any

from exporter.usercolumns import cells, user_ids, user_rows

if TYPE_CHECKING:
    from exporter.snapshot import Snapshot

Columns = Mapping[str, Mapping[str, Any]]
# (flag, rank, value, value as written, user id): flag orders nulls last in either direction.
Key = tuple[int, int, Any, str, str]
MAX_TOKEN_LENGTH = 16384
NUMBER, TEXT, OTHER = 0, 1, 2


class TokenError(ValueError):
    """`from` is not a next_token of this query."""


def sort_key(value: Any, user_id: str, descending: bool) -> Key:
    if value is None:
        return (0 if descending else 1, NUMBER, 0, "", user_id)
    flag = 1 if descending else 0
    if isinstance(value, bool):
        return (flag, NUMBER, int(value), "", user_id)
    if isinstance(value, Decimal) and value.is_finite():
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        return (flag, NUMBER, value, "", user_id)
    if isinstance(value, str):
        return (flag, TEXT, value.casefold(), value, user_id)
    return (flag, OTHER, str(value), "", user_id)


@dataclass(frozen=True)
class UserQuery:
    order_by: str
    descending: bool
    search_term: str
    limit: int

    def token(self, key: Key) -> str:
        position = {"o": self.order_by, "d": self.descending, "q": self.search_term,
                    "k": list(key)}
        raw = json.dumps(position, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def position(self, token: str) -> Key:
        """The key a token resumes after; TokenError if it is not one of this query's."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise TokenError("is too long to be a next_token")
        try:
            raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
            position = json.loads(raw)
        except (binascii.Error, ValueError, RecursionError):
            raise TokenError("is not a next_token") from None
        if not isinstance(position, dict) or set(position) != {"o", "d", "q", "k"}:
            raise TokenError("is not a next_token")
        if (position["o"], position["d"], position["q"]) != (
                self.order_by, self.descending, self.search_term):
            raise TokenError("belongs to another query: repeat its order_by, dir and search_term")
        key = position["k"]
        if not (isinstance(key, list) and len(key) == 5 and _valid_key(*key)):
            raise TokenError("is not a next_token")
        return (key[0], key[1], key[2], key[3], key[4])

    def key_of(self, columns: Columns) -> Callable[[str], Key]:
        values = columns.get(self.order_by, {})
        if self.order_by == "user_id":
            return lambda user_id: sort_key(user_id, user_id, self.descending)
        return lambda user_id: sort_key(values.get(user_id), user_id, self.descending)

    def order(self, columns: Columns) -> tuple[str, ...]:
        """Every user id, ascending by its key; built once per snapshot and order (see
        cached_order), so that a page is a bisect and a slice. Keys are unique (they end with
        the user id) and only meet keys of one rank, so mixed types never raise.

        Built without a key per user: the ids sorted (the last tie-break), then their values
        sorted stably (text as written, then case-folded), nulls after them (before, walking
        backwards); a user id order is reused while the user ids are the same."""
        if self.order_by == "user_id":
            return _user_id_order(tuple(user_ids(columns.values())))
        ids = sorted(user_ids(columns.values()))
        [values] = cells([columns.get(self.order_by, {})], ids)
        nulls = tuple(compress(ids, map(operator.is_, values, repeat(None))))
        positions = tuple(compress(range(len(ids)), map(operator.is_not, values, repeat(None))))
        present = tuple(map(values.__getitem__, positions))
        ranked = tuple(map(ids.__getitem__, map(positions.__getitem__, _ascending(present))))
        return (*nulls, *ranked) if self.descending else (*ranked, *nulls)

    def cached_order(self, snapshot: Snapshot) -> tuple[str, ...]:
        """self.order of the snapshot's columns, built once per snapshot (by user id: in
        either direction, the same)."""
        descending = self.descending and self.order_by != "user_id"
        return snapshot.memo(("users", self.order_by, descending),
                             lambda: self.order(snapshot.user_columns()))

    def page(self, columns: Columns, order: Sequence[str], after: Key | None) -> tuple[
            list[dict[str, Any]], int, Key | None]:
        """The rows of one page, how many rows match in all, and the key to resume after if
        more rows follow. `order` is self.order(columns)."""
        key_of = self.key_of(columns)
        if self.descending:
            end = len(order) if after is None else bisect.bisect_left(order, after, key=key_of)
            walk: Iterable[str] = (order[n] for n in range(end - 1, -1, -1))
        else:
            start = 0 if after is None else bisect.bisect_right(order, after, key=key_of)
            walk = (order[n] for n in range(start, len(order)))
        total = len(order)
        if self.search_term:
            term = self.search_term.casefold()
            names = columns.get("display_name", {})

            def matches(user_id: str) -> bool:
                name = names.get(user_id)
                return term in user_id.casefold() or (
                    isinstance(name, str) and term in name.casefold())

            total = sum(map(matches, order))
            walk = filter(matches, walk)
        picked = list(itertools.islice(walk, self.limit + 1))
        more = len(picked) > self.limit
        rows = user_rows(picked[:self.limit], columns)
        return rows, total, key_of(picked[self.limit - 1]) if more else None


def prepare_first_page(snapshot: Snapshot) -> None:
    """Build the order of the first page by default (by user id) as a snapshot is published,
    in the refresh thread, so that no API call waits for it."""
    UserQuery("user_id", False, "", 1).cached_order(snapshot)


class _LastOrder:
    """The last user id order built and the ids it was built from: a refresh usually finds the
    same users, whose order then needs no sort."""

    def __init__(self) -> None:
        self.ids: tuple[str, ...] = ()
        self.order: tuple[str, ...] = ()


_last_order = _LastOrder()


def _user_id_order(ids: tuple[str, ...]) -> tuple[str, ...]:
    last = _last_order.ids, _last_order.order  # read once: another thread may replace both
    if ids == last[0]:
        return last[1]
    order = tuple(sorted(ids))
    if all(map(str.__instancecheck__, order)):  # text ids: case-folded first, stably
        order = tuple(sorted(order, key=str.casefold))
    else:
        order = tuple(sorted(order, key=lambda user_id: sort_key(user_id, user_id, False)))
    _last_order.ids, _last_order.order = ids, order
    return order


def _ascending(values: Sequence[Any]) -> list[int]:
    """Positions of `values` (no None among them) in the order of their sort keys, equal keys
    in position order: by the values themselves where they are all integers, floats without
    NaN, or all text; by sort_key otherwise."""
    kinds = set(map(type, values))
    order = sorted(range(len(values)), key=values.__getitem__) \
        if kinds <= {int, float, str} and not (kinds & {int, float} and str in kinds) \
        and not (float in kinds and any(map(math.isnan, values))) \
        else sorted(range(len(values)), key=lambda n: sort_key(values[n], "", False))
    if kinds == {str}:
        folded = tuple(map(str.casefold, values))
        order.sort(key=folded.__getitem__)
    return order


def _valid_key(flag: Any, rank: Any, value: Any, written: Any, user_id: Any) -> bool:
    """A key a row could have: the types that rank compares, so a forged token cannot make
    two keys incomparable."""
    if flag not in (0, 1) or isinstance(flag, bool) or not isinstance(user_id, str):
        return False
    if rank == NUMBER and not isinstance(rank, bool):
        return (isinstance(value, int | float) and not isinstance(value, bool)
                and not (isinstance(value, float) and math.isnan(value)) and written == "")
    return rank in (TEXT, OTHER) and not isinstance(rank, bool) and isinstance(value, str) \
        and isinstance(written, str)
