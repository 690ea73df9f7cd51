"""Per-user columns kept compactly: the columns of one query share one user-id index.

A collector's per-user query returns a row per user. Kept as one dict per column, every column
would repeat the user ids' hash table; here the columns of a query keep their values in a tuple
aligned to their rows, and the queries share one index (user id -> position): a query whose
users an index still in use holds (as most collectors' users are the users collector's) keeps
only the index position of each row and the row of each position, two 4-byte arrays instead of
a hash table of its own. The cells are kept in machine form where their type allows: integers
and floats in an array of the narrowest item that holds them, text of a few distinct values (a
status, a backend) and booleans as one-byte codes into a tuple of those values. A cell is then
1-8 bytes instead of an 8-byte reference to a 24-32-byte object of its own; the values read
back are the same Python objects of the same types. docs/benchmarks.md has what was measured."""

from __future__ import annotations

import operator
import threading
import weakref
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain, compress, islice, repeat
from typing import Any

from sqlalchemy import Result

# Rows read from the database at a time.
CHUNK_ROWS = 10_000
# The types of a column of text: strings, and None for an empty cell.
TEXT = frozenset((str, type(None)))
# Users per batch of a CSV or JSON answer: a few 64 KiB chunks' worth, written by one C call.
BATCH_ROWS = 512
# Array items for integers, narrowest first, with the range each holds.
INTEGER_ITEMS = (("b", 1 << 7), ("h", 1 << 15), ("i", 1 << 31), ("q", 1 << 63))
Positions = range | list[int]


class Numbers:
    """Cells of one number type (int or float) in an array, and a mask of the empty (None)
    ones if there are any."""

    __slots__ = ("_empty", "_items")

    def __init__(self, items: array[Any], empty: bytes | None) -> None:
        self._items, self._empty = items, empty

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, position: int) -> Any:
        return None if self._empty and self._empty[position] else self._items[position]

    def at(self, positions: Positions) -> list[Any]:
        if isinstance(positions, range):
            found = self._items[positions.start:positions.stop].tolist()
            empty: Iterable[int] = self._empty[positions.start:positions.stop] \
                if self._empty else ()
        else:
            found = list(map(self._items.__getitem__, positions))
            empty = map(self._empty.__getitem__, positions) if self._empty else ()
        for n in compress(range(len(found)), empty):
            found[n] = None
        return found


class Codes:
    """Cells of a few distinct values (text, booleans, None) as one-byte codes into them."""

    __slots__ = ("_codes", "_values")

    def __init__(self, codes: array[int], values: tuple[Any, ...]) -> None:
        self._codes, self._values = codes, values

    def __len__(self) -> int:
        return len(self._codes)

    def __getitem__(self, position: int) -> Any:
        return self._values[self._codes[position]]

    def at(self, positions: Positions) -> list[Any]:
        codes: Iterable[int] = self._codes[positions.start:positions.stop] \
            if isinstance(positions, range) else map(self._codes.__getitem__, positions)
        return list(map(self._values.__getitem__, codes))


Cells = tuple[Any, ...] | Numbers | Codes


def packed(cells: tuple[Any, ...], few_texts: bool) -> Cells:
    """`cells` in the most compact form that reads back the same values: Numbers for cells all
    int or all float (None aside), Codes for booleans or, if `few_texts`, text; as they are
    otherwise (mixed types, many distinct texts, numbers an array cannot hold)."""
    kinds = set(map(type, cells)) - {type(None)}
    if len(kinds) != 1 or (kinds == {str} and not few_texts):
        return cells
    [kind] = kinds
    if kind in (str, bool):
        values = tuple(dict.fromkeys(cells))
        if len(values) > 256:
            return cells
        code = dict(zip(values, range(len(values)), strict=True))
        return Codes(array("B", map(code.__getitem__, cells)), values)
    if kind not in (int, float):
        return cells
    empty = bytes(map(operator.is_, cells, repeat(None))) if None in cells else None
    numbers = cells if empty is None else tuple(0 if v is None else v for v in cells)
    if kind is float:
        return Numbers(array("d", numbers), empty)
    low, high = min(numbers), max(numbers)
    for item, bound in INTEGER_ITEMS:
        if -bound <= low and high < bound:
            return Numbers(array(item, numbers), empty)
    return cells  # beyond 64 bits


class UserIndex:
    """User ids and each one's position: built from the first query that reads them, and
    shared by every later query whose users it holds, so that a million users have one hash
    table however many queries read them."""

    __slots__ = ("__weakref__", "ids", "positions")

    def __init__(self, ids: tuple[Any, ...]) -> None:
        self.ids = ids
        self.positions = dict(zip(ids, _positions(len(ids)), strict=False))


class _Rows:
    """Where one query's rows are in its index. `order` is the index position of each row and
    `where` the row of each index position, with `count` (the absent cell) for a user without
    a row and past the last position; both None when the rows are the index's own, in order."""

    __slots__ = ("count", "index", "order", "where")

    def __init__(self, index: UserIndex, order: array[int] | None = None,
                 where: array[int] | None = None) -> None:
        self.index, self.order, self.where = index, order, where
        self.count = len(index.ids) if order is None else len(order)

    @classmethod
    def aligned(cls, index: UserIndex, order: array[int]) -> _Rows | None:
        """The rows at `order` in `index`; None if a position repeats (a user read twice)."""
        count = len(order)
        where = array("i", repeat(count, len(index.ids) + 1))
        for row, position in enumerate(order):
            if where[position] != count:
                return None
            where[position] = row
        return cls(index, order, where)

    def row(self, user_id: Any) -> int:
        position = self.index.positions.get(user_id)
        if position is None:
            return self.count
        return position if self.where is None else self.where[position]

    def ids(self, start: int = 0, stop: int | None = None) -> tuple[Any, ...]:
        if self.order is None:
            return self.index.ids[start:stop]
        return tuple(map(self.index.ids.__getitem__, self.order[start:stop]))


class UserColumn(Mapping[str, Any]):
    """One column, read like a dict of user id -> value, in the order of its rows."""

    __slots__ = ("_rows", "_values")

    def __init__(self, rows: _Rows, values: Cells) -> None:
        # `values` has a cell past the last row (None, or 0 for counts): the answer for every
        # unknown user, so that a bulk lookup needs no branch.
        self._rows, self._values = rows, values

    def __getitem__(self, user_id: str) -> Any:
        row = self._rows.row(user_id)
        if row == self._rows.count:
            raise KeyError(user_id)
        return self._values[row]

    def get(self, user_id: str, default: Any = None) -> Any:
        row = self._rows.row(user_id)
        return default if row == self._rows.count else self._values[row]

    def __contains__(self, user_id: object) -> bool:
        return self._rows.row(user_id) != self._rows.count

    def __iter__(self) -> Iterator[str]:
        rows = self._rows
        if rows.order is None:
            return iter(rows.index.ids)
        return map(rows.index.ids.__getitem__, rows.order)

    def __len__(self) -> int:
        return self._rows.count

    def keys(self) -> Any:
        """A set of the column's users: the index's own keys view where it holds just them
        (set operations on it run in C)."""
        return self._rows.index.positions.keys() if self._rows.order is None else set(self)

    def items(self) -> Any:
        return zip(self, self.values(), strict=True)

    def values(self) -> Any:
        return self.at(range(self._rows.count))

    def positions(self, user_ids: Sequence[Any]) -> Positions:
        """Where each user's cell is (the None past the end for a user the column lacks); a
        range when the ids are a run of the column's own, as they are when read in its order."""
        rows = self._rows
        first = rows.row(user_ids[0]) if user_ids else rows.count
        if first < rows.count and rows.ids(first, first + len(user_ids)) == tuple(user_ids):
            return range(first, first + len(user_ids))
        index = rows.index
        found = map(index.positions.get, user_ids, repeat(len(index.ids)))
        return list(found if rows.where is None else map(rows.where.__getitem__, found))

    def at(self, positions: Positions) -> Sequence[Any]:
        if not isinstance(self._values, tuple):
            return self._values.at(positions)
        if isinstance(positions, range):
            return self._values[positions.start:positions.stop]
        return list(map(self._values.__getitem__, positions))


def user_columns(rows: Result[Any] | Sequence[Sequence[Any]], names: Sequence[str],
                 absent: Any = None) -> dict[str, UserColumn]:
    """Columns {name: UserColumn} from rows of (user_id, *values), one row per user (a later
    row for the same user wins); `absent` is the cell of a user without a row (0 for counts of
    what the user has, as a user the query found nothing for has none). Rows are read in chunks
    and each chunk is split into columns by zip in C, so a query's rows are never all in memory
    at once as row objects.

    Columns are tuples of plain values, which the garbage collector stops tracking: a list of a
    million cells would be walked by every full collection, while the next run allocates."""
    id_chunks: list[Sequence[Any]] = []
    column_chunks: list[list[Sequence[Any]]] = [[] for _ in names]
    # Per column, its distinct strings so far: drivers return a new string object per row, and
    # a status or a backend name is one of a few. None once the column holds other values
    # (equal numbers of different types must stay apart) or mostly distinct text (names).
    texts: list[dict[str, str] | None] = [{} for _ in names]
    count = 0
    for chunk in rows.partitions(CHUNK_ROWS) if isinstance(rows, Result) else (rows,):
        if not chunk:
            continue
        chunk_ids, *chunk_columns = zip(*chunk, strict=True)
        id_chunks.append(chunk_ids)
        count += len(chunk_ids)
        for n, values in enumerate(chunk_columns):
            distinct = texts[n]
            if distinct is not None and TEXT.issuperset(map(type, values)):
                values = tuple(map(distinct.setdefault, values, values))
                if len(distinct) * 4 > count + 64:
                    texts[n] = None
            else:
                texts[n] = None
            column_chunks[n].append(values)
    ids = tuple(chain.from_iterable(id_chunks))
    columns = [tuple(chain(*chunks, (absent,))) for chunks in column_chunks]
    del id_chunks, column_chunks
    query_rows = _shared_rows(ids)
    if query_rows is None:
        index = UserIndex(ids)
        if len(index.positions) < len(ids):  # repeated ids: keep each one's last row
            kept = (*index.positions.values(), len(ids))
            columns = [tuple(map(column.__getitem__, kept)) for column in columns]
            index = UserIndex(tuple(index.positions))
        query_rows = _Rows(_indexes.add(index))
    return {name: UserColumn(query_rows, packed(column, few is not None))
            for name, column, few in zip(names, columns, texts, strict=True)}


class _Positions:
    """0, 1, 2 ... as the same int objects for every index (an int is 28 bytes), in a tuple
    that the garbage collector does not walk."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ints: tuple[int, ...] = ()

    def __call__(self, count: int) -> tuple[int, ...]:
        with self._lock:
            if len(self._ints) < count:
                self._ints = (*self._ints, *range(len(self._ints), count))
            return self._ints


_positions = _Positions()


class _LiveIndexes:
    """The indexes some column still uses, to share with the next query whose users one
    holds; an index no column uses any more is gone from here too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._indexes: weakref.WeakSet[UserIndex] = weakref.WeakSet()

    def add(self, index: UserIndex) -> UserIndex:
        if index.ids and all(map(str.__instancecheck__, index.ids)):
            with self._lock:
                self._indexes.add(index)
        return index

    def largest_first(self) -> list[UserIndex]:
        with self._lock:
            return sorted(self._indexes, key=lambda index: len(index.ids), reverse=True)


_indexes = _LiveIndexes()


def _shared_rows(ids: tuple[Any, ...]) -> _Rows | None:
    """`ids` as rows of the largest live index that holds each of them, its own if they are
    its ids in its order; None if none does. Text ids only: as dict keys 1, 1.0 and True are
    one, and an index's id would then stand for another type's."""
    if not ids or not all(map(str.__instancecheck__, ids)):
        return None
    for index in _indexes.largest_first():
        if len(index.ids) < len(ids):
            break
        if ids == index.ids:
            return _Rows(index)
        try:
            order = array("i", map(index.positions.__getitem__, ids))
        except KeyError:
            continue
        return _Rows.aligned(index, order)
    return None


def user_ids(columns: Iterable[Mapping[str, Any]]) -> Iterator[Any]:
    """Each user id known to any column once: those of the column with the most users in its
    order, then the others' new ones, largest column first. Columns of one query are one; a
    column whose ids the earlier ones hold adds nothing."""
    distinct: dict[int, Mapping[str, Any]] = {}
    for column in columns:
        distinct.setdefault(id(column._rows if isinstance(column, UserColumn) else column),
                            column)
    earlier: list[Mapping[str, Any]] = []
    for values in sorted(distinct.values(), key=len, reverse=True):  # a stable sort
        new = _new_ids(values, earlier)
        if new is not None:
            yield from new
            earlier.append(values)


def _new_ids(values: Mapping[str, Any],
             earlier: list[Mapping[str, Any]]) -> Iterable[Any] | None:
    """The ids of `values` that none of `earlier` holds, in its order; None if there are none.
    Columns of one index compare positions: a column holding all of the index's users holds
    any other's, and the others' rows are looked up in arrays; otherwise a subset test, which
    builds nothing, then set differences that shrink at once since most columns hold the same
    users."""
    if not earlier:
        return values or None
    rows = values._rows if isinstance(values, UserColumn) else None
    if rows is not None and all(isinstance(seen, UserColumn) and seen._rows.index is rows.index
                                for seen in earlier):
        positions: Iterable[int] = range(len(rows.index.ids)) if rows.order is None \
            else rows.order
        for seen in earlier:
            where, absent = seen._rows.where, seen._rows.count
            if where is None:
                return None
            positions = list(compress(positions, map(absent.__eq__,
                                                     map(where.__getitem__, positions))))
            if not positions:
                return None
        return map(rows.index.ids.__getitem__, positions)
    if any(values.keys() <= seen.keys() for seen in earlier):
        return None
    new: Any = values.keys()
    for seen in earlier:
        new = new - seen.keys()
        if not new:
            return None
    return (user_id for user_id in values if user_id in new)


def user_rows(user_ids: Sequence[Any],
              columns: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A row {"user_id": ..., column: value or None, ...} for each of `user_ids`, its cells
    looked up column by column (cells)."""
    keys = ("user_id", *columns)
    return [dict(zip(keys, row, strict=True))
            for row in zip(user_ids, *cells(columns.values(), user_ids), strict=True)]


def batched(items: Iterable[Any], size: int = BATCH_ROWS) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def cells(columns: Iterable[Mapping[str, Any]],
          user_ids: Sequence[Any]) -> list[Sequence[Any]]:
    """Each column's cells for `user_ids` (None where it has none), looked up in C; the
    positions are found once for all the columns of one query."""
    found: list[Sequence[Any]] = []
    positions: dict[int, Positions] = {}
    for column in columns:
        if isinstance(column, UserColumn):
            query = id(column._rows)
            if query not in positions:
                positions[query] = column.positions(user_ids)
            found.append(column.at(positions[query]))
        else:
            found.append(list(map(column.get, user_ids)))
    return found
