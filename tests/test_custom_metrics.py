"""The custom_metrics section and query-exporter files: what they become, and every mistake
reported with its YAML path before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collectors import available
from exporter.config import ConfigError, load_config, parse_config

OPTIONS = {name: cls.options for name, cls in available().items()}
DATABASE = {"url": "sqlite:////tmp/platform.db", "platform": "custom"}


def parse(custom_metrics: Any) -> Any:
    return parse_config({"database": DATABASE, "custom_metrics": custom_metrics},
                        collector_options=OPTIONS).custom_metrics


def problems(custom_metrics: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(custom_metrics)
    return caught.value.problems


def query(*metrics: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {"name": "tickets", "sql": "SELECT 1 AS tickets_open", **settings,
            "metrics": list(metrics) or [{"name": "tickets_open", "help": "Open tickets."}]}


def test_a_query_becomes_a_collector_with_its_own_schedule_and_timeout():
    (spec,) = parse([query(interval="5m", timeout="10s", jitter="1s", max_series=50)])
    assert spec.collector == "sql:tickets"
    config = spec.collector_config()
    assert (config.interval, config.timeout, config.jitter, config.schedule) == (300, 10, 1, None)
    assert spec.max_series == 50
    (metric,) = spec.metrics
    assert (metric.name, metric.type, metric.column, metric.labels) == \
        ("tickets_open", "gauge", "tickets_open", ())


def test_a_cron_schedule_replaces_the_interval():
    (spec,) = parse([query(schedule="*/15 8-18 * * mon-fri")])
    assert spec.collector_config().schedule == "*/15 8-18 * * mon-fri"


def test_platform_custom_may_give_custom_metrics_instead_of_relations():
    assert parse([query()])[0].name == "tickets"
    with pytest.raises(ConfigError, match=r"database\.relations: is required"):
        parse_config({"database": DATABASE}, collector_options=OPTIONS)


@pytest.mark.parametrize(("entry", "expected"), [
    (query({"name": "tickets_open", "help": "a"}, {"name": "tickets_open", "help": "b"}),
     "custom_metrics[0].metrics[1].name: duplicate metric name tickets_open "
     "(also custom_metrics[0].metrics[0])"),
    (query({"name": "tickets_total", "help": "a"}, {"name": "tickets", "help": "b",
                                                    "type": "counter"}),
     "custom_metrics[0].metrics[1].name: duplicate metric name tickets_total "
     "(also custom_metrics[0].metrics[0])"),
    (query({"name": "usage_users", "help": "mine"}),
     "custom_metrics[0].metrics[0].name: usage_users clashes with a built-in metric"),
    (query({"name": "tickets-open", "help": "x"}),
     "custom_metrics[0].metrics[0].name: not a Prometheus metric name: 'tickets-open'"),
    (query({"name": "tickets_open", "help": "x", "type": "histogram"}),
     "custom_metrics[0].metrics[0].type: expected one of gauge, counter, got 'histogram'"),
    (query({"name": "tickets_open", "help": "x", "unit": "bytes"}),
     "custom_metrics[0].metrics[0].unit: the metric name must end with _bytes"),
    (query({"name": "tickets_open", "help": "x", "labels": ["status", "status"]}),
     "custom_metrics[0].metrics[0].labels: must not contain duplicate labels"),
    (query({"name": "tickets_open", "help": "x", "labels": ["__name__"]}),
     "custom_metrics[0].metrics[0].labels: not a Prometheus label name: '__name__'"),
    (query({"name": "tickets_open"}), "custom_metrics[0].metrics[0].help: is required"),
    (query(interval="1m", timeout="2m"), "custom_metrics[0].timeout: must not exceed the interval"),
    (query(schedule="every day"), "custom_metrics[0].schedule: not a cron expression"),
    (query(max_series=0), "custom_metrics[0].max_series: expected a positive whole number"),
    (query(colour="red"), "custom_metrics[0].colour: unknown key"),
    ({"name": "tickets", "metrics": []}, "custom_metrics[0].sql: is required"),
])
def test_every_mistake_names_its_yaml_path(entry, expected):
    assert any(p.startswith(expected) for p in problems([entry])), problems([entry])


def test_a_metric_defined_by_two_queries_is_a_duplicate():
    found = problems([query(), query(name="again")])
    assert "custom_metrics[1].metrics[0].name: duplicate metric name tickets_open (also " \
        "custom_metrics[0].metrics[0])" in found


def test_two_queries_of_one_name_are_refused():
    found = problems([query(), query({"name": "other", "help": "x"})])
    assert "custom_metrics: duplicate query name tickets" in found


# --- query-exporter files ---


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


QUERY_EXPORTER = """
databases:
  db:
    dsn: !env TICKETS_DSN
    labels: {site: lab}
    connection-pool: {size: 2}
metrics: !include metrics.yaml
queries:
  by_status:
    databases: [db]
    metrics: [tickets_open]
    interval: 5m
    timeout: 2.5
    sql: !file by_status.sql
  sizes:
    databases: [db]
    metrics: [ticket_size]
    schedule: "0 * * * *"
    parameters:
      - {status: open}
      - {status: closed}
    sql: SELECT size AS ticket_size FROM tickets WHERE status = :status
  at_scrape:
    databases: [db]
    metrics: [tickets_open]
    sql: SELECT status, COUNT(*) AS tickets_open FROM tickets GROUP BY status
"""
METRICS = """
tickets_open: {type: gauge, description: Open tickets, labels: [status], expiration: 1h}
ticket_size: {type: histogram, buckets: [1, 10, 100]}
"""


def test_a_query_exporter_file_runs_as_custom_metrics_with_its_tags(tmp_path, monkeypatch):
    monkeypatch.setenv("TICKETS_DSN", "sqlite:////tmp/tickets.db")
    write(tmp_path, "metrics.yaml", METRICS)
    write(tmp_path, "by_status.sql", "SELECT status, COUNT(*) AS tickets_open FROM tickets "
                                      "GROUP BY status\n")
    config = load_config(write(tmp_path, "qe.yaml", QUERY_EXPORTER), collector_options=OPTIONS)
    assert config.database.url == "sqlite:////tmp/tickets.db"
    assert config.enabled_collectors == ()
    by_status, sizes, at_scrape = config.custom_metrics
    assert by_status.sql.startswith("SELECT status, COUNT(*) AS tickets_open")
    assert (by_status.interval, by_status.timeout, by_status.schedule) == (300, 2.5, None)
    assert by_status.constant_labels == (("database", "db"), ("site", "lab"))
    assert by_status.metrics[0].expiration == 3600 and by_status.query_exporter
    assert sizes.schedule == "0 * * * *"
    assert sizes.parameters == ({"status": "open"}, {"status": "closed"})
    assert sizes.metrics[0].buckets == (1, 10, 100)
    # An on-scrape query runs on a schedule here: we never query at scrape time.
    assert (at_scrape.interval, at_scrape.timeout) == (60, 30)


def test_parameter_mappings_combine_as_query_exporter_combines_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TICKETS_DSN", "sqlite:////tmp/tickets.db")
    write(tmp_path, "metrics.yaml", METRICS)
    write(tmp_path, "by_status.sql", "SELECT 1")
    text = QUERY_EXPORTER.replace(
        "      - {status: open}\n      - {status: closed}\n",
        "      a: [{x: 1}, {x: 2}]\n      b: [{y: 3}]\n")
    config = load_config(write(tmp_path, "qe.yaml", text), collector_options=OPTIONS)
    assert config.custom_metrics[1].parameters == ({"a__x": 1, "b__y": 3},
                                                   {"a__x": 2, "b__y": 3})


def qe_problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "qe.yaml", text), collector_options=OPTIONS)
    return caught.value.problems


def test_an_unset_env_tag_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("TICKETS_DSN", raising=False)
    write(tmp_path, "metrics.yaml", METRICS)
    (problem,) = qe_problems(tmp_path, QUERY_EXPORTER)
    assert "!env TICKETS_DSN: environment variable TICKETS_DSN is not set" in problem


@pytest.mark.parametrize(("text", "expected"), [
    ("databases: {a: {dsn: 'sqlite://'}, b: {dsn: 'sqlite://'}}\nmetrics: {}\nqueries: {}\n",
     "databases: usage-exporter reads one database; this file defines 2"),
    ("databases: {a: {dsn: 'sqlite://', connect-sql: ['SET x = 1']}}\nmetrics: {}\n"
     "queries: {}\n", "databases.a.connect-sql: not supported"),
    ("databases: {a: {dsn: 'sqlite://'}}\nmetrics: {m: {type: gauge}}\n"
     "queries: {q: {databases: [a], metrics: [n], sql: 'SELECT 1 AS n'}}\n",
     "queries.q.metrics: unknown metrics: n"),
    ("databases: {a: {dsn: 'sqlite://'}}\nmetrics: {queries: {type: gauge}}\nqueries: {}\n",
     "metrics.queries: queries clashes with a built-in metric"),
    ("databases: {a: {dsn: 'sqlite://', labels: {site: x}}}\n"
     "metrics: {m: {type: gauge, labels: [site]}}\nqueries: {}\n",
     "metrics.m.labels: overlap with the database labels: site"),
    ("databases: {a: {dsn: 'sqlite://'}}\nmetrics: {m: {type: enum}}\nqueries: {}\n",
     "metrics.m.states: an enum metric needs its states"),
    ("databases: {a: {dsn: 'sqlite://'}}\nmetrics: {m: {type: gauge}}\n"
     "queries: {q: {databases: [a], metrics: [m], sql: 'SELECT 1 AS m', interval: 5,"
     " schedule: '* * * * *'}}\n", "queries.q: can't set both interval and schedule"),
])
def test_query_exporter_mistakes_name_their_yaml_path(tmp_path, text, expected):
    found = qe_problems(tmp_path, text)
    assert any(p.startswith(expected) for p in found), found


def test_our_own_config_is_not_taken_for_a_query_exporter_file():
    with pytest.raises(ConfigError, match="queries: unknown section"):
        parse_config({"database": DATABASE, "databases": {}, "queries": {}},
                     collector_options=OPTIONS)
