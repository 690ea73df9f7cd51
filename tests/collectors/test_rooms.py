"""The Synapse-only collectors (rooms, messages, retention, registrations) on another platform:
not applicable, each naming the relation the platform lacks, so nothing is served for them."""

from __future__ import annotations

import pytest

from exporter.runner import Runner
from tests.conftest import NEXTCLOUD_DB, make_config


@pytest.mark.parametrize("name, missing", [
    ("rooms", "rooms"), ("messages", "event_stream, messages"), ("retention", "daily_visits"),
    ("registrations", "registrations")])
def test_not_applicable_without_their_relations(name, missing):
    runner = Runner(make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud"))
    try:
        status = runner.snapshot.collectors[name]
    finally:
        runner.close()
    assert status.state == "not_applicable"
    assert status.last_error == f"nextcloud has no {missing}"
