"""The Grafana dashboard, its provisioning files and the Prometheus alert rules in grafana/.

Static checks of the dashboard model (schema version, the datasource variable in every panel, a
unit and a description on every panel, job/instance filters in every selector); every metric a
panel or an alert names is one a live exporter serves; and end to end: real exporter daemons on
the Nextcloud fixture, on a demo database and on the Synapse fixture, scraped by a real
Prometheus 2.42 that runs every panel expression (non-empty results required) and evaluates the
alert rules. promtool checks the rules and runs their unit tests (grafana/alerts.test.yaml).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from collectors import available
from exporter.demo_data import build_demo_database
from exporter.platforms import PROFILES
from tests.conftest import NEXTCLOUD_DB, ROOT, SYNAPSE, fixture_copy, read_json
from tests.servers import PrometheusServer, promtool_path, start_prometheus
from tests.test_cli import free_port, running_daemon, write_config

GRAFANA = ROOT / "grafana"
DASHBOARD = GRAFANA / "dashboard.json"
ALERTS = GRAFANA / "alerts.yaml"
ALERT_TESTS = GRAFANA / "alerts.test.yaml"
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
MEDIA_ROW = "Media (Synapse)"
PHONE_HOME_ROW = "Rooms, messages and retention (Synapse)"
# Rows of metrics only Synapse has: collapsed, so other platforms show no empty panels.
SYNAPSE_ROWS = (MEDIA_ROW, PHONE_HOME_ROW)
MEDIA_METRICS = ("usage_media_", "usage_user_media_")
PHONE_HOME_METRICS = ("usage_rooms", "usage_rooms_active", "usage_messages",
                      "usage_users_retained", "usage_users_retained_by_client",
                      "usage_users_by_type", "usage_users_registered")
# Series Prometheus makes itself for every target, not the exporter.
SCRAPE_SERIES = {"up"}
# Grafana's macros, as Grafana would expand them for a short range.
MACROS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
# Synapse (and its collectors) may not exist on every branch: without them the Synapse panels are
# only checked to live in their rows.
SYNAPSE_AVAILABLE = "synapse" in PROFILES and {
    "media", "rooms", "messages", "retention", "registrations"} <= set(available())
SYNAPSE_NOW = read_json(SYNAPSE / "phone_home_stats.json")["now_ms"] / 1000
JOB, SYNAPSE_JOB = "usage-exporter", "usage-exporter-synapse"
# Capacity for the fixture target just above what its storages use (~59.8 MB), so the storage
# alert goes pending there; the demo target gets plenty.
FIXTURE_CAPACITY, DEMO_CAPACITY = 60_000_000, 1024**4
DEMO_USERS = 100
T = TypeVar("T")


# --- the dashboard model ----------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    row: str
    panel: str
    ref: str
    expr: str

    def __str__(self) -> str:
        return f"{self.row} / {self.panel} / {self.ref}: {self.expr}"


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def rows_and_panels(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(row title, panel) for every non-row panel, also those nested in collapsed rows."""
    row = ""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            for nested in panel.get("panels", []):
                yield row, nested
        else:
            yield row, panel


def queries(dashboard: dict[str, Any]) -> list[Query]:
    return [Query(row, panel["title"], target["refId"], target["expr"])
            for row, panel in rows_and_panels(dashboard) for target in panel["targets"]]


def concrete(expr: str, job: str = ".*", instance: str = ".*") -> str:
    """The expression as Grafana sends it: macros and template variables replaced."""
    for macro, value in MACROS.items():
        expr = expr.replace(macro, value)
    for name, value in (("job", job), ("instance", instance)):
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    # label_replace's "$1" is PromQL's, not Grafana's.
    assert not re.search(r"\$(?!\d)", expr), f"unexpanded variable in {expr}"
    return expr


DASHBOARD_QUERIES = queries(load_dashboard())


def test_the_dashboard_is_classic_json_that_imports_and_provisions():
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["id"] is None
    assert re.fullmatch(r"[a-z0-9-]{8,40}", dashboard["uid"])
    # File provisioning never resolves __inputs: the data source is a template variable instead.
    assert "__inputs" not in dashboard
    assert "${DS_" not in DASHBOARD.read_text()
    grafana = next(r for r in dashboard["__requires"] if r["id"] == "grafana")
    assert tuple(int(p) for p in grafana["version"].split(".")) >= (10, 4, 0)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "instance"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name, query in (
            ("job", "label_values(usage_exporter_build_info, job)"),
            ("instance", 'label_values(usage_exporter_build_info{job=~"$job"}, instance)')):
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["datasource"] == DATASOURCE_REF
        assert variable["query"]["query"] == variable["definition"] == query
        assert variable["multi"] and variable["includeAll"]
    ids = [p["id"] for p in dashboard["panels"]]
    ids += [nested["id"] for p in dashboard["panels"] for nested in p.get("panels", [])]
    assert len(ids) == len(set(ids))
    for _, panel in [("", p) for p in dashboard["panels"]] + list(rows_and_panels(dashboard)):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]


def test_every_panel_uses_the_datasource_variable_and_has_a_unit_and_a_description():
    dashboard = load_dashboard()
    for panel in dashboard["panels"]:
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
    for _, panel in rows_and_panels(dashboard):
        title = panel["title"]
        assert panel["datasource"] == DATASOURCE_REF, title
        assert panel["targets"], title
        assert all(t.get("datasource", DATASOURCE_REF) == DATASOURCE_REF
                   for t in panel["targets"]), title
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), title
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title}: no unit"
        assert len(panel.get("description", "")) >= 30, f"{title}: no description"
    titles = [panel["title"] for _, panel in rows_and_panels(dashboard)]
    assert len(titles) == len(set(titles))


def test_the_rows_cover_what_users_look_for():
    dashboard = load_dashboard()
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Overview", "Activity", "Shares", "Storage", "Quotas", *SYNAPSE_ROWS,
                    "Exporter health"]
    overview = {q.expr for q in DASHBOARD_QUERIES if q.row == "Overview"}
    for metric in ("sum(usage_users{", "usage_users_active{", "sum(usage_users_concurrent{",
                   "sum(usage_storage_used_bytes{", "sum(usage_storage_free_bytes{",
                   "sum(usage_files{", "sum(usage_shares{"):
        assert any(metric in expr for expr in overview), metric
    # Media and the phone-home numbers exist on Synapse only: their panels live in their rows.
    for query in DASHBOARD_QUERIES:
        assert any(name in query.expr for name in MEDIA_METRICS) == (query.row == MEDIA_ROW), \
            query
    phone_home = " ".join(q.expr for q in DASHBOARD_QUERIES if q.row == PHONE_HOME_ROW)
    for name in PHONE_HOME_METRICS:
        assert re.search(rf"\b{name}{{", phone_home), f"{PHONE_HOME_ROW}: no panel of {name}"


def test_rows_of_synapse_metrics_are_collapsed_and_hold_their_panels():
    """Grafana (classic JSON) cannot hide a row whose metrics are absent (a repeated row with no
    values is still drawn once), so these rows are collapsed: on another platform the dashboard
    shows their titles only, no empty panel. Every other row is open."""
    dashboard = load_dashboard()
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    for row in rows:
        synapse = row["title"] in SYNAPSE_ROWS
        assert row["collapsed"] is synapse, row["title"]
        assert bool(row["panels"]) is synapse, row["title"]
    top = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert not {p["title"] for p in top} & {p["title"] for row in rows for p in row["panels"]}
    # Nested panels sit just below their row, as Grafana lays them out when it is opened.
    for row in rows:
        for panel in row["panels"]:
            assert panel["gridPos"]["y"] > row["gridPos"]["y"], panel["title"]


# --- PromQL: parsed, filtered, and naming only metrics the exporter serves ---------------------


@pytest.fixture(scope="module")
def promql() -> Any:
    import promql_parser  # a test dependency (pyproject's test extra)

    return promql_parser


def selectors(promql: Any, expr: str) -> list[Any]:
    found: list[Any] = []
    promql.walk(promql.parse(expr),
                lambda node: found.append(node) if isinstance(node, promql.VectorSelector)
                else None)
    return found


def metric_names(promql: Any, expr: str) -> set[str]:
    names = set()
    for selector in selectors(promql, expr):
        name = selector.name or next(m.value for m in selector.matchers.matchers
                                     if m.name == "__name__")
        names.add(name)
    return names


def test_every_expression_parses_and_filters_by_job_and_instance(promql):
    for query in DASHBOARD_QUERIES:
        # Only the macros are replaced: the variables must appear as Grafana expands them.
        expr = query.expr
        for macro, value in MACROS.items():
            expr = expr.replace(macro, value)
        found = selectors(promql, expr)
        assert found, query
        for selector in found:
            matchers = {(m.name, str(m.op), m.value) for m in selector.matchers.matchers}
            assert ("job", "MatchOp.Re", "$job") in matchers, query
            assert ("instance", "MatchOp.Re", "$instance") in matchers, query
        if re.search(r"\b(rate|irate|increase)\(", query.expr):
            assert "[$__rate_interval]" in query.expr, query
    for rule in alert_rules():
        assert selectors(promql, rule["expr"]), rule["alert"]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"]
            for rule in group["rules"]]


# --- provisioning and alert rules -------------------------------------------------------------


def test_provisioning_files_point_at_prometheus_and_the_dashboard():
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert datasources["apiVersion"] == 1
    [source] = datasources["datasources"]
    assert source["type"] == "prometheus" and source["access"] == "proxy"
    assert source["uid"] and source["url"].startswith("http")
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "usage-exporter.yaml").read_text())
    assert providers["apiVersion"] == 1
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    assert Path(provider["options"]["path"]).is_absolute()


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool_path(), *args], cwd=GRAFANA, text=True, capture_output=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def test_promtool_accepts_the_alert_rules():
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_the_alert_unit_tests_pass_and_cover_every_alert():
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    tested = {case["alertname"]: set() for t in tests for case in t["alert_rule_test"]}
    for t in tests:
        for case in t["alert_rule_test"]:
            tested[case["alertname"]].add(bool(case["exp_alerts"]))
    assert tested == {rule["alert"]: {True, False} for rule in alert_rules()}
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    result = promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


# --- end to end: real exporters, a real Prometheus --------------------------------------------


@dataclass
class Stack:
    prometheus: PrometheusServer
    # role -> (instance "host:port", the /metrics body it served)
    targets: dict[str, tuple[str, str]]

    def instance(self, role: str) -> str:
        return self.targets[role][0]

    def served(self, role: str) -> set[str]:
        return {line.split("{")[0].split(" ")[0] for line in self.targets[role][1].splitlines()
                if line and not line.startswith("#")}


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read()).decode()


def wait_for(condition: Callable[[], T], seconds: float, what: str) -> T:
    """Poll `condition` until it returns something truthy; bounded."""
    deadline = time.monotonic() + seconds
    last: T | None = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what} within {seconds:.0f}s (last: {last!r})")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, nextcloud_now: int) -> Iterator[Stack]:
    """The Nextcloud fixture, a demo database and (if it exists) the Synapse fixture, each
    served by a real daemon, scraped every second by one Prometheus with grafana/alerts.yaml."""
    root = tmp_path_factory.mktemp("grafana")
    demo_db = root / "demo" / "nextcloud.db"
    demo_db.parent.mkdir()
    build_demo_database(demo_db, now=time.time(), users=DEMO_USERS)
    daemons = [
        ("fixture", f"sqlite:///{NEXTCLOUD_DB}", "nextcloud", nextcloud_now,
         f"  available_storage_bytes: {FIXTURE_CAPACITY}"),
        ("demo", f"sqlite:///{demo_db}", "nextcloud", time.time(),
         f"  available_storage_bytes: {DEMO_CAPACITY}"),
    ]
    if SYNAPSE_AVAILABLE:
        daemons.append(("synapse", f"sqlite:///{fixture_copy(SYNAPSE / 'homeserver.db')}",
                        "synapse", SYNAPSE_NOW, ""))
    with ExitStack() as stack:
        targets = {}
        for role, url, platform, as_of, extra in daemons:
            port = free_port()
            (root / role).mkdir(parents=True, exist_ok=True)
            config = write_config(root / role / "config.yaml", url, port, platform=platform,
                                  database_extra=extra)
            base, _ = stack.enter_context(running_daemon(config, port, as_of))
            targets[role] = (f"127.0.0.1:{port}", http_text(base + "/metrics"))
        jobs = {JOB: [targets["fixture"][0], targets["demo"][0]]}
        if SYNAPSE_AVAILABLE:
            jobs[SYNAPSE_JOB] = [targets["synapse"][0]]
        prometheus = start_prometheus(config={
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": hosts}]}
                               for job, hosts in jobs.items()],
        })
        stack.callback(prometheus.stop)
        # Prometheus 2.42 scrapes new targets only after a few seconds; increase() needs two
        # samples of each series, so wait for two scrapes of every target.
        wait_for(lambda: len([r for r in prometheus.query("count_over_time(up[1m]) >= 2 "
                                                          "and up == 1")]) == len(targets),
                 30, "every target scraped twice")
        yield Stack(prometheus, targets)


def test_panels_and_alerts_name_only_metrics_the_exporter_serves(stack, promql):
    nextcloud = stack.served("fixture") & stack.served("demo")
    served = set().union(*(stack.served(role) for role in stack.targets))
    ingested = set(stack.prometheus.api("label/__name__/values"))
    for query in DASHBOARD_QUERIES:
        names = metric_names(promql, concrete(query.expr))
        if query.row in SYNAPSE_ROWS:
            if not SYNAPSE_AVAILABLE:
                continue  # nothing serves them yet: test_the_rows_cover_... places them
            assert names <= stack.served("synapse"), query
            # Nothing a Nextcloud target serves: why the row is collapsed.
            assert not names & nextcloud, query
        else:
            # Everything outside the Synapse rows is there on Nextcloud (storage capacity set).
            assert names <= nextcloud | SCRAPE_SERIES, f"{query}: not served: {names - served}"
        assert names <= ingested, f"{query}: not in Prometheus: {names - ingested}"
    for rule in alert_rules():
        names = metric_names(promql, rule["expr"])
        assert names <= served | SCRAPE_SERIES, f"{rule['alert']}: {names - served}"
        assert names <= ingested, f"{rule['alert']}: {names - ingested}"


def result_values(results: list[dict[str, Any]]) -> list[float]:
    return [float(r["value"][1]) for r in results]


def test_every_panel_expression_returns_data_from_prometheus(stack):
    prometheus = stack.prometheus
    roles = {"fixture": JOB, "demo": JOB}
    if SYNAPSE_AVAILABLE:
        roles["synapse"] = SYNAPSE_JOB
    for query in DASHBOARD_QUERIES:
        synapse_only = query.row in SYNAPSE_ROWS
        if synapse_only and not SYNAPSE_AVAILABLE:
            continue  # no target serves them: test_the_rows_cover_... places them in their row
        # All jobs and instances ("All" in both variables), then each target on its own: the
        # Nextcloud ones for every panel outside the Synapse rows, Synapse for those rows.
        checks = [concrete(query.expr)]
        for role, job in roles.items():
            if synapse_only == (role == "synapse"):
                checks.append(concrete(query.expr, job, stack.instance(role)))
        for expr in checks:
            results = prometheus.query(expr)  # a syntax error raises here
            assert results, f"{query}: no data for {expr}"
            values = result_values(results)
            assert not any(math.isnan(v) for v in values), f"{query}: NaN for {expr}"


def test_the_variables_and_the_targets_table_resolve(stack):
    prometheus = stack.prometheus
    # label_values(metric, label) is the label values API with a match[] selector.
    jobs = prometheus.api("label/job/values", **{"match[]": "usage_exporter_build_info"})
    assert set(jobs) == ({JOB, SYNAPSE_JOB} if SYNAPSE_AVAILABLE else {JOB})
    instances = prometheus.api("label/instance/values",
                               **{"match[]": f'usage_exporter_build_info{{job=~"{JOB}"}}'})
    assert set(instances) == {stack.instance("fixture"), stack.instance("demo")}
    [table] = [q for q in DASHBOARD_QUERIES if q.panel == "Targets"]
    rows = {r["metric"]["instance"]: r["metric"] for r in prometheus.query(concrete(table.expr))}
    assert {i: m["platform"] for i, m in rows.items()} == {
        stack.instance(role): "synapse" if role == "synapse" else "nextcloud"
        for role in stack.targets}
    assert all(m["exporter_version"] for m in rows.values())


def served_value(body: str, metric: str) -> float | None:
    for line in body.splitlines():
        if line.startswith(metric + " "):
            return float(line.split()[1])
    return None


def test_the_alert_rules_evaluate_on_live_data(stack):
    prometheus = stack.prometheus
    # What the rules should make of the served numbers: storage nearly full on the fixture
    # (capacity barely above use), users over quota where the exporter counts some.
    expected = set()
    for instance, body in stack.targets.values():
        free = served_value(body, "usage_storage_free_bytes")
        total = served_value(body, "usage_storage_total_bytes")
        if free is not None and total and free / total < 0.10:
            expected.add(("UsageStorageNearlyFull", instance))
        if (served_value(body, "usage_users_over_quota") or 0) > 0:
            expected.add(("UsageUsersOverQuota", instance))
    assert ("UsageStorageNearlyFull", stack.instance("fixture")) in expected

    def pending() -> set[tuple[str, str]] | None:
        alerts = prometheus.query("ALERTS")
        found = {(a["metric"]["alertname"], a["metric"]["instance"]) for a in alerts}
        assert all(a["metric"]["alertstate"] == "pending" for a in alerts), alerts
        return found if found == expected else None

    wait_for(pending, 15, f"exactly these alerts pending: {sorted(expected)}")
    rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
    assert {r["name"] for r in rules} == {r["alert"] for r in alert_rules()}
    for rule in rules:
        assert rule["health"] == "ok", rule
