"""R30v2's edges on a copy of the Synapse fixture: the 60-day bound is exclusive, the 30 days
between first and last day must be exceeded, and a client counts only the days seen with it."""

from __future__ import annotations

from tests.conftest import SYNAPSE, changed_copy, collect_json, read_json

PHONE_HOME = read_json(SYNAPSE / "phone_home_stats.json")
STATS = PHONE_HOME["phone_home_payload"]
DAY_MS = 86_400_000
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
ELEMENT_ANDROID = "Element/1.6.24 (Google Pixel 8; Android 14; Flavour GPlay)"


def visits(user: str, *days: tuple[int, str]) -> str:
    rows = ", ".join(f"('{user}', 'DEVICE', {day}, '{agent}')" for day, agent in days)
    return ("INSERT INTO user_daily_visits (user_id, device_id, timestamp, user_agent) "
            f"VALUES {rows}")


def test_bounds_span_and_clients(tmp_path):
    # Synapse's lower bound: its clock in whole seconds, 60 days back, in ms; strictly after it.
    lower = (PHONE_HOME["now_ms"] // 1000 - 60 * 86400) * 1000
    url = changed_copy(
        SYNAPSE / "homeserver.db", tmp_path,
        # Retained: both days inside, just over 30 days apart.
        visits("@inside:test.local", (lower + 1, FIREFOX), (lower + 1 + 30 * DAY_MS + 1, FIREFOX)),
        # The first day on the bound is outside: one day left.
        visits("@on_bound:test.local", (lower, FIREFOX), (lower + 30 * DAY_MS + 1, FIREFOX)),
        # Exactly 30 days apart is not more than 30.
        visits("@thirty:test.local", (lower + 1, FIREFOX), (lower + 1 + 30 * DAY_MS, FIREFOX)),
        # Retained over all clients, but with neither client alone.
        visits("@two_apps:test.local", (lower + 1, ELEMENT_ANDROID),
               (lower + 1 + 31 * DAY_MS, FIREFOX)))
    metrics = collect_json(url, "synapse", PHONE_HOME["now_ms"] / 1000)["metrics"]
    assert metrics["usage_users_retained"] == STATS["r30v2_users_all"] + 2
    assert metrics["usage_users_retained_by_client"] == {
        "android": STATS["r30v2_users_android"], "ios": STATS["r30v2_users_ios"],
        "electron": STATS["r30v2_users_electron"], "web": STATS["r30v2_users_web"] + 1}
