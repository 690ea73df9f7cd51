"""Collectors are plug-ins: a third-party package adds one through the entry-point group, and
its name becomes a config section; names nobody provides are config errors."""

from __future__ import annotations

import sys
import textwrap

import pytest

from collectors import ENTRY_POINT_GROUP, available
from exporter.config import ConfigError, parse_config
from exporter.runner import Runner
from tests.conftest import NEXTCLOUD, NEXTCLOUD_DB, make_config, read_json


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A real installed distribution (dist-info with entry_points.txt) on sys.path."""
    (tmp_path / "usage_tickets.py").write_text(textwrap.dedent('''
        from sqlalchemy import func, select
        from collectors.base import Collector, CollectorResult, Gauge

        class TicketsCollector(Collector):
            name = "tickets"
            relations = ("users",)

            def collect(self, source):
                users = source.relations["users"]
                n = source.conn.execute(select(func.count()).select_from(users)).scalar_one()
                return CollectorResult(metrics=(Gauge.single("usage_tickets", "Tickets.", n),))
    '''))
    info = tmp_path / "usage_tickets-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: usage-tickets\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ntickets = usage_tickets:TicketsCollector\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("usage_tickets", None)


def test_a_plugin_collector_is_found_configured_and_run(plugin):
    assert "tickets" in available()
    runner = Runner(make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud",
                                collectors={"tickets": {"interval": "2m"}}))
    assert runner.collectors["tickets"].config.interval == 120
    snapshot = runner.run("tickets")
    runner.close()
    assert snapshot.collectors["tickets"].state == "ok"
    accounts = next(v for k, v in read_json(NEXTCLOUD / "derived_modern_serverinfo.json").items()
                    if k.startswith("num_users_total"))
    assert f"usage_tickets {float(accounts)}".encode() in snapshot.bodies.text


def test_an_unknown_collector_name_is_a_config_error():
    with pytest.raises(ConfigError, match=r"collectors\.tickets: unknown collector"):
        parse_config({"database": {"url": "sqlite:///x.db", "platform": "nextcloud"},
                      "collectors": {"tickets": {}}},
                     collector_options={n: c.options for n, c in available().items()})
