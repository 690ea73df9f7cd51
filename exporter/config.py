"""YAML configuration, validated into frozen dataclasses.

Every problem is collected with the YAML path it belongs to, so `check-config` can print them all at
once; nothing half-valid ever reaches the daemon.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from exporter.readonly import statement_problem
from exporter.relations import RELATIONS

if TYPE_CHECKING:
    from exporter.custom_metrics import QuerySpec
    from exporter.webconfig import WebConfig

PLATFORMS = ("owncloud", "nextcloud", "synapse", "custom")
DEFAULT_PORT = 10191


class ConfigError(Exception):
    """One or more problems, each prefixed with the YAML path it concerns."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- value parsers: each takes the raw YAML value and returns it converted or raises ValueError ---

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(value: Any) -> float:
    """Seconds from a number or a string such as '30s', '5m', '1h', '7d'."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s, 5m or 1h, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"expected a duration such as 30s, 5m or 1h, got {value!r}")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"must be greater than zero, got {value!r}")
    return seconds


def duration_label(seconds: float) -> str:
    """The shortest exact label for a duration: 300 -> '5m', 86400 -> '1d'."""
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def duration_list(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("expected a non-empty list of durations")
    return tuple(sorted({duration(item) for item in value}))


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"expected a positive whole number, got {value!r}")
    return value


def string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def optional_string(value: Any) -> str | None:
    return None if value is None else string(value)


def choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

    return parse


def timezone(value: Any) -> str:
    try:
        ZoneInfo(string(value))
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown IANA time zone {value!r}") from error
    return value


def database_url(value: Any) -> str:
    try:
        url = make_url(string(value))
    except ArgumentError as error:
        raise ValueError(f"not a database URL: {error}") from error
    if url.get_backend_name() not in ("sqlite", "postgresql", "mysql", "mariadb"):
        raise ValueError(f"unsupported database {url.get_backend_name()!r}; "
                         "use sqlite, postgresql or mysql/mariadb")
    try:
        url.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError) as error:
        raise ValueError(f"no driver for {url.drivername}:// here ({error}); "
                         f"{DRIVERS[url.get_backend_name()]}") from None
    return value


# The drivers the extras install, for a URL whose driver is missing.
DRIVERS = {"sqlite": "SQLite's comes with Python",
           "postgresql": "use postgresql+psycopg:// (pip install 'usage-exporter[postgres]')",
           "mysql": "use mysql+pymysql:// (pip install 'usage-exporter[mysql]')",
           "mariadb": "use mariadb+pymysql:// (pip install 'usage-exporter[mysql]')"}


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SERVER_FAMILIES = {"postgresql": ("postgresql", 5432), "mysql": ("mysql", 3306),
                   "mariadb": ("mysql", 3306)}


def same_database(first: str, second: str) -> bool:
    """Whether two URLs name one database: the same SQLite file however spelled (a link, a
    relative path), or the same database on the same server, default ports and loopback names
    filled in."""
    a, b = make_url(first), make_url(second)
    if a.get_backend_name() == "sqlite" or b.get_backend_name() == "sqlite":
        files = [sqlite_file(url) for url in (a, b) if url.get_backend_name() == "sqlite"]
        if len(files) < 2 or None in files:
            return False
        try:
            return os.path.samefile(*files)
        except OSError:  # not created yet: compare where they would be
            return Path(files[0]).resolve() == Path(files[1]).resolve()

    def where(url: URL) -> tuple[Any, ...]:
        # The driver's own reading: a host, port or dbname in the query wins over the URL's.
        family, port = SERVER_FAMILIES[url.get_backend_name()]
        query = {k: v if isinstance(v, str) else v[-1] for k, v in url.query.items()}
        host = (query.get("host") or url.host or "localhost").lower().rstrip(".")
        loopback = host in LOOPBACK_NAMES or host.startswith("127.") or host.startswith("/")
        database = query.get("dbname") or query.get("database") or url.database
        return (family, "localhost" if loopback else host,
                int(query.get("port") or url.port or port), database)

    return where(a) == where(b)


def sqlite_file(url: URL) -> str | None:
    """The file a SQLite URL opens, also when written as a URI filename (file:PATH?...)."""
    if url.database in (None, "", ":memory:"):
        return None
    path = url.database
    if path.startswith("file:"):
        path = path.removeprefix("file:").split("?", 1)[0]
        path = "/" + path.lstrip("/") if path.startswith("//") else path
    return path or None


def listen_address(value: Any) -> tuple[str, int]:
    """'host:port', ':port' (every interface, IPv6 and IPv4: host "") or '[v6]:port'; port 0
    picks a free port."""
    match = re.fullmatch(r"\[?([^\]]*?)\]?:(\d{1,5})", string(value).strip())
    if not match or not 0 <= int(match.group(2)) < 65536:
        raise ValueError(f"expected host:port such as 127.0.0.1:{DEFAULT_PORT}, got {value!r}")
    return match.group(1), int(match.group(2))


# --- the frozen model ---


@dataclass(frozen=True)
class DatabaseConfig:
    url: str
    platform: str
    table_prefix: str = "oc_"
    data_directory: str | None = None
    available_storage_bytes: int | None = None
    # platform owncloud: the metrics app generation whose answer shape the drop-in routes serve
    metrics_app_version: str = "1.4.0"
    connect_timeout: float = 10.0
    # platform custom: canonical relation name -> the SELECT that produces it
    relations: Mapping[str, str] = field(default_factory=dict)

    def sqlalchemy_url(self) -> URL:
        return make_url(self.url)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    threads: int = 8
    # TLS, basic auth and headers from server.web_config_file (exporter-toolkit format)
    web: WebConfig | None = None


@dataclass(frozen=True)
class ApiKey:
    name: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class CollectorConfig:
    name: str
    enabled: bool
    interval: float
    timeout: float
    jitter: float
    options: Mapping[str, Any]
    # A cron expression (minute hour day month weekday): runs at its times instead of each
    # interval; the interval is then the base of the backoff after failures.
    schedule: str | None = None


@dataclass(frozen=True)
class PerUserMetricsConfig:
    enabled: bool = False
    limit: int = 100


@dataclass(frozen=True)
class HistoryConfig:
    """Where daily rollups (DAU, users by status) are kept: SQLite file or PostgreSQL."""

    url: str = "sqlite:///usage-exporter-history.db"
    retention_days: int = 400


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig
    server: ServerConfig
    api_keys: tuple[ApiKey, ...]
    collectors: tuple[CollectorConfig, ...]
    per_user_metrics: PerUserMetricsConfig
    logging: LoggingConfig
    history: HistoryConfig = field(default_factory=HistoryConfig)
    # custom_metrics (or a query-exporter file): SQL queries whose columns become metrics.
    custom_metrics: tuple[QuerySpec, ...] = ()

    def collector(self, name: str) -> CollectorConfig:
        return next(c for c in self.collectors if c.name == name)

    @property
    def enabled_collectors(self) -> tuple[CollectorConfig, ...]:
        return tuple(c for c in self.collectors if c.enabled)


@dataclass(frozen=True)
class Option:
    """A config key: its parser and its default (None = required unless optional)."""

    parse: Callable[[Any], Any]
    default: Any = None
    required: bool = False


COMMON_COLLECTOR_OPTIONS: Mapping[str, Option] = {
    "enabled": Option(boolean, True),
    "interval": Option(duration, 60.0),
    "timeout": Option(duration, 30.0),
    "jitter": Option(duration, 5.0),
}


class _Reader:
    """Walks the YAML tree, converting values and collecting every problem with its path."""

    def __init__(self, base_dir: Path) -> None:
        self.problems: list[str] = []
        self.base_dir = base_dir

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def section(self, node: Any, path: str, options: Mapping[str, Option]) -> dict[str, Any]:
        if node is None:
            node = {}
        if not isinstance(node, dict):
            self.problem(path, f"expected a mapping, got {type(node).__name__}")
            node = {}
        for key in node:
            if key not in options:
                known = ", ".join(options)
                self.problem(f"{path}.{key}", f"unknown key (known keys: {known})")
        values: dict[str, Any] = {}
        for key, option in options.items():
            if key not in node or node[key] is None:
                if option.required:
                    self.problem(f"{path}.{key}", "is required")
                values[key] = option.default
                continue
            try:
                values[key] = option.parse(node[key])
            except ValueError as error:
                self.problem(f"{path}.{key}", str(error))
                values[key] = option.default
        return values

    def secret(self, node: dict[str, Any], path: str) -> str | None:
        """`secret` inline (after ${ENV} substitution) or `secret_file` read from disk."""
        inline, from_file = node.get("secret"), node.get("secret_file")
        if (inline is None) == (from_file is None):
            self.problem(path, "give exactly one of secret or secret_file")
            return None
        if from_file is not None:
            try:
                inline = (self.base_dir / str(from_file)).read_text().strip()
            except OSError as error:
                self.problem(f"{path}.secret_file", f"cannot read {from_file}: {error.strerror}")
                return None
        if not isinstance(inline, str) or len(inline) < 16:
            self.problem(path, "a secret must be a string of at least 16 characters")
            return None
        if not inline.strip():
            self.problem(path, "a secret of only spaces is refused")
            return None
        if not VISIBLE_ASCII.fullmatch(inline):
            # A header value is read as bytes, not UTF-8: a non-ASCII secret would never match,
            # and a space inside one would not survive Authorization: Bearer.
            self.problem(path, "a secret may only hold visible ASCII characters (letters, "
                         "digits, punctuation; no spaces, no accented letters)")
            return None
        return inline


# What a secret may hold: it travels in an HTTP header (Authorization: Bearer, OC-MetricsApiKey).
VISIBLE_ASCII = re.compile(r"[!-~]+")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute_env(node: Any, path: str, reader: _Reader) -> Any:
    """Replace ${NAME} and ${NAME:-default} in every string scalar."""
    if isinstance(node, dict):
        return {k: _substitute_env(v, f"{path}.{k}" if path else str(k), reader)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute_env(v, f"{path}[{i}]", reader) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name, default)
        if value is None:
            reader.problem(path, f"environment variable {name} is not set")
            return ""
        return value

    return _ENV.sub(replace, node)


def _relations(node: Any, platform: str | None, reader: _Reader,
               required: bool = True) -> dict[str, str]:
    """database.relations: the SQL of each canonical relation, for the custom platform only
    (which may instead give custom_metrics alone)."""
    if node is None:
        if platform == "custom" and required:
            reader.problem("database.relations", "is required for platform custom: give the "
                           "SELECT behind each relation (see README, Custom SQL)")
        return {}
    if platform != "custom":
        reader.problem("database.relations", "only the custom platform takes relations")
        return {}
    if not isinstance(node, dict) or not node:
        reader.problem("database.relations", "expected a mapping of relation name to SELECT")
        return {}
    relations = {}
    for name, sql in node.items():
        path = f"database.relations.{name}"
        if name not in RELATIONS:
            reader.problem(path, f"unknown relation (known: {', '.join(RELATIONS)})")
        elif not isinstance(sql, str) or not sql.strip():
            reader.problem(path, "expected the text of a SELECT statement")
        elif problem := statement_problem(sql):
            reader.problem(path, problem)
        else:
            relations[name] = sql.strip().rstrip(";")
    return relations


def parse_config(raw: Any, *, collector_options: Mapping[str, Mapping[str, Option]],
                 base_dir: Path | None = None, web_config_file: Path | None = None) -> Config:
    """Validate a loaded YAML document. `collector_options` maps each known collector name to the
    options it accepts besides the common ones; `web_config_file` (--web.config.file) replaces
    server.web_config_file."""
    from exporter import custom_metrics  # it builds on this module's parsers

    reader = _Reader(base_dir or Path.cwd())
    if custom_metrics.is_query_exporter(raw):
        return custom_metrics.query_exporter_config(raw, reader, collector_options)
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): expected a mapping with at least a database section"])
    raw = _substitute_env(raw, "", reader)
    sections = {"database", "server", "api", "collectors", "per_user_metrics", "logging",
                "history", "custom_metrics"}
    for key in raw:
        if key not in sections:
            reader.problem(str(key), f"unknown section (known: {', '.join(sorted(sections))})")

    db_node = raw.get("database")
    password_file = db_node.pop("password_file", None) if isinstance(db_node, dict) else None
    relations = db_node.pop("relations", None) if isinstance(db_node, dict) else None
    db = reader.section(db_node, "database", {
        "url": Option(database_url, required=True),
        "platform": Option(choice(*PLATFORMS), required=True),
        "table_prefix": Option(str, "oc_"),
        "data_directory": Option(optional_string),
        "available_storage_bytes": Option(positive_int),
        "metrics_app_version": Option(choice("1.4.0", "legacy"), "1.4.0"),
        "connect_timeout": Option(duration, 10.0),
    })
    if password_file and db["url"]:
        try:
            password = (reader.base_dir / password_file).read_text().strip()
            db["url"] = make_url(db["url"]).set(password=password).render_as_string(False)
        except OSError as error:
            reader.problem("database.password_file",
                           f"cannot read {password_file}: {error.strerror}")

    db["relations"] = _relations(relations, db["platform"], reader,
                                 required=not raw.get("custom_metrics"))

    server = reader.section(raw.get("server"), "server", {
        "listen": Option(listen_address, ("127.0.0.1", DEFAULT_PORT)),
        "threads": Option(positive_int, 8),
        "web_config_file": Option(string),
    })
    web = None
    web_path, web_key = web_config_file, "--web.config.file"
    if web_path is None and server["web_config_file"] is not None:
        web_path, web_key = reader.base_dir / server["web_config_file"], "server.web_config_file"
    if web_path is not None:
        from exporter.webconfig import load_web_config  # it builds on this module's parsers

        try:
            web = load_web_config(web_path)
        except ConfigError as error:
            for problem in error.problems:
                reader.problem(web_key, problem)

    api_keys: list[ApiKey] = []
    api_node = raw.get("api") or {}
    keys_node = api_node.get("keys", []) if isinstance(api_node, dict) else None
    if not isinstance(keys_node, list):
        reader.problem("api.keys", "expected a list of {name, secret | secret_file}")
        keys_node = []
    if isinstance(api_node, dict):
        for key in api_node:
            if key != "keys":
                reader.problem(f"api.{key}", "unknown key (known keys: keys)")
    for index, item in enumerate(keys_node):
        path = f"api.keys[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            reader.problem(path, "expected a mapping with name and secret (or secret_file)")
            continue
        for key in item:
            if key not in ("name", "secret", "secret_file"):
                reader.problem(f"{path}.{key}",
                               "unknown key (known keys: name, secret, secret_file)")
        secret = reader.secret(item, path)
        if secret is not None:
            api_keys.append(ApiKey(item["name"], secret))
    if len({k.name for k in api_keys}) != len(api_keys):
        reader.problem("api.keys", "key names must be unique")

    collectors_node = raw.get("collectors") or {}
    if not isinstance(collectors_node, dict):
        reader.problem("collectors", "expected a mapping of collector name to settings")
        collectors_node = {}
    for name in collectors_node:
        if name not in collector_options:
            reader.problem(f"collectors.{name}",
                           f"unknown collector (known: {', '.join(sorted(collector_options))})")
    collectors = []
    for name, extra in sorted(collector_options.items()):
        values = reader.section(collectors_node.get(name), f"collectors.{name}",
                                {**COMMON_COLLECTOR_OPTIONS, **extra})
        common = {key: values.pop(key) for key in COMMON_COLLECTOR_OPTIONS}
        if common["timeout"] > common["interval"]:
            reader.problem(f"collectors.{name}.timeout", "must not exceed the interval")
        collectors.append(CollectorConfig(name=name, options=values, **common))

    per_user = reader.section(raw.get("per_user_metrics"), "per_user_metrics", {
        "enabled": Option(boolean, False),
        "limit": Option(positive_int, 100),
    })
    history = reader.section(raw.get("history"), "history", {
        "url": Option(database_url, HistoryConfig.url),
        "retention_days": Option(positive_int, HistoryConfig.retention_days),
    })
    if db["url"] and history["url"] and same_database(db["url"], history["url"]):
        reader.problem("history.url", "names the platform database (database.url): the history "
                       "store writes its tables, and the platform database is never written; "
                       "give the history its own SQLite file or database")
    logging = reader.section(raw.get("logging"), "logging", {
        "level": Option(choice("debug", "info", "warning", "error"), "info"),
        "format": Option(choice("auto", "json", "console"), "auto"),
    })
    queries = custom_metrics.parse_section(raw.get("custom_metrics"), reader)
    if reader.problems:
        raise ConfigError(reader.problems)
    host, port = server["listen"]
    return Config(
        database=DatabaseConfig(**db),
        server=ServerConfig(host=host, port=port, threads=server["threads"], web=web),
        api_keys=tuple(api_keys),
        collectors=tuple(collectors),
        per_user_metrics=PerUserMetricsConfig(**per_user),
        logging=LoggingConfig(**logging),
        history=HistoryConfig(**history),
        custom_metrics=queries,
    )


def read_yaml(path: Path) -> Any:
    """The document in a YAML file, or ConfigError saying why it cannot be read. query-exporter's
    tags (!env, !file, !include) are understood, so its files load unchanged."""
    from exporter.custom_metrics import load_tagged_yaml

    try:
        return load_tagged_yaml(path)
    except OSError as error:
        raise ConfigError([f"{path}: cannot read: {error.strerror}"]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        reason = getattr(error, "problem", None) or str(error)
        raise ConfigError([f"{path}: not valid YAML at {where}: {reason}"]) from None


def load_config(path: str | Path, *, collector_options: Mapping[str, Mapping[str, Option]],
                web_config_file: Path | None = None, database_url: str | None = None) -> Config:
    """The config file, validated; `database_url` (from the environment) replaces database.url,
    which the file may then leave out (a query-exporter file keeps the dsn it names)."""
    from exporter.custom_metrics import is_query_exporter

    path = Path(path)
    raw = read_yaml(path)
    if database_url is not None and isinstance(raw, dict) and not is_query_exporter(raw):
        database = raw.get("database") or {}
        if isinstance(database, dict):  # anything else is reported as it is
            raw["database"] = {**database, "url": database_url}
    return parse_config(raw, collector_options=collector_options,
                        base_dir=path.parent, web_config_file=web_config_file)
