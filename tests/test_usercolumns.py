"""Per-user columns read like dicts of user id -> value, and share what can be shared."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from exporter.usercolumns import CHUNK_ROWS, UserColumn, cells, user_columns, user_ids

ROWS = [("alice", "Alice", 3), ("bob", None, 0), ("carol", "Carol", None)]


def test_a_column_reads_like_the_dict_of_its_rows() -> None:
    names = user_columns(ROWS, ("name", "files"))["name"]
    expected = {"alice": "Alice", "bob": None, "carol": "Carol"}
    assert names == expected
    assert dict(names) == expected
    assert list(names) == list(names.keys()) == ["alice", "bob", "carol"]
    assert list(names.items()) == list(expected.items())
    assert list(names.values()) == list(expected.values())
    assert len(names) == 3 and "bob" in names and "dave" not in names
    assert names["alice"] == "Alice" and names.get("bob", "x") is None
    assert names.get("dave") is None and names.get("dave", 0) == 0
    with pytest.raises(KeyError):
        names["dave"]


def test_key_views_compare_as_sets_like_a_dicts() -> None:
    columns = user_columns(ROWS, ("name", "files"))
    assert columns["name"].keys() <= {"alice": 1, "bob": 1, "carol": 1, "dave": 1}.keys()
    assert columns["files"].keys() - {"bob": 1}.keys() == {"alice", "carol"}


def test_a_later_row_for_the_same_user_wins_as_in_a_dict() -> None:
    rows = [("alice", 1), ("bob", 2), ("alice", 3)]
    column = user_columns(rows, ("files",))["files"]
    assert dict(column) == dict(rows)
    assert list(column.items()) == list(dict(rows).items())


def test_no_rows_make_empty_columns() -> None:
    columns = user_columns([], ("name", "files"))
    assert set(columns) == {"name", "files"}
    assert dict(columns["name"]) == {} and columns["files"].get("alice") is None


def test_the_columns_of_one_query_share_one_index() -> None:
    columns = user_columns(ROWS, ("name", "files"))
    assert columns["name"]._rows is columns["files"]._rows


def test_user_ids_of_different_queries_are_one_string_each() -> None:
    first = user_columns([("".join(["al", "ice"]), 1)], ("files",))["files"]
    second = user_columns([("".join(["ali", "ce"]), 2)], ("shares",))["shares"]
    assert next(iter(first)) is next(iter(second))


def test_repeated_text_is_one_object_and_numbers_keep_their_types() -> None:
    rows = [(f"u{n}", "".join(["en", "abled"]), n % 2 == 0, n) for n in range(4)]
    columns = user_columns(rows, ("status", "is_admin", "files"))
    statuses = list(columns["status"].values())
    assert all(status is statuses[0] for status in statuses)
    assert [type(v) for v in columns["is_admin"].values()] == [bool] * 4
    mixed = user_columns([("a", 1), ("b", True), ("c", 1.0), ("d", "1")], ("value",))["value"]
    assert [(type(v), v) for v in mixed.values()] == [(int, 1), (bool, True), (float, 1.0),
                                                      (str, "1")]


def test_ids_that_are_not_text_are_kept_as_they_are() -> None:
    column = user_columns([(7, "seven"), (8, "eight")], ("name",))["name"]
    assert dict(column) == {7: "seven", 8: "eight"}


def test_a_query_result_is_read_in_chunks_with_every_row_kept(tmp_path) -> None:
    path = tmp_path / "users.db"
    count = 2 * CHUNK_ROWS + 17
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (uid TEXT, name TEXT, files INTEGER)")
        db.executemany("INSERT INTO users VALUES (?, ?, ?)",
                       ((f"user{n:06d}", f"User {n}", n * 3) for n in range(count)))
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        columns = user_columns(conn.execute(text("SELECT uid, name, files FROM users")),
                               ("name", "files"))
        rows = conn.execute(text("SELECT uid, name, files FROM users")).all()
    engine.dispose()
    assert dict(columns["name"]) == {uid: name for uid, name, _ in rows}
    assert dict(columns["files"]) == {uid: files for uid, _, files in rows}
    assert len(columns["files"]) == count


def test_cells_looks_up_every_column_with_none_for_users_it_lacks() -> None:
    columns = user_columns(ROWS, ("name", "files"))
    sessions = {"bob": 2, "dave": 1}
    found = cells([columns["name"], columns["files"], sessions], ["dave", "carol", "bob"])
    assert [list(column) for column in found] == [[None, "Carol", None], [None, None, 0],
                                                  [1, None, 2]]


def test_a_column_is_a_read_only_mapping() -> None:
    column = user_columns(ROWS, ("name", "files"))["name"]
    assert isinstance(column, UserColumn)
    with pytest.raises(TypeError):
        column["alice"] = "Mallory"  # type: ignore[index]


def union_largest_first(columns: list[dict[str, Any]]) -> list[str]:
    ids: dict[str, None] = {}
    for values in sorted(columns, key=len, reverse=True):
        ids.update(dict.fromkeys(values))
    return list(ids)


@pytest.mark.parametrize("columns", [
    [],
    [{"a": 1, "b": 2, "c": 3}],
    # columns within the largest: nothing new
    [{"c": 1, "a": 2}, {"a": 1, "b": 2, "c": 3}, {}],
    # columns with users the larger ones lack, in their own order
    [{"a": 1}, {"z": 1, "a": 2, "y": 3}, {"x": 1, "y": 2, "a": 3}],
    # a column covered only by the union of two others
    [{"a": 1, "b": 2}, {"c": 1}, {"b": 1, "c": 2}, {"d": 1, "a": 2}],
])
def test_user_ids_lists_each_user_once_largest_column_first(columns) -> None:
    assert list(user_ids(columns)) == union_largest_first(columns)


def test_user_ids_takes_the_columns_of_one_query_once_in_their_row_order() -> None:
    columns = user_columns([("b", 1, 2), ("a", 3, 4), ("c", 5, 6)], ("x", "y"))
    others = user_columns([("d", 1), ("a", 2)], ("z",))
    assert list(user_ids([*others.values(), *columns.values()])) == ["b", "a", "c", "d"]


def test_cells_of_a_run_of_a_columns_own_ids_are_its_values_in_order() -> None:
    columns = user_columns([(f"u{n}", n, -n) for n in range(10)], ("plus", "minus"))
    assert columns["plus"].positions(["u3", "u4", "u5"]) == range(3, 6)
    def found(ids: list[str]) -> list[list[Any]]:
        return [list(column) for column in cells(columns.values(), ids)]

    assert found(["u3", "u4", "u5"]) == [[3, 4, 5], [-3, -4, -5]]
    assert found(["u3", "u5", "u4"]) == [[3, 5, 4], [-3, -5, -4]]
    assert found(["u8", "u9", "zz"]) == [[8, 9, None], [-8, -9, None]]


def test_cells_are_kept_in_machine_form_and_read_back_as_the_same_values() -> None:
    rows = [(f"u{n}", n, n * 1000, float(n) / 3, n % 2 == 0, ("on", "off")[n % 2],
             None if n % 3 else n, 2**70 + n) for n in range(300)]
    names = ("small", "large", "ratio", "flag", "state", "sometimes", "huge")
    columns = user_columns(rows, names)
    kinds = {name: type(column._values).__name__ for name, column in columns.items()}
    assert kinds == {"small": "Numbers", "large": "Numbers", "ratio": "Numbers",
                     "flag": "Codes", "state": "Codes", "sometimes": "Numbers",
                     "huge": "tuple"}  # beyond 64 bits: as read
    assert columns["small"]._values._items.typecode == "h"  # 0..299: two bytes a cell
    for n, name in enumerate(names, start=1):
        expected = [row[n] for row in rows]
        column = columns[name]
        assert [(type(v), v) for v in column.values()] == [(type(v), v) for v in expected]
        assert [column[f"u{k}"] for k in (5, 6, 299)] == [expected[k] for k in (5, 6, 299)]
        ids = ["u7", "nobody", "u3"]
        assert list(cells([column], ids)[0]) == [expected[7], None, expected[3]]


def test_absent_counts_stay_zero_in_machine_form() -> None:
    column = user_columns([("a", 2), ("b", 5)], ("shares",), absent=0)["shares"]
    assert type(column._values).__name__ == "Numbers"
    assert list(cells([column], ["b", "zed"])[0]) == [5, 0]


def test_a_query_whose_users_a_live_index_holds_shares_it_and_keeps_its_row_order() -> None:
    everyone = user_columns([(f"s{n}", n) for n in range(50)], ("files",))["files"]
    again = user_columns([(f"s{n}", -n) for n in range(50)], ("files",))["files"]
    some = user_columns([("s7", "x"), ("s3", "y"), ("s40", None)], ("name",))["name"]
    assert again._rows.index is some._rows.index is everyone._rows.index
    assert list(some.items()) == [("s7", "x"), ("s3", "y"), ("s40", None)]
    assert "s3" in some and "s4" not in some and some.get("s4", 0) == 0 and len(some) == 3
    with pytest.raises(KeyError):
        some["s4"]
    assert list(cells([some, again], ["s40", "s4", "zz"])[0]) == [None, None, None]
    assert list(user_ids([some, everyone])) == list(everyone)
    assert list(user_ids([some])) == ["s7", "s3", "s40"]
