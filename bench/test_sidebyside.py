"""The side-by-side benchmarks' own parts: the load client against our real HTTP server, and how
compare_synapse tells Synapse's answers from ours (Synapse leaves the order of tied rows open).
Bench's own tests live in bench/ (tests/ never imports bench)."""

from __future__ import annotations

from typing import Any

from bench.compare_synapse import agreement
from bench.sidebyside import Load, measure, percentile, static_floor

ALICE = {"user_id": "@alice:x", "displayname": "Alice", "media_count": 2, "media_length": 10}
BOB = {"user_id": "@bob:x", "displayname": "Bob", "media_count": 2, "media_length": 20}
CAROL = {"user_id": "@carol:x", "displayname": "Carol", "media_count": 5, "media_length": 30}


def page(*users: dict[str, Any], total: int = 3, next_token: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"users": list(users), "total": total}
    if next_token is not None:
        body["next_token"] = next_token
    return body


def test_the_load_client_counts_every_request_and_each_failure(tmp_path):
    body = b"usage_users 1.0\n" * 100
    with static_floor(body, "text/plain", tmp_path) as floor:
        served = measure(floor.port, "/metrics", Load(clients=3, requests=30, warmup=3))
        refused = measure(floor.port, "/nowhere", Load(clients=2, requests=10, warmup=0))
    assert (served.requests, served.errors, served.body_bytes) == (30, 0, len(body))
    assert 0 < served.p50_ms <= served.p99_ms
    assert (refused.requests, refused.errors) == (10, 10)


def test_percentiles_are_nearest_rank():
    values = [float(n) for n in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == \
        (50.0, 99.0, 100.0)
    assert percentile([7.0], 0.99) == 7.0


def test_identical_answers_are_equal():
    assert agreement(page(ALICE, BOB, CAROL), page(ALICE, BOB, CAROL), "user_id") == "equal"


def test_tied_rows_may_come_in_either_order():
    assert agreement(page(ALICE, BOB, CAROL), page(BOB, ALICE, CAROL), "media_count") == \
        "equal up to ties"


def test_which_tied_rows_end_a_page_is_open_only_when_more_pages_follow():
    theirs = page(CAROL, ALICE, total=3, next_token=2)
    ours = page(CAROL, BOB, total=3, next_token=2)
    assert agreement(theirs, ours, "media_count") == "equal up to ties"
    assert agreement(page(CAROL, ALICE, total=2), page(CAROL, BOB, total=2),
                     "media_count").startswith("DIFFERENT")


def test_other_values_order_or_totals_differ():
    heavier = {**ALICE, "media_length": 11}
    assert agreement(page(ALICE, BOB), page(heavier, BOB), "user_id").startswith("DIFFERENT")
    assert agreement(page(ALICE, BOB), page(BOB, ALICE), "user_id").startswith("DIFFERENT")
    assert agreement(page(ALICE, total=3), page(ALICE, total=4), "user_id").startswith(
        "DIFFERENT")
