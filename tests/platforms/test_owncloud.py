"""On an ownCloud 10 database (its real DDL, realistic data with every edge case), the exporter's
numbers equal the ownCloud metrics app's, field by field, on SQLite, PostgreSQL and MariaDB.
The expected values come from tests/platforms/owncloud_reference.py, which runs the app's own
SQL and PHP post-processing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine

from exporter.exposition import snapshot_json
from exporter.runner import Runner
from tests.conftest import BACKENDS, make_config
from tests.platforms.owncloud_db import OWNCLOUD_NOW, build_owncloud_db
from tests.platforms.owncloud_reference import system_metrics, user_data, users_csv_rows

CAPACITY = 2 * 1024**4  # object storage capacity: free = capacity - used, as the app computes it


@pytest.fixture(scope="module", params=BACKENDS)
def owncloud_url(request, tmp_path_factory, server_database) -> str:
    path = tmp_path_factory.mktemp("owncloud") / "owncloud.db"
    build_owncloud_db(str(path))
    if request.param == "sqlite":
        return f"sqlite:///{path}"
    return server_database(request.param, "owncloud", path)


@pytest.fixture(scope="module")
def reference(owncloud_url) -> dict[str, Any]:
    engine = create_engine(owncloud_url)
    with engine.connect() as conn:
        answers = {
            "system": system_metrics(conn, OWNCLOUD_NOW, 0, available_storage=CAPACITY),
            "users": user_data(conn, 0, available_storage=CAPACITY),
            "csv": {row["userId"]: row for row in users_csv_rows(conn, 0,
                                                                 available_storage=CAPACITY)},
        }
    engine.dispose()
    return answers


@pytest.fixture(scope="module")
def ours(owncloud_url) -> dict[str, Any]:
    config = make_config(owncloud_url, "owncloud",
                         database={"available_storage_bytes": CAPACITY})
    runner = Runner(config, clock=lambda: OWNCLOUD_NOW)
    snapshot = runner.run_all()
    runner.close()
    assert snapshot.failures == {}
    body = snapshot_json(snapshot, users=True)
    return {"metrics": body["metrics"], "users": {row["user_id"]: row for row in body["users"]}}


def test_user_counts_equal_the_metrics_app(ours, reference):
    users, metrics = reference["system"]["users"], ours["metrics"]
    assert sum(metrics["usage_users"].values()) == users["totalCount"]
    assert metrics["usage_users_active"]["14d"] == users["activeUsersCount"]
    assert metrics["usage_users_concurrent"] == users["concurrentUsersCount"]


def test_file_and_storage_numbers_equal_the_metrics_app(ours, reference):
    files, metrics = reference["system"]["files"], ours["metrics"]
    assert metrics["usage_files"] == files["totalFilesCount"]
    assert metrics["usage_storage_used_bytes"] == files["storage"]["used"]
    assert metrics["usage_storage_free_bytes"] == files["storage"]["free"]
    assert metrics["usage_storage_total_bytes"] == files["storage"]["total"]


def test_share_counts_equal_the_metrics_app(ours, reference):
    shares, ours_by_type = reference["system"]["shares"], ours["metrics"]["usage_shares"]
    assert ours_by_type["user"] == shares["userShareCount"]
    assert ours_by_type["group"] == shares["groupShareCount"]
    assert ours_by_type["link"] == shares["linkShareCount"]
    assert ours_by_type["guest"] == shares["guestShareCount"]
    assert ours_by_type["federated"] == shares["federatedShareCount"]


def test_per_user_values_equal_user_data_field_by_field(ours, reference):
    system_total = reference["system"]["files"]["storage"]["total"]
    for uid, expected in reference["users"].items():
        row = ours["users"][uid]
        suffix = " (Guest)" if row["status"] == "guest" else ""
        assert row["backend"] + suffix == expected["backend"], uid
        assert row["display_name"] == expected["displayName"], uid
        assert row["files"] == expected["files"]["totalFiles"], uid
        assert row["used_bytes"] == expected["quota"]["used"], uid
        # 'none' is unlimited for us; the app shows the system total instead.
        quota = system_total if row["quota_bytes"] is None else row["quota_bytes"]
        assert quota == expected["quota"]["total"], uid
        assert (row["sessions"] or 0) == expected["activeSessions"], uid
        assert (row["last_login"] or 0) == expected["lastLogin"], uid
        shares = expected["shares"]
        assert (row["shares_group"] or 0) == shares["groupShareCount"], uid
        assert (row["shares_link"] or 0) == shares["linkShareCount"], uid
        assert (row["shares_federated"] or 0) == shares["federatedShareCount"], uid
        # The users CSV's sharesUser is every type-0 share, to guests or not.
        assert (row["shares_user"] or 0) + (row["shares_guest"] or 0) == \
            reference["csv"][uid]["sharesUser"], uid


def test_users_missing_from_user_data_have_no_home_storage_row(ours, reference):
    """The app leaves out users without a matched home storage; so does our home_storage."""
    missing = set(ours["users"]) - set(reference["users"])
    assert missing
    assert all(ours["users"][uid]["used_bytes"] is None for uid in missing)


def test_the_folder_mimetype_is_found_by_name_not_assumed_to_be_2(tmp_path):
    path = tmp_path / "moved.db"
    build_owncloud_db(str(path), directory_mimetype_id=7)
    runner = Runner(make_config(f"sqlite:///{path}", "owncloud"), clock=lambda: OWNCLOUD_NOW)
    metrics = snapshot_json(runner.run_all())["metrics"]
    runner.close()
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        expected = system_metrics(conn, OWNCLOUD_NOW, 0)["files"]["totalFilesCount"]
    assert metrics["usage_files"] == expected


def test_a_custom_table_prefix(tmp_path):
    path = Path(tmp_path / "prefixed.db")
    build_owncloud_db(str(path), prefix="owncloud_")
    config = make_config(f"sqlite:///{path}", "owncloud", database={"table_prefix": "owncloud_"})
    runner = Runner(config, clock=lambda: OWNCLOUD_NOW)
    runner.preflight()
    snapshot = runner.run_all()
    runner.close()
    assert snapshot.ready and snapshot.failures == {}
