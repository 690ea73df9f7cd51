"""Custom metrics: read-only SQL queries whose result columns become metric values and labels.

Two ways to write them, one model (QuerySpec, MetricSpec), run by the same runner and scheduler
as the collectors (collectors.sql.QueryCollector) and rendered into the same /metrics:

- the `custom_metrics` section of our own config: a list of queries, each with its metrics;
- a query-exporter 5.x file (`databases`, `metrics`, `queries`, its !env/!file/!include tags),
  recognised by those sections and the absence of ours, which then runs unchanged with
  query-exporter's semantics (QuerySpec.query_exporter; docs/custom-sql.md lists the
  deliberate differences).

Every problem names its YAML path, in the config and when a run meets a result that does not fit.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.engine import URL

from exporter.config import (
    COMMON_COLLECTOR_OPTIONS,
    CollectorConfig,
    Config,
    ConfigError,
    DatabaseConfig,
    HistoryConfig,
    LoggingConfig,
    Option,
    PerUserMetricsConfig,
    ServerConfig,
    choice,
    database_url,
    duration,
    positive_int,
    string,
)
from exporter.readonly import statement_problem

if TYPE_CHECKING:
    from exporter.config import _Reader

METRIC_TYPES = ("gauge", "counter", "histogram", "summary", "enum")
# Our own metrics (collectors and self-metrics) live under this prefix: a custom name may not.
RESERVED_PREFIX = "usage_"
# query-exporter's own metrics: its files may not define them either.
QUERY_EXPORTER_BUILTINS = frozenset(("database_errors", "queries", "query_interval",
                                     "query_latency", "query_timestamp"))
COLLECTOR_PREFIX = "sql:"  # the collector label of a query's usage_collector_* series
DEFAULT_MAX_SERIES = 1000
# A query-exporter file has no key for the cap: its queries get a larger one.
QUERY_EXPORTER_MAX_SERIES = 10_000
DEFAULT_INTERVAL = 60.0
DEFAULT_TIMEOUT = 30.0
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
QUERY_EXPORTER_SECTIONS = frozenset(("databases", "metrics", "queries", "builtin-metrics"))


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: str  # one of METRIC_TYPES
    help: str
    column: str  # the result column holding the value
    labels: tuple[str, ...] = ()  # result columns whose values become labels of the same name
    unit: str = ""
    buckets: tuple[float, ...] = ()  # histogram
    states: tuple[str, ...] = ()  # enum
    increment: bool = False  # counter: add each row's value instead of setting it
    expiration: float | None = None  # query-exporter: drop a series not seen for this long
    path: str = ""  # where it is defined, for messages


@dataclass(frozen=True)
class QuerySpec:
    name: str
    sql: str
    metrics: tuple[MetricSpec, ...]
    interval: float = DEFAULT_INTERVAL
    timeout: float = DEFAULT_TIMEOUT
    jitter: float = 0.0
    schedule: str | None = None
    max_series: int = DEFAULT_MAX_SERIES
    # query-exporter parameter sets: the query runs once with each, as bind parameters.
    parameters: tuple[Mapping[str, Any], ...] = ()
    # Labels on every series (query-exporter's database label and database labels).
    constant_labels: tuple[tuple[str, str], ...] = ()
    # query-exporter semantics: exact result columns, NULL counts as 0, series kept across runs
    # (until their metric's expiration), histograms and increments accumulate.
    query_exporter: bool = False
    path: str = ""

    @property
    def collector(self) -> str:
        return COLLECTOR_PREFIX + self.name

    def collector_config(self) -> CollectorConfig:
        return CollectorConfig(self.collector, True, self.interval, self.timeout, self.jitter,
                               {}, schedule=self.schedule)


# --- YAML with query-exporter's tags ---------------------------------------------------------


class _TaggedLoader(yaml.SafeLoader):
    base_path: Path = Path(".")


def _env(loader: _TaggedLoader, node: yaml.Node) -> Any:
    name = loader.construct_scalar(node)  # type: ignore[arg-type]
    value = os.environ.get(name)
    if value is None:
        raise yaml.constructor.ConstructorError(
            None, None, f"!env {name}: environment variable {name} is not set", node.start_mark)
    return yaml.safe_load(value)  # as query-exporter: the value is YAML (numbers stay numbers)


def _included(loader: _TaggedLoader, node: yaml.Node, tag: str) -> Path:
    path = loader.base_path / loader.construct_scalar(node)  # type: ignore[arg-type]
    if not path.is_file():
        raise yaml.constructor.ConstructorError(None, None, f"{tag}: file {path} not found",
                                                node.start_mark)
    return path


def _file(loader: _TaggedLoader, node: yaml.Node) -> str:
    return _included(loader, node, "!file").read_text().strip()


def _include(loader: _TaggedLoader, node: yaml.Node) -> Any:
    return load_tagged_yaml(_included(loader, node, "!include"))


_TaggedLoader.add_constructor("!env", _env)
_TaggedLoader.add_constructor("!file", _file)
_TaggedLoader.add_constructor("!include", _include)


def load_tagged_yaml(path: Path) -> Any:
    """A YAML document, with !env NAME, !file PATH and !include PATH (relative to the file)."""
    loader = type("Loader", (_TaggedLoader,), {"base_path": path.parent})
    return yaml.load(path.read_text(), Loader=loader)  # a SafeLoader subclass


# --- shared checks ---------------------------------------------------------------------------


def _metric_name(reader: _Reader, path: str, name: Any, reserved: frozenset[str]) -> bool:
    if not isinstance(name, str) or not _METRIC_NAME.fullmatch(name):
        reader.problem(path, f"not a Prometheus metric name: {name!r}")
        return False
    if name.startswith(RESERVED_PREFIX) or name in reserved:
        reader.problem(path, f"{name} clashes with a built-in metric (names starting with "
                       f"{RESERVED_PREFIX} are the exporter's own)")
        return False
    return True


def _labels(reader: _Reader, path: str, node: Any) -> tuple[str, ...]:
    if node is None:
        return ()
    if not isinstance(node, list) or not all(isinstance(v, str) for v in node):
        reader.problem(path, "expected a list of label names")
        return ()
    for label in node:
        if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
            reader.problem(path, f"not a Prometheus label name: {label!r}")
    if len(set(node)) != len(node):
        reader.problem(path, "must not contain duplicate labels")
    return tuple(node)


def _buckets(reader: _Reader, path: str, node: Any) -> tuple[float, ...]:
    if (not isinstance(node, list) or not node
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in node)):
        reader.problem(path, "expected a non-empty list of numbers")
        return ()
    if sorted(set(node)) != node:
        reader.problem(path, "must be sorted and without duplicates")
    return tuple(float(v) for v in node)


def _cron(value: Any) -> str:
    try:
        CronTrigger.from_crontab(string(value))
    except ValueError as error:
        raise ValueError(f"not a cron expression (minute hour day month weekday): {error}") \
            from None
    return value


def _unit(reader: _Reader, path: str, name: str, unit: Any) -> str:
    if unit is None:
        return ""
    if not isinstance(unit, str) or not _LABEL_NAME.fullmatch(unit):
        reader.problem(path, f"expected a unit such as bytes or seconds, got {unit!r}")
        return ""
    if not name.removesuffix("_total").endswith(f"_{unit}"):
        reader.problem(path, f"the metric name must end with _{unit} (Prometheus naming), "
                       f"e.g. {name}_{unit}")
    return unit


# --- our own section -------------------------------------------------------------------------

def _as_given(value: Any) -> Any:
    """A node checked by its own parser after the section's keys are."""
    return value


_METRIC_OPTIONS: Mapping[str, Option] = {
    "name": Option(string, required=True),
    "type": Option(choice("gauge", "counter"), "gauge"),
    "help": Option(string, required=True),
    "unit": Option(_as_given),
    "value": Option(string),
    "labels": Option(_as_given),
}
_QUERY_OPTIONS: Mapping[str, Option] = {
    "name": Option(string, required=True),
    "sql": Option(string, required=True),
    "metrics": Option(_as_given, required=True),
    "schedule": Option(_cron),
    "max_series": Option(positive_int, DEFAULT_MAX_SERIES),
    **{k: v for k, v in COMMON_COLLECTOR_OPTIONS.items() if k != "enabled"},
}


def parse_section(node: Any, reader: _Reader) -> tuple[QuerySpec, ...]:
    """custom_metrics: a list of {name, sql, interval | schedule, timeout, jitter, max_series,
    metrics: [{name, type, help, unit, value, labels}]}."""
    if node is None:
        return ()
    if not isinstance(node, list):
        reader.problem("custom_metrics", "expected a list of queries (name, sql, metrics)")
        return ()
    queries: list[QuerySpec] = []
    names: dict[str, str] = {}  # metric name -> where it is defined
    for index, item in enumerate(node):
        path = f"custom_metrics[{index}]"
        values = reader.section(item, path, _QUERY_OPTIONS)
        if values["timeout"] > values["interval"] and values["schedule"] is None:
            reader.problem(f"{path}.timeout", "must not exceed the interval")
        metrics = _section_metrics(values["metrics"], f"{path}.metrics", reader, names)
        if values["sql"] is not None and (problem := statement_problem(values["sql"])):
            reader.problem(f"{path}.sql", problem)
            continue
        if values["name"] is None or values["sql"] is None or not metrics:
            continue
        queries.append(QuerySpec(
            name=values["name"], sql=values["sql"].strip().rstrip(";"), metrics=metrics,
            interval=values["interval"], timeout=values["timeout"], jitter=values["jitter"],
            schedule=values["schedule"], max_series=values["max_series"], path=path))
    _unique_names(reader, "custom_metrics", [q.name for q in queries])
    return tuple(queries)


def _section_metrics(node: Any, path: str, reader: _Reader,
                     names: dict[str, str]) -> tuple[MetricSpec, ...]:
    if node is None:
        return ()
    if not isinstance(node, list) or not node:
        reader.problem(path, "expected a non-empty list of metrics (name, type, help, ...)")
        return ()
    metrics = []
    for index, item in enumerate(node):
        where = f"{path}[{index}]"
        values = reader.section(item, where, _METRIC_OPTIONS)
        name = values["name"]
        if name is None or not _metric_name(reader, f"{where}.name", name, frozenset()):
            continue
        # A counter is exposed as <name>_total: a gauge of that name would be the same series.
        exposed = {name, name.removesuffix("_total"), f"{name.removesuffix('_total')}_total"} \
            if values["type"] == "counter" else {name}
        if clash := sorted(exposed & names.keys()):
            reader.problem(f"{where}.name",
                           f"duplicate metric name {clash[0]} (also {names[clash[0]]})")
            continue
        names.update(dict.fromkeys(exposed, where))
        labels = _labels(reader, f"{where}.labels", values["labels"])
        column = values["value"] or name
        if column in labels:
            reader.problem(f"{where}.value", f"column {column} is also a label")
        metrics.append(MetricSpec(
            name=name, type=values["type"], help=values["help"] or "", column=column,
            labels=labels, unit=_unit(reader, f"{where}.unit", name, values["unit"]),
            path=where))
    return tuple(metrics)


def _unique_names(reader: _Reader, path: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            reader.problem(path, f"duplicate query name {name}")
        seen.add(name)


# --- query-exporter files --------------------------------------------------------------------


def is_query_exporter(raw: Any) -> bool:
    """A query-exporter file: its sections, and none of ours."""
    return (isinstance(raw, dict) and {"databases", "queries"} <= raw.keys()
            and raw.keys() <= QUERY_EXPORTER_SECTIONS)


def query_exporter_config(raw: dict[str, Any], reader: _Reader,
                          collector_options: Mapping[str, Mapping[str, Option]]) -> Config:
    """A query-exporter 5.x file as our config: its database, its queries as custom metrics,
    our collectors off, every other section at its default."""
    database, database_labels = _qe_database(raw.get("databases"), reader)
    metrics = _qe_metrics(raw.get("metrics"), reader, database_labels)
    queries = _qe_queries(raw.get("queries"), reader, metrics, database_labels)
    builtin = raw.get("builtin-metrics")
    if builtin not in (None, False) and not (
            isinstance(builtin, dict) and builtin.keys() <= {"query_latency"}):
        reader.problem("builtin-metrics", "expected false or {query_latency: {buckets: [...]}}")
    if reader.problems:
        raise ConfigError(reader.problems)
    return Config(
        database=DatabaseConfig(url=database, platform="custom"),
        server=ServerConfig(), api_keys=(),
        collectors=tuple(CollectorConfig(name, False, 60.0, 30.0, 5.0,
                                         {k: o.default for k, o in options.items()})
                         for name, options in sorted(collector_options.items())),
        per_user_metrics=PerUserMetricsConfig(), logging=LoggingConfig(),
        history=HistoryConfig(), custom_metrics=queries)


def _qe_database(node: Any, reader: _Reader) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The one database (usage-exporter reads one), and the labels every series carries."""
    if not isinstance(node, dict) or len(node) != 1:
        count = len(node) if isinstance(node, dict) else 0
        reader.problem("databases", f"usage-exporter reads one database; this file defines "
                       f"{count}: run one exporter per database")
        return "", ()
    (name, config), = node.items()
    path = f"databases.{name}"
    if not isinstance(config, dict) or "dsn" not in config:
        reader.problem(path, "expected a mapping with dsn")
        return "", ()
    for key in config:
        if key == "connect-sql":
            reader.problem(f"{path}.connect-sql", "not supported: usage-exporter runs no "
                           "statement of its own choosing on the database (sessions are "
                           "read-only); drop it or run query-exporter for this database")
        elif key not in ("dsn", "labels", "connection-pool"):
            reader.problem(f"{path}.{key}", "unknown key (known keys: dsn, labels, "
                           "connection-pool, connect-sql)")
    dsn = config["dsn"]
    if isinstance(dsn, dict):
        dsn = URL.create(dsn.get("dialect", ""), username=dsn.get("user"),
                         password=dsn.get("password"), host=dsn.get("host"),
                         port=dsn.get("port"), database=dsn.get("database"),
                         query=dsn.get("options") or {}).render_as_string(hide_password=False)
    try:
        url = database_url(dsn)
    except ValueError as error:
        reader.problem(f"{path}.dsn", str(error))
        url = ""
    labels = config.get("labels") or {}
    if not isinstance(labels, dict):
        reader.problem(f"{path}.labels", "expected a mapping of label name to value")
        labels = {}
    return url, (("database", str(name)), *((str(k), str(v)) for k, v in labels.items()))


def _entries(node: Mapping[str, Any], section: str, reader: _Reader,
             known: tuple[str, ...]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(name, YAML path, definition) of each entry that is a mapping; unknown keys reported."""
    for name, config in node.items():
        path = f"{section}.{name}"
        if not isinstance(config, dict):
            reader.problem(path, f"expected a mapping ({', '.join(known)})")
            continue
        for key in config:
            if key not in known:
                reader.problem(f"{path}.{key}", f"unknown key (known keys: {', '.join(known)})")
        yield str(name), path, config


def _qe_metrics(node: Any, reader: _Reader,
                constant: tuple[tuple[str, str], ...]) -> dict[str, MetricSpec]:
    if not isinstance(node, dict):
        reader.problem("metrics", "expected a mapping of metric name to definition")
        return {}
    reserved = {label for label, _ in constant}
    found = {}
    for name, path, config in _entries(node, "metrics", reader, (
            "type", "description", "labels", "buckets", "states", "expiration", "increment")):
        if not _metric_name(reader, path, name, QUERY_EXPORTER_BUILTINS):
            continue
        kind = config.get("type")
        if kind not in METRIC_TYPES:
            reader.problem(f"{path}.type", f"expected one of {', '.join(METRIC_TYPES)}, "
                           f"got {kind!r}")
            continue
        labels = _labels(reader, f"{path}.labels", config.get("labels"))
        if reserved & set(labels):
            reader.problem(f"{path}.labels", f"overlap with the database labels: "
                           f"{', '.join(sorted(reserved & set(labels)))}")
        if config.get("states") is not None and kind != "enum":
            reader.problem(f"{path}.states", "only enum metrics have states")
        if config.get("increment") and kind != "counter":
            reader.problem(f"{path}.increment", "only counter metrics increment")
        buckets = (_buckets(reader, f"{path}.buckets", config["buckets"])
                   if config.get("buckets") is not None else ())
        expiration = None
        if config.get("expiration") is not None:
            try:
                expiration = duration(config["expiration"])
            except ValueError as error:
                reader.problem(f"{path}.expiration", str(error))
        states = tuple(str(s) for s in config.get("states") or ())
        if kind == "enum" and not states:
            reader.problem(f"{path}.states", "an enum metric needs its states")
        found[name] = MetricSpec(
            name=name, type=kind, help=str(config.get("description") or ""), column=name,
            labels=tuple(sorted(labels)), buckets=buckets, states=states,
            increment=bool(config.get("increment")), expiration=expiration, path=path)
    return found


def _qe_queries(node: Any, reader: _Reader, metrics: Mapping[str, MetricSpec],
                constant: tuple[tuple[str, str], ...]) -> tuple[QuerySpec, ...]:
    if not isinstance(node, dict):
        reader.problem("queries", "expected a mapping of query name to definition")
        return ()
    queries = []
    for name, path, config in _entries(node, "queries", reader, (
            "databases", "metrics", "sql", "interval", "schedule", "timeout", "parameters")):
        unknown = [m for m in config.get("metrics") or () if m not in metrics]
        if unknown or not config.get("metrics"):
            reader.problem(f"{path}.metrics", f"unknown metrics: {', '.join(map(str, unknown))}"
                           if unknown else "expected a non-empty list of metric names")
            continue
        if not isinstance(config.get("sql"), str):
            reader.problem(f"{path}.sql", "is required")
            continue
        if problem := statement_problem(config["sql"]):
            reader.problem(f"{path}.sql", problem)
            continue
        interval, schedule, timeout = _qe_timing(config, path, reader)
        queries.append(QuerySpec(
            name=str(name), sql=config["sql"].strip(), max_series=QUERY_EXPORTER_MAX_SERIES,
            metrics=tuple(metrics[m] for m in config["metrics"]), interval=interval,
            timeout=timeout, schedule=schedule, query_exporter=True, constant_labels=constant,
            parameters=_qe_parameters(config.get("parameters"), f"{path}.parameters", reader),
            path=path))
    return tuple(queries)


def _qe_timing(config: Mapping[str, Any], path: str,
               reader: _Reader) -> tuple[float, str | None, float]:
    """Interval, schedule, timeout. A query with neither interval nor schedule runs at scrape
    time in query-exporter; here it runs every DEFAULT_INTERVAL (we never query at scrape)."""
    interval, schedule = DEFAULT_INTERVAL, None
    if config.get("interval") is not None and config.get("schedule") is not None:
        reader.problem(path, "can't set both interval and schedule")
    try:
        if config.get("interval") is not None:
            interval = duration(config["interval"])
        if config.get("schedule") is not None:
            schedule = _cron(config["schedule"])
    except ValueError as error:
        reader.problem(f"{path}.{'schedule' if 'schedule' in config else 'interval'}",
                       str(error))
    timeout = min(DEFAULT_TIMEOUT, interval)
    if config.get("timeout") is not None:
        try:
            timeout = duration(config["timeout"])
        except ValueError as error:
            reader.problem(f"{path}.timeout", str(error))
    return interval, schedule, timeout


def _qe_parameters(node: Any, path: str, reader: _Reader) -> tuple[Mapping[str, Any], ...]:
    """A list of parameter sets, or a mapping of lists whose sets are combined (each key's
    parameters prefixed with `key__`), as query-exporter expands them."""
    if node is None:
        return ()
    if isinstance(node, dict) and all(isinstance(v, list) for v in node.values()):
        flattened = ([{f"{top}__{k}": v for k, v in item.items()} for item in sets]
                     for top, sets in node.items())
        node = [dict(itertools.chain.from_iterable(p.items() for p in combination))
                for combination in itertools.product(*flattened)]
    if not isinstance(node, list) or not node or not all(isinstance(p, dict) for p in node):
        reader.problem(path, "expected a list of parameter sets")
        return ()
    if len({frozenset(p) for p in node}) > 1:
        reader.problem(path, "parameter sets must all have the same keys")
    return tuple(node)

