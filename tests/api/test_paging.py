"""exporter.api.paging.user_ids: every user id of any column once, in the order of the union."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.api.paging import user_ids


def union_order(columns: dict[str, dict[str, Any]]) -> list[str]:
    ids: dict[str, None] = {}
    for values in columns.values():
        ids.update(dict.fromkeys(values))
    return list(ids)


@pytest.mark.parametrize("columns", [
    {},
    {"status": {"a": 1, "b": 2, "c": 3}},
    # later columns within the first: nothing new
    {"status": {"a": 1, "b": 2, "c": 3}, "sessions": {"c": 1, "a": 2}, "media": {}},
    # later columns with users the earlier ones lack, in their own order
    {"status": {"a": 1}, "used": {"z": 1, "a": 2, "y": 3}, "sessions": {"x": 1, "y": 2, "a": 3}},
    # a column covered only by the union of two earlier ones
    {"s": {"a": 1, "b": 2}, "t": {"c": 1}, "u": {"b": 1, "c": 2}, "v": {"d": 1, "a": 2}},
])
def test_each_user_id_once_in_the_order_of_the_union(columns):
    assert list(user_ids(columns)) == union_order(columns)
