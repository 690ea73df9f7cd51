"""Synapse's phone-home usage numbers (rooms, messages, R30v2 retention, user types), on the real
Synapse databases, SQLite and PostgreSQL: each equals what Synapse's own store code reported at
now_ms in that fixture's phone_home_stats.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from collectors.base import REFRESH_NOTE
from collectors.messages import DAY_MS
from collectors.retention import CLIENTS
from exporter.exposition import snapshot_json
from exporter.runner import Runner
from tests.conftest import (
    SYNAPSE,
    SYNAPSE_PG,
    collect_json,
    fixture_copy,
    make_config,
    read_json,
    run_collector,
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fixture(request: pytest.FixtureRequest) -> tuple[str, Path]:
    """Each real Synapse database and the directory holding its own answers."""
    if request.param == "sqlite":
        return f"sqlite:///{fixture_copy(SYNAPSE / 'homeserver.db')}", SYNAPSE
    return request.getfixturevalue("synapse_pg_url"), SYNAPSE_PG


@pytest.fixture(scope="module")
def phone_home(fixture: tuple[str, Path]) -> dict[str, Any]:
    return read_json(fixture[1] / "phone_home_stats.json")


@pytest.fixture(scope="module")
def stats(phone_home: dict[str, Any]) -> dict[str, Any]:
    return phone_home["phone_home_payload"]


@pytest.fixture(scope="module")
def metrics(fixture: tuple[str, Path], phone_home: dict[str, Any]) -> dict[str, Any]:
    return collect_json(fixture[0], "synapse", phone_home["now_ms"] / 1000)["metrics"]


def labelled(metric: list[dict[str, Any]], **labels: str) -> float:
    """The one sample whose labels include `labels`."""
    (value,) = [sample["value"] for sample in metric
                if labels.items() <= sample["labels"].items()]
    return value


def test_the_fixtures_are_the_engines_they_claim(fixture, stats):
    engine = create_engine(fixture[0])
    try:
        assert engine.dialect.name == {"sqlite3": "sqlite",
                                       "psycopg2": "postgresql"}[stats["database_engine"]]
    finally:
        engine.dispose()


def test_rooms_equal_total_room_count(metrics, stats):
    assert metrics["usage_rooms"] == stats["total_room_count"]


@pytest.mark.parametrize("encrypted, kind", [("false", ""), ("true", "e2ee_")])
def test_messages_and_active_rooms_equal_daily_counts(metrics, stats, encrypted, kind):
    messages = metrics["usage_messages"]
    local = labelled(messages, window="1d", encrypted=encrypted, origin="local")
    remote = labelled(messages, window="1d", encrypted=encrypted, origin="remote")
    assert local + remote == stats[f"daily_{kind}messages"]
    assert local == stats[f"daily_sent_{kind}messages"]
    assert labelled(metrics["usage_rooms_active"], window="1d", encrypted=encrypted) == \
        stats[f"daily_active_{kind}rooms"]


def test_retained_users_equal_r30v2(metrics, stats):
    assert metrics["usage_users_retained"] == stats["r30v2_users_all"]
    assert set(metrics["usage_users_retained_by_client"]) == set(CLIENTS)
    for client, count in metrics["usage_users_retained_by_client"].items():
        assert count == stats[f"r30v2_users_{client}"], client


def test_registrations_equal_daily_user_types_and_nonbridged_users(metrics, stats):
    by_type = metrics["usage_users_by_type"]
    assert by_type["native"] + by_type["guest"] == stats["total_nonbridged_users"]
    assert sum(by_type.values()) == stats["total_users"]
    for kind in ("native", "guest", "bridged"):
        assert labelled(metrics["usage_users_registered"], window="1d", type=kind) == \
            stats[f"daily_user_type_{kind}"], kind


@pytest.mark.parametrize("name, names", [
    ("rooms", {"usage_rooms"}),
    ("messages", {"usage_messages", "usage_rooms_active"}),
    ("retention", {"usage_users_retained", "usage_users_retained_by_client"}),
    ("registrations", {"usage_users_by_type", "usage_users_registered"}),
])
def test_each_metric_says_it_is_refreshed_on_a_schedule(fixture, name, names):
    _, result = run_collector(fixture[0], "synapse", name)
    assert {metric.name for metric in result.metrics} == names
    for metric in result.metrics:
        assert REFRESH_NOTE in metric.help, metric.name


def test_the_day_starts_after_the_first_event_received_within_it(fixture):
    """With the day's start exactly on each event's receive time, and 1 ms either side, the
    messages counted are those after the first event received at or after the start, as
    Synapse's stream_ordering_day_ago makes them: that event itself is not counted. The fixture
    rows, read plainly: receive times rise with positions, so that event is the earliest."""
    engine = create_engine(fixture[0])
    try:
        with engine.connect() as conn:
            events = conn.execute(text("SELECT stream_ordering, received_ts, type FROM events "
                                       "ORDER BY stream_ordering")).all()
    finally:
        engine.dispose()
    received = [row.received_ts for row in events]
    assert received == sorted(received)

    def expected(now_ms: int) -> int:
        first = min((row.stream_ordering for row in events
                     if row.received_ts >= now_ms - DAY_MS), default=events[-1][0] + 1)
        return sum(row.type == "m.room.message" and row.stream_ordering > first
                   for row in events)

    now_ms = 0
    runner = Runner(make_config(fixture[0], "synapse"), clock=lambda: now_ms / 1000)
    try:
        for event in events:
            for shift in (-1, 0, 1):
                now_ms = event.received_ts + DAY_MS + shift
                result = runner.run("messages").collectors["messages"]
                assert result.state == "ok", result.last_error
                messages = snapshot_json(runner.snapshot)["metrics"]["usage_messages"]
                counted = sum(labelled(messages, encrypted="false", origin=origin)
                              for origin in ("local", "remote"))
                assert counted == expected(now_ms), (event.stream_ordering, shift)
    finally:
        runner.close()
