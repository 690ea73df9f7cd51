"""On the real ownCloud 10.15.2 database (tests/fixtures/owncloud), what /metrics serves equals
the numbers of ownCloud's own metrics app 1.4.0 and occ, as of the metrics call, on SQLite,
PostgreSQL and MariaDB: users by status (guests included), active in 14 days, concurrent,
shares by type, files and storage. The drop-in routes' per-user answer is checked in
tests/api/test_owncloud.py."""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.http import App, Context
from exporter.runner import Runner
from exporter.server import HttpServer
from tests.api.test_owncloud import fetch
from tests.conftest import OWNCLOUD, OWNCLOUD_DB, make_config, read_json

APP = read_json(OWNCLOUD / "metrics_api.json")["ocs"]["data"]
STORAGE = APP["files"]["storage"]
OCC_USERS = read_json(OWNCLOUD / "occ_user_list.json")


def scrape(url: str, now: float, **database: Any) -> dict[str, dict[tuple[str, ...], float]]:
    """/metrics over a real socket after one refresh as of `now`: each sample by name and
    label values."""
    runner = Runner(make_config(url, "owncloud", database=database), clock=lambda: now)
    try:
        assert runner.run_all().failures == {}
        context = Context(lambda: runner.snapshot, runner.config.api_keys)
        server = HttpServer(App(context, {}), "127.0.0.1", 0).start()
        try:
            status, _, body = fetch(f"http://127.0.0.1:{server.port}/metrics")
        finally:
            server.stop()
    finally:
        runner.close()
    assert status == 200
    samples: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sample.labels.values())] = sample.value
    return samples


@pytest.fixture(scope="module")
def metrics(owncloud_url: str, owncloud_now: float) -> dict[str, dict[tuple[str, ...], float]]:
    # Told the disk's total as the app saw it (free = capacity - used, as the app computes it).
    return scrape(owncloud_url, owncloud_now, available_storage_bytes=STORAGE["total"])


def one(metrics: dict[str, dict[tuple[str, ...], float]], name: str, *labels: str) -> float:
    return metrics[name][labels]


def test_users_by_status_sum_to_the_apps_total_and_match_occ(metrics):
    by_status = {labels[0]: value for labels, value in metrics["usage_users"].items()}
    assert sum(by_status.values()) == APP["users"]["totalCount"]
    report = (OWNCLOUD / "occ_user_report.txt").read_text()
    guests = int(re.search(r"\| guest users\s*\| (\d+)", report).group(1))
    disabled = sum(not user["enabled"] for user in OCC_USERS.values())
    assert (by_status["guest"], by_status["disabled"]) == (guests, disabled)
    assert by_status["enabled"] == len(OCC_USERS) - guests - disabled


def test_active_and_concurrent_users_equal_the_app(metrics):
    assert one(metrics, "usage_users_active", "14d") == APP["users"]["activeUsersCount"]
    assert one(metrics, "usage_users_concurrent") == APP["users"]["concurrentUsersCount"]


def test_shares_by_type_equal_the_app(metrics):
    for kind in ("user", "group", "link", "guest", "federated"):
        assert one(metrics, "usage_shares", kind) == APP["shares"][f"{kind}ShareCount"], kind


def test_files_and_storage_equal_the_app(metrics):
    assert one(metrics, "usage_files") == APP["files"]["totalFilesCount"]
    # The users' home storages only: a federated share's storage (150,000 bytes) is left out.
    assert one(metrics, "usage_storage_used_bytes") == STORAGE["used"]
    assert one(metrics, "usage_storage_files_bytes") == STORAGE["usedQuota"]
    assert STORAGE["used"] - STORAGE["usedQuota"] == STORAGE["usedOther"]
    assert one(metrics, "usage_storage_free_bytes") == STORAGE["free"]
    assert one(metrics, "usage_storage_total_bytes") == STORAGE["total"]


def test_free_space_is_left_out_when_the_disk_is_unknown(owncloud_now):
    metrics = scrape(f"sqlite:///{OWNCLOUD_DB}", owncloud_now)
    assert "usage_storage_free_bytes" not in metrics
    assert one(metrics, "usage_storage_used_bytes") == STORAGE["used"]


@pytest.fixture
def db_copy(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "owncloud.db"
    shutil.copyfile(OWNCLOUD_DB, path)
    yield path


def test_the_folder_mimetype_is_found_by_name_not_assumed_to_be_2(db_copy, owncloud_now):
    db = sqlite3.connect(db_copy)
    with db:
        moved = db.execute("SELECT MAX(id) + 1 FROM oc_mimetypes").fetchone()[0]
        db.execute("UPDATE oc_mimetypes SET id = ? WHERE mimetype = 'httpd/unix-directory'",
                   (moved,))
        db.execute("UPDATE oc_filecache SET mimetype = ? WHERE mimetype = 2", (moved,))
    db.close()
    metrics = scrape(f"sqlite:///{db_copy}", owncloud_now)
    assert one(metrics, "usage_files") == APP["files"]["totalFilesCount"]


def test_a_custom_table_prefix(db_copy, owncloud_now):
    db = sqlite3.connect(db_copy)
    with db:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                  "AND name LIKE 'oc\\_%' ESCAPE '\\'").fetchall():
            db.execute(f'ALTER TABLE "{name}" RENAME TO "owncloud_{name[3:]}"')
    db.close()
    metrics = scrape(f"sqlite:///{db_copy}", owncloud_now, table_prefix="owncloud_")
    assert sum(metrics["usage_users"].values()) == APP["users"]["totalCount"]
    assert one(metrics, "usage_storage_used_bytes") == STORAGE["used"]
