"""Command line: run, demo, check-config, collect, show-sql."""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from collectors import available
from exporter import __version__, log
from exporter.config import Config, ConfigError, listen_address, load_config, parse_config
from exporter.daemon import ConfigFile, serve
from exporter.demo_data import DEMO_USERS, build_demo_database
from exporter.exposition import metric_rows, snapshot_json
from exporter.runner import Runner, StartupError
from exporter.showsql import collector_sql, render

DEFAULT_CONFIG = os.environ.get("USAGE_EXPORTER_CONFIG", "config.yaml")


def collector_options() -> dict:
    return {name: cls.options for name, cls in available().items()}


def read_config(path: str, web_config_file: str | None = None) -> Config:
    """The config file; `web_config_file` (--web.config.file) replaces server.web_config_file."""
    return load_config(path, collector_options=collector_options(),
                       web_config_file=None if web_config_file is None else Path(web_config_file))


def fixed_clock(as_of: float | None) -> Callable[[], float]:
    return time.time if as_of is None else (lambda: as_of)


def cmd_run(args: argparse.Namespace) -> int:
    load = partial(read_config, web_config_file=args.web_config_file)
    config = load(args.config)
    log.configure(config.logging.level, config.logging.format)
    return serve(config, fixed_clock(args.as_of), config_file=ConfigFile(args.config, load))


def cmd_check_config(args: argparse.Namespace) -> int:
    config = read_config(args.config, args.web_config_file)
    enabled = ", ".join(c.name for c in config.enabled_collectors)
    web = f"; web config: {config.server.web.summary()}" if config.server.web else ""
    print(f"{args.config}: OK ({config.database.platform}; collectors: {enabled}; "
          f"{len(config.api_keys)} API key(s){web})")
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    config = read_config(args.config)
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
        write_metrics_csv(snapshot_json(snapshot)["metrics"])
    else:
        json.dump(snapshot_json(snapshot, users=args.users), sys.stdout, indent=2, default=str)
        print()
    return 1 if any(s.state == "failed" for s in snapshot.collectors.values()) else 0


def cmd_show_sql(args: argparse.Namespace) -> int:
    config = read_config(args.config)
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


def write_metrics_csv(metrics: dict) -> None:
    """metric,label,value rows: one per sample (histograms as their buckets, count and sum)."""
    writer = csv.writer(sys.stdout, lineterminator="\r\n")
    writer.writerow(["metric", "label", "value"])
    writer.writerows(metric_rows(metrics))


def cmd_demo(args: argparse.Namespace) -> int:
    log.configure("info", "console" if sys.stderr.isatty() else "json")
    directory = Path(args.directory or tempfile.mkdtemp(prefix="usage-exporter-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    database = directory / "nextcloud.db"
    if not database.exists():
        build_demo_database(database, now=time.time(), users=args.users)
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
        print(f"""
usage-exporter demo: a Nextcloud database with {args.users} synthetic users at {database}

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


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="usage-exporter", description=__doc__)
    main.add_argument("--version", action="version", version=f"usage-exporter {__version__}")
    commands = main.add_subparsers(dest="command", required=True)

    def with_config(name: str, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--config", default=DEFAULT_CONFIG,
                             help=f"YAML config file (default: {DEFAULT_CONFIG})")
        return command

    def web_config(command: argparse.ArgumentParser) -> None:
        command.add_argument("--web.config.file", dest="web_config_file", metavar="FILE",
                             help="exporter-toolkit web config (TLS, basic auth, headers); "
                             "replaces server.web_config_file")

    def as_of(command: argparse.ArgumentParser) -> None:
        command.add_argument("--as-of", type=float, metavar="UNIX_SECONDS",
                             help="measure time windows from this instant instead of now")

    run = with_config("run", "run the daemon")
    as_of(run)
    web_config(run)
    run.set_defaults(func=cmd_run)
    check = with_config("check-config", "validate the config and print every problem")
    web_config(check)
    check.set_defaults(func=cmd_check_config)
    collect = with_config("collect", "refresh once, print the result, exit")
    collect.add_argument("--format", choices=("json", "csv", "prometheus"), default="json")
    collect.add_argument("--users", action="store_true", help="include per-user rows (json)")
    as_of(collect)
    collect.set_defaults(func=cmd_collect)
    show_sql = with_config("show-sql", "print the SQL each collector sends, for this database")
    show_sql.add_argument("metric", nargs="?", help="only the collector producing this metric")
    as_of(show_sql)
    show_sql.set_defaults(func=cmd_show_sql)
    demo = commands.add_parser("demo", help="build a demo Nextcloud database and serve it")
    demo.add_argument("--listen", type=listen_address, default=("127.0.0.1", 10191),
                      help="host:port to serve on (default 127.0.0.1:10191)")
    demo.add_argument("--users", type=int, default=DEMO_USERS)
    demo.add_argument("--directory", help="where to keep the demo database (default: a new "
                      "temporary directory)")
    demo.set_defaults(func=cmd_demo)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as error:
        print(f"{getattr(args, 'config', 'config')}: invalid configuration:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
