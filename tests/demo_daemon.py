"""The real daemon on a demo Nextcloud database, for load and security tests and the bench
scripts: the database, a config with short intervals, the process started and stopped by PID,
and what /proc says about it."""

from __future__ import annotations

import os
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from exporter.demo_data import build_demo_database
from tests.servers import StartedDaemon, free_port, ready_daemon

API_KEY = "bench-key-0123456789abcdef"
COLLECTORS = ("users", "sessions", "shares", "storage", "dau", "apps")


def demo_database(directory: Path, users: int) -> Path:
    """A demo Nextcloud database of `users` accounts in `directory` (built once)."""
    directory.mkdir(parents=True, exist_ok=True)
    database = directory / "nextcloud.db"
    if not database.exists():
        build_demo_database(database, now=time.time(), users=users)
    return database


def write_config(directory: Path, database: Path, interval: float, port: int) -> Path:
    """A config for a Nextcloud SQLite database refreshing every collector each `interval`
    seconds (timeout = interval, the most the config allows)."""
    collectors = "".join(f"  {name}: {{interval: {interval}s, timeout: {interval}s, "
                         f"jitter: {interval / 10:g}s}}\n" for name in COLLECTORS)
    config = directory / "config.yaml"
    config.write_text(f"""database:
  url: sqlite:///{database}
  platform: nextcloud
server:
  listen: 127.0.0.1:{port}
api:
  keys: [{{name: bench, secret: {API_KEY}}}]
history:
  url: sqlite:///{directory / "history.db"}
logging:
  format: json
collectors:
{collectors}""")
    return config


@dataclass(frozen=True)
class ProcessSample:
    rss_kib: int
    threads: int
    open_fds: int


def sample(pid: int) -> ProcessSample:
    fields = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines())
    return ProcessSample(int(fields["VmRSS"].split()[0]), int(fields["Threads"]),
                         len(os.listdir(f"/proc/{pid}/fd")))


def get(url: str, timeout: float = 30) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {API_KEY}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def collector_runs(base: str) -> dict[str, tuple[float, float]]:
    """Per collector: runs so far and the last success timestamp, from /metrics."""
    runs: dict[str, float] = {}
    last: dict[str, float] = {}
    for family in text_string_to_metric_families(get(base + "/metrics").decode()):
        for s in family.samples:
            if s.name == "usage_collector_runs_total":
                runs[s.labels["collector"]] = s.value
            elif s.name == "usage_collector_last_success_timestamp_seconds":
                last[s.labels["collector"]] = s.value
    return {name: (runs[name], last.get(name, 0.0)) for name in runs}


@contextmanager
def running_daemon(directory: Path, database: Path, interval: float) -> Iterator[StartedDaemon]:
    """`usage-exporter run` on a Nextcloud SQLite database, its history store and its log
    (daemon.log) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = write_config(directory, database, interval, port)
    log_path = directory / "daemon.log"
    log_path.unlink(missing_ok=True)  # this run's log only
    url = f"http://127.0.0.1:{port}"
    with ready_daemon(config, log_path, url, error=RuntimeError) as process:
        yield StartedDaemon(url, process, log_path)
