"""A failed run keeps the previous values and says so; a platform without a relation makes its
collector not applicable instead of failing."""

from __future__ import annotations

import gc
import shutil

import pytest

from exporter.runner import Runner, StartupError
from tests.conftest import NEXTCLOUD_DB, make_config, sqlite_execute


@pytest.fixture
def nextcloud_copy(tmp_path):
    copy = tmp_path / "nextcloud.db"
    shutil.copy(NEXTCLOUD_DB, copy)
    return copy


def metric(runner: Runner, name: str, labels: tuple[str, ...] = ()) -> float:
    for result in runner.snapshot.results():
        for gauge in result.metrics:
            if gauge.name == name:
                return dict(gauge.samples)[labels]
    raise KeyError(name)


def test_a_failed_run_keeps_the_last_good_values(nextcloud_copy, nextcloud_now):
    runner = Runner(make_config(f"sqlite:///{nextcloud_copy}", "nextcloud"),
                    clock=lambda: nextcloud_now)
    runner.run("shares")
    links = metric(runner, "usage_shares", ("link",))
    sqlite_execute(nextcloud_copy, "ALTER TABLE oc_share RENAME TO oc_share_gone")
    status = runner.run("shares").collectors["shares"]
    assert status.state == "failed"
    assert status.last_error == "OperationalError: no such table: oc_share"
    assert gc.isenabled()  # the run paused cycle collection while it read, and resumed it
    assert (status.runs, status.failures, status.consecutive_failures) == (2, 1, 1)
    assert metric(runner, "usage_shares", ("link",)) == links
    body = runner.snapshot.bodies.text.decode()
    assert 'usage_collector_success{collector="shares"} 0.0' in body
    assert f'usage_shares{{type="link"}} {links}' in body
    assert "usage_database_up 1.0" in body

    sqlite_execute(nextcloud_copy, "ALTER TABLE oc_share_gone RENAME TO oc_share")
    status = runner.run("shares").collectors["shares"]
    assert (status.state, status.consecutive_failures, status.last_error) == ("ok", 0, None)
    runner.close()


def test_an_unreachable_database_is_reported_as_down(nextcloud_copy, nextcloud_now):
    runner = Runner(make_config(f"sqlite:///{nextcloud_copy}", "nextcloud"),
                    clock=lambda: nextcloud_now)
    runner.run("users")
    nextcloud_copy.rename(nextcloud_copy.with_suffix(".moved"))
    snapshot = runner.run("users")
    assert snapshot.database_up is False
    assert snapshot.collectors["users"].state == "failed"
    assert "usage_database_up 0.0" in snapshot.bodies.text.decode()
    assert 'usage_users{status="enabled"}' in snapshot.bodies.text.decode()
    runner.close()


def test_a_replaced_database_file_is_picked_up(nextcloud_copy, tmp_path, nextcloud_now):
    runner = Runner(make_config(f"sqlite:///{nextcloud_copy}", "nextcloud"),
                    clock=lambda: nextcloud_now)
    runner.run("users")
    enabled = metric(runner, "usage_users", ("enabled",))
    replacement = tmp_path / "replacement.db"
    shutil.copy(nextcloud_copy, replacement)
    sqlite_execute(replacement, "DELETE FROM oc_users WHERE uid = 'victor'")
    replacement.replace(nextcloud_copy)
    runner.run("users")
    assert metric(runner, "usage_users", ("enabled",)) == enabled - 1
    runner.close()


def test_preflight_names_the_missing_table_and_the_prefix(nextcloud_copy):
    runner = Runner(make_config(f"sqlite:///{nextcloud_copy}", "nextcloud"))
    runner.preflight()
    prefixed = make_config(f"sqlite:///{nextcloud_copy}", "nextcloud",
                           database={"table_prefix": "nc_"})
    with pytest.raises(StartupError,
                       match=r"table prefix 'nc_'\): relation \w+: OperationalError: no such "):
        Runner(prefixed).preflight()


def test_a_configured_but_disabled_collector_is_not_run(nextcloud_copy):
    runner = Runner(make_config(f"sqlite:///{nextcloud_copy}", "nextcloud",
                                collectors={"storage": {"enabled": False}}))
    assert "storage" not in runner.run_all().collectors
    runner.close()
