"""The daemon: the HTTP server, the schedule of refreshes, and the signals that reload or stop it.

SIGHUP reloads the config file. The new config is validated and checked against the database (the
start-up check) before anything changes; then the schedule stops, refreshes in progress finishing
first, and the new runner, schedule, routes and API keys take over together by one swap of the
application the HTTP server calls. The server keeps listening throughout, on the address it started
with: a changed `server` section is logged and takes effect at the next start. A config that fails
any check is logged in one line naming the file, and the running one stays.

SIGTERM and SIGINT cancel the queries in progress and stop the daemon with exit code 0.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType

import structlog

from exporter import __version__, api, log
from exporter.api.audit import AuditLog
from exporter.config import Config, ConfigError
from exporter.db import describe_error
from exporter.http import App, Context, Environ, FailedAttempts, Response, StartResponse
from exporter.runner import Runner, StartupError
from exporter.runtime import RuntimeMetrics
from exporter.scheduler import Scheduler
from exporter.server import HttpServer, address_text, local_url

logger = structlog.get_logger()


@dataclass(frozen=True)
class ConfigFile:
    """Where the config came from, so SIGHUP can read it again."""

    path: str
    load: Callable[[str], Config]

    def read(self) -> Config:
        return self.load(self.path)


class Switch:
    """The WSGI application the server calls: it hands each request to the current App, so one
    assignment replaces every route and key at once."""

    def __init__(self, app: App) -> None:
        self.app = app

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return self.app(environ, start_response)

    def scrape(self, path: str, accept: str, accept_encoding: str) -> Response | None:
        return self.app.scrape(path, accept, accept_encoding)


def checked_runner(config: Config, clock: Callable[[], float],
                   runtime: RuntimeMetrics | None = None) -> Runner:
    """A runner whose database passed the start-up check; StartupError if it did not."""
    runner = Runner(config, clock, runtime=runtime)
    try:
        runner.preflight()
    except StartupError:
        runner.close()
        raise
    return runner


def application(runner: Runner, attempts: FailedAttempts) -> App:
    """The routes over `runner`'s snapshot, database and history store, with its config's keys.
    `attempts` outlives reloads, so a reload does not reset the limit on wrong keys."""
    config = runner.config
    # The audit log is in the history store whether or not dau keeps days there; its times are
    # real ones, also under --as-of.
    context = Context(lambda: runner.snapshot, config.api_keys,
                      runner.history if "dau" in runner.applicable() else None, runner.clock,
                      read=runner.read,
                      audit=AuditLog(runner.history),
                      attempts=attempts, profile=runner.profile,
                      bodies=lambda: runner.store.served)
    today_zone = config.collector("dau").options["timezones"][0]
    return App(context, api.routes(context, today_zone, config.database.metrics_app_version))


def warn_of_per_user_metrics(config: Config) -> None:
    """Per-user series put user ids on /metrics, which answers anyone who can reach it unless
    the web config asks for basic auth: say so at every start and reload."""
    if config.per_user_metrics.enabled:
        protected = config.server.web is not None and bool(config.server.web.users)
        logger.warning("per_user_metrics_expose_user_ids", route="/metrics",
                       basic_auth=protected,
                       advice="keep /metrics behind basic_auth_users in server.web_config_file"
                       if not protected else "/metrics requires basic auth")


def serve(config: Config, clock: Callable[[], float] = time.time,
          on_listening: Callable[[str], None] | None = None,
          config_file: ConfigFile | None = None) -> int:
    """Check the database, start the schedule and the HTTP server, and run until SIGTERM. With a
    `config_file`, SIGHUP reloads it."""
    runtime = RuntimeMetrics()
    try:
        runner = checked_runner(config, clock, runtime)
    except StartupError as error:
        logger.error("startup_failed", error=str(error))
        return 1
    warn_of_per_user_metrics(config)
    attempts = FailedAttempts()
    switch = Switch(application(runner, attempts))
    try:
        server = HttpServer(switch, config.server.host, config.server.port, config.server.threads,
                            config.server.web)
    except OSError as error:
        logger.error("startup_failed", error="cannot listen on "
                     f"{address_text(config.server.host, config.server.port)}: {error.strerror}")
        runner.close()
        return 1
    daemon = Daemon(runner, switch, attempts, clock, runtime)
    return daemon.run(server, local_url(server.scheme, config.server.host, server.port),
                      on_listening, config_file)


class Daemon:
    def __init__(self, runner: Runner, switch: Switch, attempts: FailedAttempts,
                 clock: Callable[[], float], runtime: RuntimeMetrics) -> None:
        self.runner = runner
        self.runtime = runtime
        self.scheduler = Scheduler(runner)
        self.switch = switch
        self.attempts = attempts
        self.clock = clock
        self._lock = threading.Lock()  # guards the swap against a stop
        self._stopping = False
        self._reload_requested = threading.Event()

    def run(self, server: HttpServer, url: str, on_listening: Callable[[str], None] | None,
            config_file: ConfigFile | None) -> int:
        """Serve until SIGTERM or SIGINT; with a `config_file`, reload it on SIGHUP."""
        def stop(_signum: int, _frame: FrameType | None) -> None:
            server.shutdown()  # its loop runs in this thread: raising here would cut it short

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        if config_file is not None:
            # The handler only asks: a reload connects to the database, which may take a while,
            # and the HTTP server runs in this (the main) thread.
            signal.signal(signal.SIGHUP, lambda _signum, _frame: self._reload_requested.set())
            threading.Thread(target=self._reload_when_asked, args=(config_file,), name="reload",
                             daemon=True).start()
        try:
            self.scheduler.start()
            logger.info("listening", url=url, platform=self.runner.profile.name,
                        collectors=self.runner.applicable(), version=__version__)
            if on_listening is not None:
                on_listening(url)
            server.serve_forever()
        finally:
            self.stop()
            logger.info("stopped")
        return 0

    def stop(self) -> None:
        """Cancel the queries in progress and wait for their threads to end."""
        with self._lock:
            self._stopping = True
            runner, scheduler = self.runner, self.scheduler
        self._reload_requested.set()
        runner.close()
        scheduler.stop()

    def _reload_when_asked(self, config_file: ConfigFile) -> None:
        while True:
            self._reload_requested.wait()
            self._reload_requested.clear()
            if self._stopping:
                return
            try:
                self.reload(config_file)
            except Exception as error:  # keep the running config, and keep listening for SIGHUP
                _reload_failed(config_file, describe_error(error))

    def reload(self, config_file: ConfigFile) -> None:
        """Read and check the config file again, and switch to it if it passes every check."""
        logger.info("reloading", config=config_file.path)
        try:
            config = config_file.read()
            runner = checked_runner(config, self.clock, self.runtime)
        except ConfigError as error:
            return _reload_failed(config_file, "; ".join(error.problems))
        except StartupError as error:
            return _reload_failed(config_file, str(error))
        warn_of_per_user_metrics(config)
        app = application(runner, self.attempts)
        previous = self.runner
        self.scheduler.stop()
        with self._lock:
            if self._stopping:
                runner.close()
                return
            if config.database == previous.config.database:
                runner.store.carry_over(previous.snapshot)
            self.switch.app = app
            self.runner, self.scheduler = runner, Scheduler(runner)
            self.scheduler.start()
        previous.close()
        if config.logging != previous.config.logging:
            log.configure(config.logging.level, config.logging.format)
        if config.server != previous.config.server:
            logger.warning("restart_needed", config=config_file.path,
                           reason="the server section (listen, threads, web config) takes "
                           "effect at the next start; still serving as before")
        logger.info("config_reloaded", config=config_file.path, collectors=runner.applicable())


def _reload_failed(config_file: ConfigFile, error: str) -> None:
    logger.error("reload_failed", config=config_file.path, error=error, kept="the running config")
