"""The history store keeps each day once, however often or by how many replicas it is written,
survives restarts, drops days past retention, and refuses a store from a newer version."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import insert

from exporter.config import HistoryConfig
from exporter.history import HistoryError, HistoryRows, HistoryStore, schema, user_key

TODAY = date(2026, 11, 23)
YESTERDAY = TODAY - timedelta(days=1)


def rows(day: date, *users: str, tz: str = "UTC") -> HistoryRows:
    return HistoryRows(active=tuple((tz, day, user_key(u)) for u in users))


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.db'}"
    return request.getfixturevalue("postgres_server").create_database(
        f"history_{request.node.name.split('[')[0][-30:]}")


def test_writing_the_same_day_twice_counts_each_user_once(history_url):
    store = HistoryStore(HistoryConfig(url=history_url))
    store.write(rows(TODAY, "alice", "bob"), TODAY)
    store.write(rows(TODAY, "bob", "carol"), TODAY)
    assert store.daily_active("UTC", YESTERDAY) == [(TODAY, 3)]
    store.close()


def test_a_restarted_store_still_has_every_day(history_url):
    first = HistoryStore(HistoryConfig(url=history_url))
    first.write(rows(YESTERDAY, "alice"), YESTERDAY)
    first.close()
    second = HistoryStore(HistoryConfig(url=history_url))
    second.write(rows(TODAY, "alice", "bob"), TODAY)
    assert second.daily_active("UTC", YESTERDAY) == [(YESTERDAY, 1), (TODAY, 2)]
    second.close()


def test_two_replicas_writing_the_same_day_agree(history_url):
    one, two = (HistoryStore(HistoryConfig(url=history_url)) for _ in range(2))
    one.write(rows(TODAY, "alice", "bob"), TODAY)
    two.write(rows(TODAY, "bob", "carol"), TODAY)
    one.write(HistoryRows(statuses=(("UTC", TODAY, "enabled", 10),)), TODAY)
    two.write(HistoryRows(statuses=(("UTC", TODAY, "enabled", 11),)), TODAY)
    assert one.daily_active("UTC", TODAY) == two.daily_active("UTC", TODAY) == [(TODAY, 3)]
    assert one.status_counts("UTC", TODAY) == two.status_counts("UTC", TODAY) == {
        "enabled": [(TODAY, 11)]}  # the latest sample of the day wins
    one.close()
    two.close()


def test_time_zones_are_kept_apart(history_url):
    store = HistoryStore(HistoryConfig(url=history_url))
    store.write(rows(TODAY, "alice", tz="UTC"), TODAY)
    store.write(rows(YESTERDAY, "alice", tz="America/New_York"), TODAY)
    assert sorted(store.timezones()) == ["America/New_York", "UTC"]
    assert store.daily_active("America/New_York", YESTERDAY) == [(YESTERDAY, 1)]
    store.close()


def test_a_zone_with_only_status_counts_is_listed(history_url):
    """Users by status are kept for every zone, active users only where someone was active."""
    store = HistoryStore(HistoryConfig(url=history_url))
    store.write(rows(TODAY, "alice", tz="UTC"), TODAY)
    store.write(HistoryRows(statuses=(("Asia/Kolkata", TODAY, "enabled", 2),)), TODAY)
    assert sorted(store.timezones()) == ["Asia/Kolkata", "UTC"]
    store.close()


def test_days_past_retention_are_dropped(tmp_path):
    store = HistoryStore(HistoryConfig(url=f"sqlite:///{tmp_path / 'h.db'}", retention_days=7))
    old = TODAY - timedelta(days=8)
    store.write(rows(old, "alice"), old)
    store.write(HistoryRows(statuses=(("UTC", old, "enabled", 1),)), old)
    store.write(rows(TODAY, "bob"), TODAY)
    assert store.daily_active("UTC", old) == [(TODAY, 1)]
    assert store.status_counts("UTC", old) == {}
    store.close()


def test_a_store_from_a_newer_exporter_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    store = HistoryStore(HistoryConfig(url=url))
    with store.engine.begin() as conn:
        conn.execute(insert(schema).values(version=99))
    store.close()
    with pytest.raises(HistoryError, match="schema version 99, newer than"):
        HistoryStore(HistoryConfig(url=url))


def test_user_keys_are_stable_and_hold_no_names():
    assert user_key("alice") == user_key("alice") != user_key("bob")
    assert -(2**63) <= user_key("alice") < 2**63
