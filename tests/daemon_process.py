"""The real daemon as a subprocess, for fault and signal tests: its config file, its JSON log, and
its HTTP answers."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from collectors import available
from tests.conftest import API_KEY
from tests.servers import free_port, start_daemon, wait_daemon_ready

# Self-metrics and labels that change with every run, and the process's own: everything else on
# /metrics is a value computed from the database.
SELF_METRICS = ("usage_collector_", "usage_database_up", "usage_exporter_build_info",
                "usage_platform_info", "process_", "python_")


def samples(body: bytes) -> dict[str, float]:
    """Every sample of a /metrics body in the text format: 'name{labels}' -> value."""
    found = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def wait_until(predicate: Callable[[], Any], seconds: float = 30, what: str = "") -> Any:
    """Poll until `predicate` returns something true, and return it; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        found = predicate()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out after {seconds:g}s waiting for {what}"
        time.sleep(0.05)


def config_yaml(database: dict[str, Any], directory: Path, **sections: Any) -> dict[str, Any]:
    """A whole config on a free port: the database section given, JSON logs, the history store
    in `directory`."""
    port = free_port()
    return {
        "database": {"connect_timeout": "2s", **database},
        "server": {"listen": f"127.0.0.1:{port}"},
        "api": {"keys": [{"name": "tests", "secret": API_KEY}]},
        "history": {"url": f"sqlite:///{directory / 'history.db'}"},
        "logging": {"format": "json"},
        **sections,
    }


def collectors(interval: str = "1s", timeout: str = "1s", only: tuple[str, ...] | None = None,
               **overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every collector on a short interval (or only those named), with per-collector overrides."""
    settings: dict[str, dict[str, Any]] = {}
    for name in available():
        enabled = only is None or name in only
        settings[name] = ({"interval": interval, "timeout": timeout, "jitter": "0.05s"}
                          if enabled else {"enabled": False})
        settings[name].update(overrides.get(name, {}))
    return settings


class DaemonProcess:
    """`usage-exporter run` on a config file; its log (JSON lines) goes to a file so that the
    test can read it while it runs, across restarts."""

    def __init__(self, directory: Path, config: dict[str, Any],
                 as_of: float | None = None) -> None:
        self.directory = directory
        self.config_path = directory / "config.yaml"
        self.log_path = directory / "daemon.log"
        self.as_of = as_of
        # Where it listens: a reloaded config does not move it.
        self.url = "http://" + config["server"]["listen"]
        self.write_config(config)
        self.process: subprocess.Popen[bytes] | None = None

    def write_config(self, config: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(config))

    def start(self, ready: bool = True) -> DaemonProcess:
        self.process = start_daemon(self.config_path, self.log_path, self.as_of)
        if ready:
            try:
                wait_daemon_ready(self.url, self.process, self.log_path)
            except BaseException:
                self.kill()
                raise
        return self

    def __enter__(self) -> DaemonProcess:
        """`with daemon.start():` or `with daemon:`; either way it is stopped at the end."""
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.running():
            self.stop()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def send(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, seconds: float = 15) -> int:
        """SIGTERM, and the exit code once it has ended (within `seconds`, or fail)."""
        assert self.process is not None
        self.send(signal.SIGTERM)
        try:
            return self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the daemon did not stop within {seconds:g}s of SIGTERM") \
                from None

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    # --- the log ---

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, event: str | None = None, **fields: Any) -> list[dict[str, Any]]:
        """Log lines (parsed JSON), optionally those of one event with the given fields."""
        lines = [json.loads(line) for line in self.log_text().splitlines()
                 if line.startswith("{")]
        return [line for line in lines if (event is None or line["event"] == event)
                and all(line.get(k) == v for k, v in fields.items())]

    def wait_for_event(self, event: str, seconds: float = 30, count: int = 1,
                       **fields: Any) -> dict[str, Any]:
        """The `count`-th line of `event` with `fields`, once it is logged."""
        wait_until(lambda: len(self.events(event, **fields)) >= count, seconds,
                   f"log event {event} {fields or ''} x{count}")
        return self.events(event, **fields)[count - 1]

    # --- HTTP ---

    def get(self, path: str, key: str | None = None) -> tuple[int, bytes]:
        """Status and body; 0 when nothing answers."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        request = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError:
            return 0, b""

    def api(self, path: str, key: str = API_KEY) -> Any:
        status, body = self.get(path, key)
        assert status == 200, (status, body)
        return json.loads(body)

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics: 'name{labels}' -> value."""
        status, body = self.get("/metrics")
        assert status == 200, status
        return samples(body)

    def values(self) -> dict[str, float]:
        """The samples computed from the database, self-metrics left out."""
        return {name: value for name, value in self.metrics().items()
                if not name.startswith(SELF_METRICS)}

    def collector_metric(self, metric: str, collector: str) -> float:
        return self.metrics()[f'usage_collector_{metric}{{collector="{collector}"}}']

    def all_succeeded(self, names: tuple[str, ...]) -> bool:
        samples = self.metrics()
        return all(samples.get(f'usage_collector_success{{collector="{name}"}}') == 1.0
                   for name in names)
