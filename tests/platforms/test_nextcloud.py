"""On the real Nextcloud 24 database, the exporter's numbers equal Nextcloud's own answers
(serverinfo, occ and the provisioning API), on SQLite, PostgreSQL and MariaDB alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.conftest import NEXTCLOUD, collect_json, read_json

SERVERINFO = read_json(NEXTCLOUD / "serverinfo.json")["ocs"]["data"]
DERIVED = read_json(NEXTCLOUD / "derived_modern_serverinfo.json")
OCC_USERS = read_json(NEXTCLOUD / "occ_user_info.json")
PROVISIONING = read_json(NEXTCLOUD / "provisioning_users.json")["users"]

# serverinfo's window names and ours.
WINDOWS = {"last5minutes": "5m", "last1hour": "1h", "last24hours": "1d", "last7days": "7d",
           "last1month": "30d", "last3months": "90d", "last6months": "180d", "lastyear": "365d"}


def derived(prefix: str) -> Any:
    return next(value for key, value in DERIVED.items() if key.startswith(prefix))


def collect(url: str, now: int, **collectors: Any) -> dict[str, Any]:
    return collect_json(url, "nextcloud", now, **collectors)


@pytest.fixture(scope="module")
def metrics(nextcloud_url: str, nextcloud_now: int) -> dict[str, Any]:
    return collect(nextcloud_url, nextcloud_now)["metrics"]


def test_active_users_by_last_login_equal_current_serverinfo(metrics):
    expected = derived("activeUsers_from_preferences_lastLogin")
    assert {WINDOWS[k]: v for k, v in expected.items()} == {
        WINDOWS[k]: metrics["usage_users_active"][WINDOWS[k]] for k in expected}


def test_active_users_by_session_activity_equal_serverinfo_of_nextcloud_24(nextcloud_url,
                                                                           nextcloud_now):
    metrics = collect(nextcloud_url, nextcloud_now,
                      users={"active_by": "session_activity"})["metrics"]
    active = metrics["usage_users_active"]
    for key, value in SERVERINFO["activeUsers"].items():
        assert active[WINDOWS[key]] == value, key
    for key, value in derived("activeUsers_from_authtoken").items():
        assert active[WINDOWS[key]] == value, key


def test_accounts_equal_occ_user_report(metrics):
    assert metrics["usage_users_seen"] == SERVERINFO["nextcloud"]["storage"]["num_users"]
    assert metrics["usage_users_seen"] == derived("num_users_countSeenUsers")
    assert metrics["usage_users"]["disabled"] == derived("num_disabled_users")
    assert sum(metrics["usage_users"].values()) == derived("num_users_total")


def test_storage_numbers_equal_serverinfo(metrics):
    storage = SERVERINFO["nextcloud"]["storage"]
    assert metrics["usage_file_cache_entries"] == storage["num_files"]
    assert sum(metrics["usage_storages"].values()) == storage["num_storages"]
    for kind in ("home", "local", "other"):
        assert metrics["usage_storages"][kind] == storage[f"num_storages_{kind}"]


def test_every_share_type_equals_serverinfo(metrics):
    shares = SERVERINFO["nextcloud"]["shares"]
    ours = metrics["usage_shares"]
    assert ours["user"] == shares["num_shares_user"]
    assert ours["group"] == shares["num_shares_groups"]
    assert ours["link"] == shares["num_shares_link"]
    assert ours["email"] == shares["num_shares_mail"]
    assert ours["room"] == shares["num_shares_room"]
    assert ours["federated"] == shares["num_fed_shares_sent"]
    assert metrics["usage_federated_shares_received"] == shares["num_fed_shares_received"]
    assert metrics["usage_link_shares_without_password"] == shares["num_shares_link_no_password"]


def test_total_used_bytes_of_homes_equals_sum_of_occ_used(metrics):
    used = [u["storage"]["used"] for u in OCC_USERS.values() if u["storage"]]
    histogram = metrics["usage_user_storage_used_bytes"]
    assert histogram["sum"] == sum(used)
    assert histogram["count"] == len(used)


def test_users_over_quota_and_quota_histogram_match_provisioning(metrics):
    limited = [u["quota"] for u in PROVISIONING.values() if u["quota"]["quota"] > 0]
    ratios = [q.get("used", 0) / q["quota"] for q in limited]
    assert metrics["usage_users_over_quota"] == sum(r > 1 for r in ratios)
    histogram = metrics["usage_user_quota_utilization_ratio"]
    assert histogram["count"] == len(limited)
    assert histogram["sum"] == pytest.approx(sum(ratios))
    assert histogram["buckets"]["0.9"] == sum(r <= 0.9 for r in ratios)


def test_per_user_rows_equal_occ_user_info(nextcloud_url, nextcloud_now):
    rows = {row["user_id"]: row for row in collect(nextcloud_url, nextcloud_now)["users"]}
    assert set(rows) == set(OCC_USERS)
    for uid, occ in OCC_USERS.items():
        row, api = rows[uid], PROVISIONING[uid]
        assert row["status"] == ("enabled" if occ["enabled"] else "disabled"), uid
        assert (row["used_bytes"] or 0) == (occ["storage"]["used"] if occ["storage"] else 0), uid
        assert (row["quota_bytes"] if row["quota_bytes"] is not None else -3) == \
            api["quota"]["quota"], uid
        last_seen = int(datetime.fromisoformat(occ["last_seen"]).timestamp())
        assert (row["last_login"] or 0) == last_seen, uid
        assert (row["display_name"] or uid) == occ["display_name"], uid
        assert row["is_admin"] == ("admin" in occ["groups"]), uid
