"""The daemon under load, over real sockets: hundreds of concurrent scrapes and API calls get
whole answers while the collectors keep running, and hundreds of idle or slow-sending sockets
neither stop a scrape nor cost a thread each; the server also survives descriptors above 1023 and
a low open files limit. Bounded versions of bench/load.py, which reports the latencies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.http import App, Context
from exporter.server import MAX_CONNECTIONS, SPARE_DESCRIPTORS, HttpServer
from exporter.snapshot import Bodies, SnapshotStore
from tests.conftest import ROOT
from tests.demo_daemon import demo_database, get, running_daemon, sample
from tests.load_client import MIX, hammer, held_sockets, scrape
from tests.servers import StartedDaemon

# Every collector's interval, and so its timeout (at most the interval): long enough that a run
# slowed by 200 clients on two cores still ends within it.
INTERVAL = 4.0


@pytest.fixture(scope="module")
def daemon(tmp_path_factory) -> Iterator[StartedDaemon]:
    """The daemon on a demo database of 200 users, every collector refreshing each INTERVAL,
    once each has succeeded (the users page of the mix orders by storage's used_bytes)."""
    directory = tmp_path_factory.mktemp("load")
    with running_daemon(directory, demo_database(directory, 200), INTERVAL) as running:
        wait_until("every collector succeeded once", lambda: all(
            status["last_success"] is not None for status in collectors(running).values()
            if status["state"] != "not_applicable"))
        yield running


def collectors(daemon: StartedDaemon) -> dict[str, dict]:
    return json.loads(get(daemon.url + "/api/v1/snapshot"))["collectors"]


def wait_until(condition: str, check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, condition
        time.sleep(0.1)


def descriptors_settled(pid: int) -> bool:
    before = sample(pid).open_fds
    time.sleep(0.5)
    return sample(pid).open_fds == before


def open_files_limit(pid: int) -> int:
    line = next(line for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
                if line.startswith("Max open files"))
    return int(line.split()[3])


def test_200_concurrent_clients_get_whole_answers_while_every_collector_keeps_running(daemon):
    before = collectors(daemon)
    started = time.time()
    load = hammer(daemon.url, connections=200, seconds=3 * INTERVAL)
    after = collectors(daemon)
    assert load.errors == []
    assert len(load.latencies) == len(MIX)  # every route of the mix was answered
    assert load.requests > 200
    for name, status in after.items():
        if status["state"] == "not_applicable":
            continue
        # A run each interval: at least two in three intervals, all of them successful.
        assert status["runs"] - before[name]["runs"] >= 2, name
        assert status["failures"] == before[name]["failures"], status["last_error"]
        assert status["last_success"] >= started, name


def test_500_idle_and_slow_sockets_neither_stop_a_scrape_nor_take_a_thread_each(daemon):
    pid = daemon.process.pid
    scrape(daemon.url)
    # Connections of an earlier test may still be closing: the count must stop changing first.
    wait_until("the daemon's descriptors settled", lambda: descriptors_settled(pid))
    idle = sample(pid)
    with held_sockets(daemon.url, idle=250, slow=250):
        wait_until("the daemon accepted the 500 sockets",
                   lambda: sample(pid).open_fds >= idle.open_fds + 500)
        scrape(daemon.url)  # raises unless whole
        held = sample(pid)
    # The server holds a socket in its event loop, not a thread; the scheduler's pool may still
    # grow up to its 10 workers.
    assert held.threads < idle.threads + 10
    # Room for every connection the server accepts, beside the database and the history store.
    assert open_files_limit(pid) >= held.open_fds - 500 + MAX_CONNECTIONS
    wait_until("the daemon closed the 500 sockets",
               lambda: sample(pid).open_fds <= idle.open_fds + 5)


def test_the_server_keeps_serving_with_descriptors_above_1023():
    """select() cannot watch them; the event loop's epoll can."""
    store = SnapshotStore("custom", [], lambda snapshot: Bodies(text=b"up 1\n"))
    spare = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    server = HttpServer(App(Context(lambda: store.current, ())), "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        assert get(url + "/metrics") == b"up 1\n"
        assert get(url + "/metrics") == b"up 1\n"  # the loop is still running
    finally:
        server.stop()
        for descriptor in spare:
            os.close(descriptor)


@pytest.mark.parametrize(("soft", "hard", "limit", "connections"), [
    (256, 8192, MAX_CONNECTIONS + SPARE_DESCRIPTORS, MAX_CONNECTIONS),
    (256, 612, 612, 612 - SPARE_DESCRIPTORS),
    (4096, 4096, 4096, MAX_CONNECTIONS),
])
def test_the_open_files_limit_is_raised_or_the_connection_limit_lowered_to_fit(
        soft, hard, limit, connections):
    probe = ("import resource\n"
             f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))\n"
             "from exporter.server import connection_limit\n"
             "print(connection_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=True)
    assert result.stdout.split() == [str(connections), str(limit)]
