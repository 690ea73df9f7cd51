"""What /metrics says: names, types and HELP per the Prometheus conventions, no timestamps, and
per-user gauges only when asked for, capped to the top users by storage."""

from __future__ import annotations

import re

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from exporter.exposition import render
from exporter.runner import Runner
from tests.conftest import NEXTCLOUD_DB, make_config


@pytest.fixture(scope="module")
def snapshot(nextcloud_now):
    runner = Runner(make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud"),
                    clock=lambda: nextcloud_now)
    snapshot = runner.run_all()
    runner.close()
    return snapshot


def test_every_metric_is_namespaced_and_refreshed_ones_say_so(snapshot):
    for family in parse_text(snapshot.bodies.text.decode()):
        assert re.fullmatch(r"usage_[a-z_]+", family.name), family.name
        if not family.name.startswith(("usage_collector_", "usage_exporter_", "usage_platform_",
                                       "usage_database_")):
            assert "Refreshed on a schedule" in family.documentation, family.name


def test_no_sample_carries_a_timestamp(snapshot):
    for family in parse_om(snapshot.bodies.openmetrics.decode()):
        assert all(sample.timestamp is None for sample in family.samples), family.name


def test_no_per_user_label_by_default(snapshot):
    for family in parse_text(snapshot.bodies.text.decode()):
        assert all("user" not in sample.labels for sample in family.samples), family.name


def test_per_user_gauges_are_opt_in_and_capped_to_the_top_users_by_storage(snapshot):
    body = render(snapshot, per_user_limit=3).text.decode()
    used = {s.labels["user"]: s.value for f in parse_text(body) for s in f.samples
            if f.name == "usage_user_used_bytes"}
    all_used = snapshot.user_columns()["used_bytes"]
    assert sorted(used.values(), reverse=True) == sorted(
        (v for v in all_used.values() if v is not None), reverse=True)[:3]
    names = {f.name for f in parse_text(body)}
    assert {"usage_user_quota_bytes", "usage_user_files", "usage_user_sessions",
            "usage_user_last_login_timestamp_seconds"} <= names


def test_histograms_are_gauge_histograms_with_cumulative_buckets(snapshot):
    families = {f.name: f for f in parse_om(snapshot.bodies.openmetrics.decode())}
    histogram = families["usage_user_storage_used_bytes"]
    assert histogram.type == "gaugehistogram"
    buckets = [s.value for s in histogram.samples if s.name.endswith("_bucket")]
    assert buckets == sorted(buckets)
