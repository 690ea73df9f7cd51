"""A failure is one JSON line; its traceback is logged only at debug level."""

from __future__ import annotations

import json
import shutil

import pytest

from exporter import log
from exporter.runner import Runner
from tests.conftest import NEXTCLOUD_DB, make_config, sqlite_execute


@pytest.fixture
def broken_runner(tmp_path):
    copy = tmp_path / "nc.db"
    shutil.copy(NEXTCLOUD_DB, copy)
    sqlite_execute(copy, "DROP TABLE oc_share")
    runner = Runner(make_config(f"sqlite:///{copy}", "nextcloud"))
    yield runner
    runner.close()
    log.configure("info", "auto")


def failure_lines(capsys) -> list[dict]:
    lines = capsys.readouterr().err.splitlines()
    return [json.loads(line) for line in lines]


def test_a_failure_is_one_json_line_without_traceback(broken_runner, capsys):
    log.configure("info", "json")
    capsys.readouterr()
    broken_runner.run("shares")
    (line,) = failure_lines(capsys)
    assert line["event"] == "collector_failed" and line["level"] == "error"
    assert line["collector"] == "shares"
    assert line["error"] == "OperationalError: no such table: oc_share"
    assert "exception" not in line


def test_debug_level_adds_the_traceback(broken_runner, capsys):
    log.configure("debug", "json")
    capsys.readouterr()
    broken_runner.run("shares")
    (line,) = [entry for entry in failure_lines(capsys) if entry["event"] == "collector_failed"]
    assert "no such table: oc_share" in json.dumps(line["exception"])
