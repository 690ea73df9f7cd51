"""The messages collector where the Synapse fixture has no example: an empty event stream, and a
sender whose server name differs from ours in case only, which Synapse's LIKE counts as local on
SQLite (LIKE ignores ASCII case there) and as remote on PostgreSQL. The day's edges are specified
on both real fixtures in tests/platforms/test_synapse_phone_home.py."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import SYNAPSE, SYNAPSE_PG, changed_copy, collect_json, read_json

UPPER_CASE_SENDER = "@eve:TEST.LOCAL"


def messages(metrics: dict[str, Any], encrypted: str, origin: str) -> float:
    (value,) = [s["value"] for s in metrics["usage_messages"]
                if s["labels"] == {"window": "1d", "encrypted": encrypted, "origin": origin}]
    return value


def test_an_empty_stream_counts_nothing(tmp_path):
    phone_home = read_json(SYNAPSE / "phone_home_stats.json")
    url = changed_copy(SYNAPSE / "homeserver.db", tmp_path, "DELETE FROM events")
    metrics = collect_json(url, "synapse", phone_home["now_ms"] / 1000)["metrics"]
    assert [s["value"] for s in metrics["usage_messages"]] == [0] * 4
    assert [s["value"] for s in metrics["usage_rooms_active"]] == [0] * 2


def insert_message(now_ms: int) -> str:
    return ("INSERT INTO events (stream_ordering, topological_ordering, event_id, type, room_id, "
            "processed, outlier, received_ts, sender) SELECT MAX(stream_ordering) + 1, 1, "
            f"'$upper_case', 'm.room.message', MIN(room_id), TRUE, FALSE, {now_ms - 1000}, "
            f"'{UPPER_CASE_SENDER}' FROM events")


@pytest.mark.parametrize("engine, local", [("sqlite", True), ("postgresql", False)])
def test_the_local_sender_test_is_the_engines_like(request, tmp_path, engine, local):
    fixture = SYNAPSE if engine == "sqlite" else SYNAPSE_PG
    phone_home = read_json(fixture / "phone_home_stats.json")
    statement = insert_message(phone_home["now_ms"])
    if engine == "sqlite":
        url = changed_copy(SYNAPSE / "homeserver.db", tmp_path, statement)
    else:
        url = request.getfixturevalue("postgres_server").restore_dump(
            "synapse_pg_upper_sender", SYNAPSE_PG / "dump.sql")
        database = create_engine(url)
        try:
            with database.begin() as conn:
                conn.execute(text(statement))
        finally:
            database.dispose()
    stats = phone_home["phone_home_payload"]
    metrics = collect_json(url, "synapse", phone_home["now_ms"] / 1000)["metrics"]
    sent = stats["daily_sent_messages"]
    remote = stats["daily_messages"] - sent
    assert messages(metrics, "false", "local") == sent + local
    assert messages(metrics, "false", "remote") == remote + (not local)
