"""Registrations by type at the edges the Synapse fixture lacks: an appservice id that is empty
(still bridged, as Synapse tests IS NULL), and accounts created exactly one window ago (not within
it: Synapse's creation_ts > now - 86400)."""

from __future__ import annotations

from typing import Any

from exporter.config import duration_label
from tests.conftest import SYNAPSE, changed_copy, collect_json, read_json

PHONE_HOME = read_json(SYNAPSE / "phone_home_stats.json")
NOW_S = PHONE_HOME["now_ms"] // 1000
STATS = PHONE_HOME["phone_home_payload"]


def registered(metrics: dict[str, Any], window: str) -> dict[str, float]:
    return {s["labels"]["type"]: s["value"] for s in metrics["usage_users_registered"]
            if s["labels"]["window"] == window}


def test_an_empty_appservice_id_is_bridged_and_a_window_excludes_its_start(tmp_path):
    url = changed_copy(
        SYNAPSE / "homeserver.db", tmp_path,
        f"INSERT INTO users (name, creation_ts, appservice_id) VALUES "
        f"('@as_empty:test.local', {NOW_S}, ''), "
        f"('@at_start:test.local', {NOW_S - 86400}, NULL), "
        f"('@after_start:test.local', {NOW_S - 86399}, NULL)")
    metrics = collect_json(url, "synapse", PHONE_HOME["now_ms"] / 1000,
                           registrations={"windows": ["1d", "30d"]})["metrics"]
    by_type = metrics["usage_users_by_type"]
    assert by_type["bridged"] == STATS["total_users"] - STATS["total_nonbridged_users"] + 1
    assert by_type["native"] + by_type["guest"] == STATS["total_nonbridged_users"] + 2
    day = registered(metrics, "1d")
    assert day == {"native": STATS["daily_user_type_native"] + 1,
                   "guest": STATS["daily_user_type_guest"],
                   "bridged": STATS["daily_user_type_bridged"] + 1}
    month = registered(metrics, duration_label(30 * 86400))
    assert all(month[kind] >= day[kind] for kind in day)
    assert sum(month.values()) <= sum(by_type.values())
