"""Command line: run, demo, check-config, collect, show-sql, healthcheck.

Flags override the config file, as Prometheus exporters' do: --web.listen-address,
--web.config.file, --log.level, --log.format, --collector.NAME / --no-collector.NAME. The database
URL may come from the environment instead of the file: USAGE_EXPORTER_DATABASE_URL, or
USAGE_EXPORTER_DATABASE_URL_FILE naming a file that holds it (giving both is an error); either
replaces database.url, which the file may then leave out.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import shutil
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Connection, Subquery, func, select

from collectors import available
from exporter import log
from exporter.build import version_text
from exporter.config import (
    Config,
    ConfigError,
    database_url,
    listen_address,
    load_config,
    parse_config,
)
from exporter.daemon import ConfigFile, serve
from exporter.db import describe_error
from exporter.demo_data import DEMO_USERS
from exporter.demo_progress import build_with_progress
from exporter.exposition import metric_rows, snapshot_json
from exporter.platforms import profile_for
from exporter.runner import Runner, StartupError, inapplicable
from exporter.server import address_text, local_url
from exporter.showsql import collector_sql, render

DEFAULT_CONFIG = os.environ.get("USAGE_EXPORTER_CONFIG", "config.yaml")
DATABASE_URL_ENV = "USAGE_EXPORTER_DATABASE_URL"
DATABASE_URL_FILE_ENV = "USAGE_EXPORTER_DATABASE_URL_FILE"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")


def collector_options() -> dict:
    return {name: cls.options for name, cls in available().items()}


def environment_database_url(environ: Mapping[str, str] = os.environ) -> str | None:
    """The database URL from USAGE_EXPORTER_DATABASE_URL, or from the file that
    USAGE_EXPORTER_DATABASE_URL_FILE names; None when neither is set."""
    inline, path = environ.get(DATABASE_URL_ENV), environ.get(DATABASE_URL_FILE_ENV)
    if inline and path:
        raise ConfigError([f"{DATABASE_URL_ENV} and {DATABASE_URL_FILE_ENV} are both set; "
                           "give one"])
    source = DATABASE_URL_ENV
    if path:
        source = f"{DATABASE_URL_FILE_ENV} ({path})"
        try:
            inline = Path(path).read_text().strip()
        except OSError as error:
            raise ConfigError([f"{source}: cannot read: {error.strerror}"]) from None
    if not inline:
        return None
    try:
        return database_url(inline)
    except ValueError as error:
        raise ConfigError([f"{source}: {error}"]) from None


def apply_flags(config: Config, args: argparse.Namespace) -> Config:
    """`config` with what the command line's flags set in place of the file's values."""
    server, logging = config.server, config.logging
    if args.listen_address is not None:
        host, port = args.listen_address
        server = replace(server, host=host, port=port)
    logging = replace(logging, level=args.log_level or logging.level,
                      format=args.log_format or logging.format)
    collectors = tuple(
        c if getattr(args, f"collector_{c.name}") is None
        else replace(c, enabled=getattr(args, f"collector_{c.name}"))
        for c in config.collectors)
    return replace(config, server=server, logging=logging, collectors=collectors)


def read_config(path: str, args: argparse.Namespace) -> Config:
    """The config file with the environment's database URL and the command line's flags."""
    config = load_config(path, collector_options=collector_options(),
                         web_config_file=None if args.web_config_file is None
                         else Path(args.web_config_file),
                         database_url=environment_database_url())
    return apply_flags(config, args)


def fixed_clock(as_of: float | None) -> Callable[[], float]:
    return time.time if as_of is None else (lambda: as_of)


def cmd_run(args: argparse.Namespace) -> int:
    config = read_config(args.config, args)
    log.configure(config.logging.level, config.logging.format)
    load = ConfigFile(args.config, lambda path: read_config(path, args))
    return serve(config, fixed_clock(args.as_of), config_file=load)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate the config and, unless --offline, run the start-up check on the database and say
    what is there. Each problem is one line naming the config file."""
    config = read_config(args.config, args)
    profile = profile_for(config.database)
    classes = available()
    enabled = {c.name: classes[c.name] for c in config.enabled_collectors}
    applicable = [n for n in enabled if n not in inapplicable(profile, enabled)]
    lines = [f"platform: {profile.name}", f"collectors: {', '.join(applicable) or 'none'}",
             f"listen: {address_text(config.server.host, config.server.port)}",
             f"logging: {config.logging.level}, {config.logging.format}",
             f"API keys: {len(config.api_keys)}"]
    if config.custom_metrics:
        lines.insert(2, "custom queries: " + ", ".join(q.collector for q in config.custom_metrics))
    if config.server.web:
        lines.append(f"web config: {config.server.web.summary()}")
    if not args.offline:
        try:
            version, users = survey(config)
        except StartupError as error:
            print(f"{args.config}: {error}", file=sys.stderr)
            return 1
        lines[0] += f" {version}" if version else " (version not recorded)"
        if users is not None:
            lines.insert(1, f"users: {users}")
    checked = "config valid (database not checked: --offline)" if args.offline else \
        "config valid, database reachable, every relation readable"
    print(f"{args.config}: OK: {checked}")
    for line in lines:
        print(f"  {line}")
    if not config.api_keys:
        print(f"{args.config}: warning: no API key in api.keys: every API route and the admin "
              "page will refuse", file=sys.stderr)
    return 0


def survey(config: Config) -> tuple[str, int | None]:
    """Run the start-up check of `run` on the database, then read the platform version and the
    number of accounts (None if the platform has no users relation). StartupError if it fails."""
    runner = Runner(config, keep_history=False)
    try:
        runner.preflight()
        has_users = "users" in runner.profile.provides()

        def read(conn: Connection, relations: Mapping[str, Subquery]) -> tuple[str, int | None]:
            users = (conn.execute(select(func.count()).select_from(relations["users"]))
                     .scalar_one() if has_users else None)
            return runner.profile.version(conn), users

        try:
            return runner.read(["users"] if has_users else [], read,
                               config.database.connect_timeout * 3)
        except Exception as error:
            raise StartupError(f"reading the {runner.profile.name} database: "
                               f"{describe_error(error)}") from None
    finally:
        runner.close()


def cmd_healthcheck(args: argparse.Namespace) -> int:
    """Whether the daemon the config describes serves: GET /-/healthy (with --ready, /-/ready)
    on the address it listens on, through loopback for an address of every interface. For a
    container's HEALTHCHECK: it follows server.listen, and reports liveness, not whether every
    collector (a custom query, say) succeeds."""
    config = read_config(args.config, args)
    tls = config.server.web is not None and config.server.web.tls is not None
    url = local_url("https" if tls else "http", config.server.host, config.server.port)
    url += "/-/ready" if args.ready else "/-/healthy"
    # Our own process on this host, never through a proxy; its certificate need not name the
    # loopback address.
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=args.timeout) as answer:
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (OSError, ValueError) as error:
        print(f"{url}: {getattr(error, 'reason', error)}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"{url}: HTTP {status}", file=sys.stderr)
        return 1
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    if args.users and args.format != "json":
        print("usage-exporter collect: --users needs --format json (per-user rows do not fit "
              f"{args.format}; the API's /api/v1/users.csv has them as CSV)", file=sys.stderr)
        return 2
    config = read_config(args.config, args)
    log.configure(config.logging.level, config.logging.format)
    # One refresh to look at: nothing is added to the history store.
    runner = Runner(config, fixed_clock(args.as_of), keep_history=False)
    try:
        runner.preflight()
        snapshot = runner.run_all()
    except StartupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        runner.close()
    if args.format == "prometheus":
        sys.stdout.write(snapshot.bodies.text.decode())
    elif args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\r\n")
        writer.writerow(["metric", "label", "value"])
        writer.writerows(metric_rows(snapshot))
    else:
        json.dump(snapshot_json(snapshot, users=args.users), sys.stdout, indent=2, default=str)
        print()
    return 1 if any(s.state == "failed" for s in snapshot.collectors.values()) else 0


def cmd_show_sql(args: argparse.Namespace) -> int:
    config = read_config(args.config, args)
    log.configure(config.logging.level, config.logging.format)
    runner = Runner(config, fixed_clock(args.as_of), keep_history=False)
    try:
        runner.preflight()
        entries = list(collector_sql(runner))
    except StartupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        runner.close()
    if args.metric:
        entries = [e for e in entries if any(produces(name, args.metric) for name in e.metrics)]
        if not entries:
            print(f"error: no collector of this config produces {args.metric} (the exporter's "
                  "own usage_collector_* and usage_exporter_* metrics come from no SQL)",
                  file=sys.stderr)
            return 1
    sys.stdout.write("\n".join(render(entry) for entry in entries))
    return 1 if any(entry.error for entry in entries) else 0


def produces(metric: str, asked: str) -> bool:
    """Whether metric family `metric` is the one asked for, by its name or a sample's name."""
    return asked in (metric, *(metric + suffix for suffix in ("_bucket", "_count", "_sum")))


def cmd_demo(args: argparse.Namespace) -> int:
    """Build the demo database (with a progress bar on a terminal) and serve it. A temporary
    directory it made is removed when it ends, however it ends."""
    log.configure("info", "console" if sys.stderr.isatty() else "json")
    temporary = args.directory is None
    directory = Path(args.directory or tempfile.mkdtemp(prefix="usage-exporter-demo-"))
    try:
        return demo(args, directory)
    finally:
        if temporary:
            shutil.rmtree(directory, ignore_errors=True)


def demo(args: argparse.Namespace, directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    database = directory / "nextcloud.db"
    if not database.exists():
        build_with_progress(database, now=time.time(), users=args.users)
    key = secrets.token_urlsafe(24)
    host, port = args.listen
    config = parse_config({
        "database": {"url": f"sqlite:///{database}", "platform": "nextcloud",
                     "data_directory": str(directory)},
        "server": {"listen": f"{host}:{port}"},
        "api": {"keys": [{"name": "demo", "secret": key}]},
        "history": {"url": f"sqlite:///{directory / 'history.db'}"},
        "collectors": {name: {"interval": "15s", "timeout": "10s", "jitter": "1s"}
                       for name in available()},
    }, collector_options=collector_options())

    def explain(url: str) -> None:
        kept = "" if args.directory else " (removed when the demo stops)"
        print(f"""
usage-exporter demo: a Nextcloud database with {args.users} synthetic users at {database}{kept}

  curl {url}/metrics
  curl -H 'Authorization: Bearer {key}' '{url}/api/v1/snapshot?users=true'

Admin page: {url}/ (it asks for the key above)

Prometheus scrape config:
  scrape_configs:
    - job_name: usage-exporter
      static_configs: [{{targets: ['{url.removeprefix("http://")}']}}]

Stop with Ctrl-C.
""", flush=True)

    return serve(config, on_listening=explain)


def address(value: str) -> tuple[str, int]:
    try:
        return listen_address(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return number


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="usage-exporter", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    main.add_argument("--version", action="version", version=version_text())
    commands = main.add_subparsers(dest="command", required=True)

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--config.file", "--config", dest="config", default=DEFAULT_CONFIG,
                             metavar="FILE", help=f"YAML config file (default: {DEFAULT_CONFIG})")
        command.add_argument("--web.listen-address", dest="listen_address", type=address,
                             metavar="[HOST]:PORT", help="replaces server.listen; ':10191' is "
                             "every interface, port 0 a free port")
        command.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                             help="exporter-toolkit web config (TLS, basic auth, headers); "
                             "replaces server.web_config_file")
        command.add_argument("--log.level", dest="log_level", choices=LOG_LEVELS,
                             help="replaces logging.level")
        command.add_argument("--log.format", dest="log_format", choices=LOG_FORMATS,
                             help="replaces logging.format")
        for collector in available():
            command.add_argument(f"--collector.{collector}", dest=f"collector_{collector}",
                                 action=argparse.BooleanOptionalAction,
                                 help=f"enable or disable the {collector} collector (replaces "
                                 f"collectors.{collector}.enabled)")
        return command

    def as_of(command: argparse.ArgumentParser) -> None:
        command.add_argument("--as-of", type=float, metavar="UNIX_SECONDS",
                             help="measure time windows from this instant instead of now")

    run = with_config("run", "run the daemon")
    as_of(run)
    run.set_defaults(func=cmd_run)
    check = with_config("check-config", "validate the config, then connect and run the start-up "
                        "check; print every problem")
    check.add_argument("--offline", action="store_true",
                       help="validate the config only, without connecting to the database")
    check.set_defaults(func=cmd_check_config)
    collect = with_config("collect", "refresh once, print the result, exit")
    collect.add_argument("--format", choices=("json", "csv", "prometheus"), default="json")
    collect.add_argument("--users", action="store_true",
                         help="include per-user rows (json only)")
    as_of(collect)
    collect.set_defaults(func=cmd_collect)
    show_sql = with_config("show-sql", "print the SQL each collector sends, for this database")
    show_sql.add_argument("metric", nargs="?", help="only the collector producing this metric")
    as_of(show_sql)
    show_sql.set_defaults(func=cmd_show_sql)
    health = with_config("healthcheck", "exit 0 if the daemon this config describes answers "
                         "/-/healthy (for a container's HEALTHCHECK), else 1")
    health.add_argument("--ready", action="store_true",
                        help="ask /-/ready instead: every collector has run once")
    health.add_argument("--timeout", type=float, default=4.0, metavar="SECONDS",
                        help="how long to wait for the answer (default 4)")
    health.set_defaults(func=cmd_healthcheck)
    demo_command = commands.add_parser("demo", help="build a demo Nextcloud database and serve it")
    demo_command.add_argument("--listen", type=address, default=("127.0.0.1", 10191),
                              metavar="[HOST]:PORT",
                              help="where to serve (default 127.0.0.1:10191)")
    demo_command.add_argument("--users", type=positive, default=DEMO_USERS, metavar="N",
                              help=f"synthetic user accounts to create (default {DEMO_USERS}; "
                              "100000 take a few minutes)")
    demo_command.add_argument("--directory", help="where to keep the demo database (default: a "
                              "temporary directory, removed when the demo stops)")
    demo_command.set_defaults(func=cmd_demo)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, so that a reader that left is seen below
        return code
    except ConfigError as error:
        print(f"{getattr(args, 'config', 'config')}: invalid configuration:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader stopped reading (`| head`): nothing more to print, and nowhere to say so.
        # Python would complain again when it flushes stdout at exit; point it at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as for a process killed by SIGPIPE
    except KeyboardInterrupt:
        return 130
