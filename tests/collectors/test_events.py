"""The events collector: per kind, events, distinct users and distinct subjects in the last hour,
today in the configured zone, the last 7 and 31 days and the recent days (whole local days plus
today), and all time, undated events in the total only."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from exporter.exposition import snapshot_json
from exporter.runner import Runner
from tests.conftest import NEXTCLOUD_DB, make_config, sqlite_execute

NOW = datetime(2026, 3, 9, 2, 30, tzinfo=ZoneInfo("UTC"))
EVENTS_SQL = "SELECT kind, who AS user_id, what AS subject, happened AS at FROM log"


@pytest.fixture
def events_db(tmp_path):
    """Events over 60 days, some without a user or a subject, some undated, and events exactly
    on the window edges."""
    rng = random.Random(3)
    rows = [(rng.choice(("change", "command")), rng.choice(("ann", "bob", "cy", None)),
             rng.choice(("sw1", "sw2", "sw3", None)),
             NOW.timestamp() - rng.uniform(0, 60 * 86400)) for _ in range(600)]
    rows += [("change", "dee", "sw9", None), ("form", None, "f1", None),
             ("change", "eve", None, NOW.timestamp() - 3600)]
    path = tmp_path / "events.db"
    sqlite_execute(path, "CREATE TABLE log (kind TEXT, who TEXT, what TEXT, happened REAL)",
                   *(f"INSERT INTO log VALUES ({', '.join(sql(v) for v in row)})"
                     for row in rows))
    return path, rows


def sql(value: object) -> str:
    return "NULL" if value is None else repr(value) if isinstance(value, str) else str(value)


def spans(zone: str, recent_days: int) -> dict[str, tuple[float, float]]:
    """The windows as the docstring of collectors/events.py defines them, by datetime arithmetic."""
    local = NOW.astimezone(ZoneInfo(zone))
    midnight = local.replace(hour=0, minute=0, second=0)

    def back(days: int) -> float:
        return (midnight - timedelta(days=days)).replace(tzinfo=ZoneInfo(zone)).timestamp()

    return {"1h": (NOW.timestamp() - 3600, float("inf")),
            "today": (back(0), back(-1)), "7d": (back(7), float("inf")),
            "31d": (back(31), float("inf")), "recent": (back(recent_days), float("inf")),
            "total": (float("-inf"), float("inf"))}


def collect(path, zone: str, recent_days: int, **relations: str) -> dict[tuple[str, ...], float]:
    """One run as of NOW: each sample by (metric, kind, window), or (metric, name)."""
    config = make_config(f"sqlite:///{path}", "custom",
                         database={"relations": {"events": EVENTS_SQL, **relations}},
                         collectors={"events": {"timezone": zone, "recent_days": recent_days}})
    runner = Runner(config, clock=NOW.timestamp)
    try:
        runner.preflight()
        snapshot = runner.run("events")
    finally:
        runner.close()
    assert snapshot.failures == {}
    samples = {}
    for name, values in snapshot_json(snapshot)["metrics"].items():
        if isinstance(values, dict):
            samples |= {(name, label): value for label, value in values.items()}
        else:
            samples |= {(name, *s["labels"].values()): s["value"] for s in values}
    return samples


@pytest.mark.parametrize(("zone", "recent_days"), [("UTC", 45), ("America/New_York", 10)])
def test_events_users_and_subjects_per_kind_and_window(events_db, zone, recent_days):
    path, rows = events_db
    metrics = collect(path, zone, recent_days)
    for window, (start, end) in spans(zone, recent_days).items():
        for kind in ("change", "command", "form"):
            inside = [r for r in rows if r[0] == kind and (
                start <= r[3] < end if r[3] is not None else window == "total")]
            assert metrics["usage_events", kind, window] == len(inside), (kind, window)
            assert metrics["usage_event_users", kind, window] == len(
                {r[1] for r in inside if r[1] is not None}), (kind, window)
            assert metrics["usage_event_subjects", kind, window] == len(
                {r[2] for r in inside if r[2] is not None}), (kind, window)
    events = {window: metrics["usage_events", "change", window]
              for window in ("1h", "7d", "31d", "total")}
    assert events["total"] > events["31d"] > events["7d"] > events["1h"] > 0


def test_a_kind_with_only_undated_events_counts_in_the_total_only(events_db):
    metrics = collect(events_db[0], "UTC", 45)
    assert {window: metrics["usage_event_subjects", "form", window]
            for window in ("1h", "today", "7d", "31d", "recent", "total")} == {
        "1h": 0, "today": 0, "7d": 0, "31d": 0, "recent": 0, "total": 1}


def test_totals_are_summed_by_name_and_only_exported_when_the_platform_has_them(events_db):
    path, rows = events_db
    totals = ("SELECT 'kinds' AS name, count(DISTINCT kind) AS value FROM log UNION ALL "
              "SELECT 'rows', 1 FROM log")
    metrics = collect(path, "UTC", 45, totals=totals)
    assert {key: value for key, value in metrics.items() if key[0] == "usage_total"} == {
        ("usage_total", "kinds"): len({r[0] for r in rows}), ("usage_total", "rows"): len(rows)}
    assert not any(key[0] == "usage_total" for key in collect(path, "UTC", 45))


def test_platforms_without_events_do_not_apply():
    runner = Runner(make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud"))
    runner.close()
    assert runner.snapshot.collectors["events"].last_error == "nextcloud has no events"
    assert "events" not in runner.applicable()
