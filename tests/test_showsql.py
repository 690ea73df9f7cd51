"""show-sql prints, per collector and metric, the SQL a refresh sends to the configured database:
complete statements in its dialect, values inlined, that run as printed and give the numbers
/metrics reports."""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from tests.servers import free_port
from tests.test_cli import exporter, write_config

STATEMENT = re.compile(r"^-- statement \d+\n(.*?);\n(?=\n?-- |\Z)", re.S | re.M)


def show_sql(config: str, *args: str) -> tuple[int, str, str]:
    done = exporter("show-sql", "--config", config, *args)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture()
def nextcloud_config(tmp_path, nextcloud_url: str) -> str:
    return str(write_config(tmp_path / "config.yaml", nextcloud_url, free_port()))


def test_every_applicable_collector_prints_statements_that_run_as_printed(
        nextcloud_config, nextcloud_url):
    code, out, _ = show_sql(nextcloud_config)
    assert code == 0
    collectors = re.findall(r"^-- collector (\w+):", out, re.M)
    assert {"users", "sessions", "shares", "storage", "dau"} <= set(collectors)
    statements = STATEMENT.findall(out)
    assert len(statements) >= len(collectors)
    engine = create_engine(nextcloud_url)
    with engine.connect() as conn:
        for statement in statements:  # complete SQL, no placeholder left (SET has no rows)
            result = conn.exec_driver_sql(statement)
            if result.returns_rows:
                result.fetchall()
    engine.dispose()


def test_a_metric_names_the_one_collector_that_produces_it_and_its_sql_gives_its_value(
        nextcloud_config, nextcloud_url):
    code, out, _ = show_sql(nextcloud_config, "usage_shares")
    assert code == 0
    assert re.findall(r"^-- collector (\w+):", out, re.M) == ["shares"]
    # The first query (after the session's statement timeout, where the engine has one).
    by_type = next(s for s in STATEMENT.findall(out) if s.startswith("SELECT"))
    engine = create_engine(nextcloud_url)
    with engine.connect() as conn:
        printed = {row[0]: row[1] for row in conn.exec_driver_sql(by_type)}
    engine.dispose()
    collected = exporter("collect", "--config", nextcloud_config, "--format", "prometheus")
    assert collected.returncode == 0, collected.stderr
    exposed = {sample.labels["type"]: sample.value
               for family in text_string_to_metric_families(collected.stdout)
               if family.name == "usage_shares" for sample in family.samples}
    assert {t: float(n) for t, n in printed.items()} == {t: v for t, v in exposed.items() if v}


def test_a_histogram_sample_name_finds_its_family(nextcloud_config):
    code, out, _ = show_sql(nextcloud_config, "usage_user_storage_used_bytes_bucket")
    assert code == 0
    assert re.findall(r"^-- collector (\w+):", out, re.M) == ["storage"]


def test_a_metric_no_collector_produces_is_refused_with_the_reason(nextcloud_config):
    code, out, err = show_sql(nextcloud_config, "usage_collector_success")
    assert (code, out) == (1, "")
    assert "no collector of this config produces usage_collector_success" in err
