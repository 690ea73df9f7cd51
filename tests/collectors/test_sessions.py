"""Sessions are classed by client from the user agents the platforms really store."""

from __future__ import annotations

import sqlite3

import pytest

from exporter.runner import Runner
from tests.conftest import NEXTCLOUD_DB, make_config, run_collector

AGENTS = {
    "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0": "web",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/16.6 Mobile/15E148 Safari/604.1": "web",
    "Element/1.6.5 (Android 13; Pixel 7)": "mobile",
    "Mozilla/5.0 (Windows) mirall/3.9.4stable-Win64 (build 20230824) (Nextcloud, windows-10.0)":
        "desktop",
    "Mozilla/5.0 (Linux) mirall/3.10.1stable-Debian (build 20230914) (ownCloud, debian)": "desktop",
    "Mozilla/5.0 (Android) Nextcloud-android/3.26.0": "mobile",
    "Mozilla/5.0 (iOS) Nextcloud-iOS/4.9.0": "mobile",
    "Mozilla/5.0 (Android) ownCloud-android/4.1.0": "mobile",
    "DAVx5/4.3.6-ose (2023/09/01; dav4jvm; okhttp/4.11.0) Android/13": "mobile",
    "Mozilla/5.0 (X11) AppleWebKit/537.36 (KHTML, like Gecko) Element/1.11.40 Chrome/118 "
    "Electron/27.0.0 Safari/537.36": "desktop",
    "rclone/v1.64.0": "other",
    "(none)": "other",
}


@pytest.fixture
def classify(tmp_path):
    def run(agents: dict[str, str]) -> dict[str, int]:
        path = tmp_path / "tokens.db"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE oc_authtoken (uid TEXT, name TEXT, last_activity INTEGER, "
                       "type INTEGER)")
            db.executemany("INSERT INTO oc_authtoken VALUES (?, ?, 0, 0)",
                           [(f"u{i}", agent) for i, agent in enumerate(agents)])
        _, result = run_collector(f"sqlite:///{path}", "owncloud", "sessions")
        (_, sessions) = result.metrics
        return {labels[0]: int(value) for labels, value in sessions.samples}
    return run


@pytest.mark.parametrize(("agent", "client"), AGENTS.items())
def test_each_real_user_agent_gets_its_client_class(classify, agent, client):
    counts = classify({agent: client})
    assert counts[client] == 1 and sum(counts.values()) == 1


def test_every_class_is_exported_even_when_empty(classify):
    assert classify({"rclone/v1.64.0": "other"}) == {"desktop": 0, "mobile": 0, "web": 0,
                                                      "other": 1}


def test_nextcloud_sessions_are_its_tokens_less_remote_wipe_markers():
    _, result = run_collector(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud", "sessions")
    concurrent, sessions = result.metrics
    uri = f"file:{NEXTCLOUD_DB}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        tokens = dict(db.execute("SELECT uid, count(*) FROM oc_authtoken WHERE type <> 2 "
                                 "GROUP BY uid").fetchall())
    assert sum(value for _, value in sessions.samples) == sum(tokens.values())
    assert concurrent.samples[0][1] == len(tokens)
    assert result.users["sessions"] == tokens


def test_a_session_is_live_until_expires_at_by_the_exporters_clock(tmp_path):
    """Expiry compares with the run's instant (the exporter's clock, --as-of included): a
    session expiring exactly then is over, one without expires_at lasts until deleted."""
    path = tmp_path / "sessions.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE s (uid TEXT, expires REAL)")
        db.executemany("INSERT INTO s VALUES (?, ?)", [
            ("ann", 999.0), ("ann", 1000.0), ("bob", 1000.5), ("cy", None), ("dee", 5000.0)])
    relations = {"sessions": "SELECT uid AS user_id, NULL AS client, NULL AS last_activity, "
                             "expires AS expires_at FROM s"}
    for now, live in ((1000.0, {"bob": 1, "cy": 1, "dee": 1}), (4000.0, {"cy": 1, "dee": 1})):
        runner = Runner(make_config(f"sqlite:///{path}", "custom",
                                    database={"relations": relations}), clock=lambda n=now: n)
        try:
            (result,) = runner.run("sessions").results()
        finally:
            runner.close()
        concurrent, sessions = result.metrics
        assert result.users["sessions"] == live
        assert concurrent.samples[0][1] == len(live)
        assert dict(sessions.samples)[("other",)] == sum(live.values())
