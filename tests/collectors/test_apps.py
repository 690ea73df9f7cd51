"""The apps collector: installed apps by state and each app's version, as the platforms answer
(ownCloud's occ app:list, Nextcloud's serverinfo num_installed), on the real fixtures."""

from __future__ import annotations

from typing import Any

from exporter.runner import Runner
from tests.conftest import (
    FIXTURES,
    NEXTCLOUD,
    SYNAPSE,
    fixture_copy,
    make_config,
    read_json,
    run_collector,
)

OWNCLOUD_DB = fixture_copy(FIXTURES / "owncloud" / "owncloud.db")


def apps(url: str, platform: str) -> tuple[dict[str, float], dict[str, tuple[str, str]]]:
    """usage_apps by state, and each app's (version, state) from usage_app_info."""
    _, result = run_collector(url, platform, "apps")
    by_state, info = result.metrics
    return ({labels[0]: value for labels, value in by_state.samples},
            {app: (version, state) for (app, version, state), _ in info.samples})


def test_owncloud_apps_are_occ_app_list():
    """occ app:list: every enabled app with its version; a disabled app with a version is an
    installed one (the others are only present in apps/)."""
    occ: dict[str, Any] = read_json(FIXTURES / "owncloud" / "occ_app_list.json")
    by_state, info = apps(f"sqlite:///{OWNCLOUD_DB}", "owncloud")
    assert {app: version for app, (version, state) in info.items() if state == "enabled"} == {
        app: entry["Version"] for app, entry in occ["enabled"].items()}
    assert {app for app, (_, state) in info.items() if state == "disabled"} == {
        app for app, entry in occ["disabled"].items() if "Version" in entry}
    assert by_state == {"enabled": len(occ["enabled"]), "disabled": 0}


def test_nextcloud_enabled_apps_are_serverinfos_installed_apps(nextcloud_url):
    """serverinfo's num_installed counts the apps AppManager calls installed: enabled ones."""
    serverinfo = read_json(NEXTCLOUD / "serverinfo.json")["ocs"]["data"]["nextcloud"]["system"]
    by_state, info = apps(nextcloud_url, "nextcloud")
    assert by_state["enabled"] == serverinfo["apps"]["num_installed"]
    assert by_state["disabled"] > 0
    assert sum(by_state.values()) == len(info)
    assert all(version for version, _ in info.values())


def test_synapse_has_no_apps():
    runner = Runner(make_config(f"sqlite:///{fixture_copy(SYNAPSE / 'homeserver.db')}",
                                "synapse"))
    runner.close()
    assert runner.snapshot.collectors["apps"].last_error == "synapse has no apps"
