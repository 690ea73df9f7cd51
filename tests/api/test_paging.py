"""The user orders paging walks: the order of sort_key's keys, built without a key per user,
and the default order built as a snapshot is published."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from collectors.base import CollectorResult
from exporter.api.paging import UserQuery, prepare_first_page, sort_key
from exporter.snapshot import Bodies, SnapshotStore
from exporter.usercolumns import user_columns, user_ids

POOLS = {
    "integers": [None, 1, 2, 3, 5, 10**12],
    "numbers with nan": [None, 1.5, 2, float("nan"), 3, -1],
    "text": [None, "a", "B", "b", "A", "é", "É"],
    "mixed": [None, True, False, 1, 0, "x", "X", Decimal("2.5"), Decimal("NaN"),
              float("nan"), b"z", 3.0],
}


def keyed_order(columns: dict[str, Any], order_by: str, descending: bool) -> tuple[str, ...]:
    values = columns.get(order_by, {})
    value = (lambda user: user) if order_by == "user_id" else values.get
    return tuple(sorted(user_ids(columns.values()),
                        key=lambda user: sort_key(value(user), user, descending)))


@pytest.mark.parametrize("pool", POOLS.values(), ids=POOLS)
def test_an_order_is_that_of_the_sort_keys(pool: list[Any]) -> None:
    chance = random.Random(7)
    for _ in range(30):
        users = chance.sample([f"u{n}" for n in range(60)] + ["U5", "Ua", "ü"],
                              chance.randint(0, 30))
        columns: dict[str, Any] = user_columns(
            [(user, chance.choice(pool)) for user in users], ["value"])
        columns |= user_columns([(user, 1) for user in ["extra", *users[:3]]], ["other"])
        for order_by in ("value", "user_id"):
            for descending in (False, True):
                assert UserQuery(order_by, descending, "", 5).order(columns) == \
                    keyed_order(columns, order_by, descending)


def test_the_first_page_order_is_built_before_the_snapshot_is_published() -> None:
    store = SnapshotStore("test", ["fake"], lambda snapshot: Bodies(),
                          prepare=prepare_first_page)
    store.record_success("fake", CollectorResult(metrics=(), users=user_columns(
        [("b", 1), ("A", 2), ("a", 3)], ["files"])), 0.0)
    snapshot = store.current
    built = snapshot.memo(("users", "user_id", False), lambda: pytest.fail("built again"))
    assert built == ("A", "a", "b")
    assert UserQuery("user_id", True, "", 1).cached_order(snapshot) is built
