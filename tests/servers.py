"""Real PostgreSQL, MariaDB and Prometheus servers for the test suite.

Every server runs on 127.0.0.1, on a free random port, with its data in a fresh temporary
directory, and is stopped by PID (then its directory removed) when the fixture that started it
ends. An atexit hook and a parent-death signal catch what a crashed or killed session would
otherwise leave behind.

usage-exporter itself (start_daemon, ready_daemon) runs from the project root with its log in a
file the caller names; tests and bench scripts alike stop it by PID.

conftest.py exposes the fixtures by importing them (``__all__`` lists the public names).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import http.client
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import pytest

__all__ = [
    "QUERY_EXPORTER_NEWEST",
    "QUERY_EXPORTER_PYTHON",
    "MariaDBServer",
    "PostgresServer",
    "PrometheusFactory",
    "PrometheusServer",
    "Server",
    "ServerProcess",
    "find_mariadb",
    "find_postgres_bindir",
    "find_prometheus",
    "free_port",
    "mariadb_server",
    "postgres_server",
    "prometheus_server",
    "promtool_path",
    "query_exporter_bin",
    "query_exporter_process",
    "query_exporter_python",
    "query_exporter_version",
    "ready_daemon",
    "start_daemon",
    "start_exporter",
    "start_mariadb",
    "start_postgres",
    "start_prometheus",
    "started",
    "virtualenv",
    "wait_answering",
    "wait_daemon_ready",
    "wait_for_ready",
]

HOST = "127.0.0.1"
# Where `python -m exporter` finds the package without it being installed.
_PROJECT = Path(__file__).resolve().parent.parent
ADMIN_USER = "admin"
# initdb/postgres refuse to run as root, so as root they run as the package's OS user; as any
# other user they simply run as that user.
_IS_ROOT = os.geteuid() == 0
_PG_OS_USER = "postgres" if _IS_ROOT else None
# mariadbd refuses root unless told explicitly.
_MARIADB_AS_ROOT = ["--user=root"] if _IS_ROOT else []
# Database names go into URLs, role names and SQL identifiers; keeping them plain avoids quoting
# bugs and stays under PostgreSQL's 63-byte identifier limit once prefixed with "ro_".
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
_T = TypeVar("_T")


# --- availability ----------------------------------------------------------------------------


def _require(found: _T | None, package: str) -> _T:
    """Return ``found``, or skip (locally) / fail (in CI) naming the Debian package to install."""
    if found is not None:
        return found
    if os.environ.get("CI"):
        pytest.fail(
            f"{package} is not installed but CI is set; the CI image must provide the Debian "
            f"package {package!r} (apt-get install {package})",
            pytrace=False,
        )
    pytest.skip(f"install {package} (apt-get install {package}) or run .ci/run")


def _which(*names: str) -> str | None:
    # Daemons live in /usr/sbin, which a non-login root shell may not have on PATH.
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])
    for name in names:
        found = shutil.which(name, path=path)
        if found:
            return found
    return None


def find_postgres_bindir() -> Path | None:
    """Newest /usr/lib/postgresql/<ver>/bin that has initdb and postgres (and, as root, the
    postgres OS user the package creates), if any."""
    if _PG_OS_USER is not None and not _user_exists(_PG_OS_USER):
        return None

    def version(bindir: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", bindir.parent.name))

    candidates = [
        p.parent
        for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")
        if (p.parent / "initdb").exists()
    ]
    return max(candidates, key=version) if candidates else None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def find_mariadb() -> tuple[str, str] | None:
    """(server binary, install-db script), if both are installed."""
    server = _which("mariadbd", "mysqld")
    install_db = _which("mariadb-install-db", "mysql_install_db")
    return (server, install_db) if server and install_db else None


def find_prometheus() -> str | None:
    return _which("prometheus")


def promtool_path() -> str:
    """Path of promtool; skips or fails (CI) like the server fixtures when it is missing."""
    return _require(_which("promtool"), "prometheus")


# --- processes -------------------------------------------------------------------------------

_LIVE: dict[int, ServerProcess] = {}

try:
    _LIBC: ctypes.CDLL | None = (
        ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
    )
except OSError:
    _LIBC = None


def _die_with_parent() -> None:
    # Runs in the child between fork and exec (after the uid switch, which would reset it):
    # if pytest is SIGKILLed, atexit never runs, but the kernel still sends SIGTERM here.
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def terminate(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM a child we started, wait for it (draining its pipes), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


@dataclass
class ServerProcess:
    """One server process we started, its log file and the temp dir it owns."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    workdir: Path
    stop_signal: int = signal.SIGTERM
    # How it was started, so that start() can bring it back on the same data after halt().
    argv: Sequence[str] = ()
    user: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def halt(self, timeout: float = 20.0) -> None:
        """Signal the PID, wait, SIGKILL if it is still there; the temp dir stays."""
        try:
            if self.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, self.stop_signal)
                try:
                    self.popen.wait(timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, signal.SIGKILL)
                    self.popen.wait(10)
        finally:
            _LIVE.pop(self.pid, None)

    def start(self) -> None:
        """Start the process again after halt(), with the same arguments and data."""
        self.popen = _popen(self.argv, self.workdir, self.log_path, self.user)
        _LIVE[self.pid] = self

    def stop(self, timeout: float = 20.0) -> None:
        """halt(), then remove the temp dir."""
        try:
            self.halt(timeout)
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _stop_all() -> None:
    for proc in list(_LIVE.values()):
        with contextlib.suppress(Exception):
            proc.stop(timeout=5)


atexit.register(_stop_all)


def _os_user(user: str | None) -> dict[str, Any]:
    # Drop root's supplementary groups too, so files come out owned by user:user only.
    return {} if user is None else {"user": user, "group": user, "extra_groups": []}


def _run(argv: Sequence[str | Path], *, cwd: Path, user: str | None = None) -> None:
    """Run a one-shot setup command (initdb, install-db); raise with its output on failure."""
    result = subprocess.run(
        [str(a) for a in argv],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=120,
        check=False,
        **_os_user(user),
    )
    if result.returncode != 0:
        output = result.stdout.decode(errors="replace")[-4000:]
        raise RuntimeError(f"{argv[0]} failed with exit code {result.returncode}:\n{output}")


def _spawn(
    name: str,
    argv: Sequence[str | Path],
    workdir: Path,
    *,
    user: str | None = None,
    stop_signal: int = signal.SIGTERM,
) -> ServerProcess:
    log_path = workdir / f"{name}.log"
    command = [str(a) for a in argv]
    popen = _popen(command, workdir, log_path, user)
    proc = ServerProcess(name, popen, log_path, workdir, stop_signal, command, user)
    _LIVE[proc.pid] = proc
    return proc


def _popen(
    argv: Sequence[str], workdir: Path, log_path: Path, user: str | None
) -> subprocess.Popen[bytes]:
    # Appends: a restarted server keeps the log of its earlier runs.
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own session: a Ctrl-C in the terminal reaches pytest only, which then stops the
            # servers through the fixtures' finally blocks.
            start_new_session=True,
            preexec_fn=_die_with_parent,
            **_os_user(user),
        )


def _wait_until(
    proc: ServerProcess, probe: Callable[[], object], timeout: float, what: str
) -> None:
    """Poll ``probe`` until it returns without raising; bounded, with the log tail on failure."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        if not proc.running():
            raise RuntimeError(
                f"{proc.name} (pid {proc.pid}) exited with code {proc.popen.returncode} "
                f"before {what}; last lines of {proc.log_path}:\n{proc.log_tail()}"
            )
        try:
            probe()
            return
        except Exception as exc:
            last_error = exc
        time.sleep(0.1)
    raise TimeoutError(
        f"{proc.name} (pid {proc.pid}) did not {what} within {timeout:.0f}s "
        f"(last error: {last_error!r}); last lines of {proc.log_path}:\n{proc.log_tail()}"
    )


def _check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"database name must match {_NAME_RE.pattern}: {name!r}")
    return name


def _mkdtemp(kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"usage-exporter-{kind}-"))


class _Launched(Protocol):
    """What _ready_or_removed needs of a server it waits for."""

    def wait_ready(self, timeout: float) -> None: ...

    def stop(self) -> None: ...


_L = TypeVar("_L", bound=_Launched)


def _ready_or_removed(workdir: Path, timeout: float, launch: Callable[[], _L]) -> _L:
    """The server that ``launch`` sets up in ``workdir``, once it is ready; if anything fails on
    the way, what was started is stopped and ``workdir`` removed."""
    server: _L | None = None
    try:
        server = launch()
        server.wait_ready(timeout)
        return server
    except BaseException:
        if server is not None:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        raise


# --- database servers --------------------------------------------------------------------------


@dataclass(kw_only=True)
class _DatabaseServer:
    """A running database server with a password-authenticated administrator."""

    url_format: ClassVar[str]
    port: int
    user: str
    password: str
    process: ServerProcess
    host: str = HOST
    _readonly_passwords: dict[str, str] = field(default_factory=dict, repr=False)

    def url(self, dbname: str, user: str, password: str) -> str:
        return self.url_format.format(user=user, password=password, host=self.host,
                                      port=self.port, dbname=dbname)

    def admin_url(self, dbname: str) -> str:
        return self.url(_check_name(dbname), self.user, self.password)

    def stop(self) -> None:
        self.process.stop()

    def _connect(self) -> Any:
        raise NotImplementedError

    def wait_ready(self, timeout: float, what: str = "accept connections") -> None:
        _wait_until(self.process, lambda: self._connect().close(), timeout, what)

    @contextlib.contextmanager
    def stopped(self, timeout: float = 60.0) -> Iterator[None]:
        """The server is down inside the block (its data kept), and accepts connections again
        on the same port after it."""
        self.process.halt()
        try:
            yield
        finally:
            self.process.start()
            self.wait_ready(timeout, "accept connections again")


# --- PostgreSQL ------------------------------------------------------------------------------


@dataclass(kw_only=True)
class PostgresServer(_DatabaseServer):
    """A running PostgreSQL cluster with a password-authenticated superuser."""

    url_format = "postgresql+psycopg://{user}:{password}@{host}:{port}/{dbname}"

    def _connect(self, dbname: str = "postgres") -> Any:
        import psycopg  # imported lazily so collecting tests never needs the driver

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def create_database(self, name: str, locale: str = "") -> str:
        """(Re)create an empty UTF-8 database and return its superuser URL. ``locale``, the
        test's own SQL, adds options to CREATE DATABASE (the cluster's C locale by default)."""
        from psycopg import sql

        ident = sql.Identifier(_check_name(name))
        with self._connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
            conn.execute(sql.SQL("CREATE DATABASE {} ENCODING 'UTF8' "
                                 + locale).format(ident))
        return self.admin_url(name)

    def restore_dump(self, name: str, dump: Path, locale: str = "") -> str:
        """(Re)create database ``name`` (``locale`` as for create_database) and restore a
        plain-SQL ``pg_dump`` into it with psql, as a platform's administrator would; returns
        its superuser URL."""
        url = self.create_database(name, locale)
        psql = _require(find_postgres_bindir(), "postgresql") / "psql"
        subprocess.run(
            [psql, "--quiet", "--no-psqlrc", "--set=ON_ERROR_STOP=1", f"--file={dump}",
             f"--host={self.host}", f"--port={self.port}", f"--username={self.user}", name],
            env={**os.environ, "PGPASSWORD": self.password}, check=True,
            stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        return url

    def readonly_url(self, dbname: str) -> str:
        """URL of a login role that may only SELECT the tables of ``dbname``.

        Call it after loading the tables; default privileges also cover tables the admin
        creates later. Idempotent: the same role and password on every call.
        """
        from psycopg import sql

        role = f"ro_{_check_name(dbname)}"
        password = self._readonly_passwords.setdefault(role, secrets.token_hex(16))
        role_id, db_id = sql.Identifier(role), sql.Identifier(dbname)
        with self._connect() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(
                    verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}"
                ).format(role_id, sql.Literal(password))
            )
        with self._connect(dbname) as conn:
            for statement in (
                # PUBLIC gets CONNECT and TEMP by default; TEMP tables would be a write.
                "REVOKE ALL ON DATABASE {db} FROM PUBLIC",
                "GRANT CONNECT ON DATABASE {db} TO {role}",
                "GRANT USAGE ON SCHEMA public TO {role}",
                "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}",
            ):
                conn.execute(sql.SQL(statement).format(db=db_id, role=role_id))
        return self.url(dbname, role, password)


def start_postgres(timeout: float = 30.0) -> PostgresServer:
    """initdb + postgres (as the ``postgres`` OS user when we are root)."""
    bindir = _require(find_postgres_bindir(), "postgresql")
    workdir = _mkdtemp("postgres")

    def launch() -> PostgresServer:
        password = secrets.token_hex(16)
        pwfile = workdir / "pwfile"
        pwfile.write_text(password + "\n")
        if _PG_OS_USER is not None:
            shutil.chown(workdir, _PG_OS_USER, _PG_OS_USER)
            shutil.chown(pwfile, _PG_OS_USER, _PG_OS_USER)
        datadir = workdir / "data"
        _run(
            [
                bindir / "initdb",
                f"--pgdata={datadir}",
                f"--username={ADMIN_USER}",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",  # a throwaway cluster needs no durability
            ],
            cwd=workdir,
            user=_PG_OS_USER,
        )
        pwfile.unlink()
        port = free_port()
        proc = _spawn(
            "postgres",
            [
                bindir / "postgres",
                "-D", datadir,
                "-p", str(port),
                "-c", f"listen_addresses={HOST}",
                "-c", f"unix_socket_directories={workdir}",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
            ],
            workdir,
            user=_PG_OS_USER,
            # SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client (a leaked
            # connection pool would hang it); SIGINT is the "fast" shutdown.
            stop_signal=signal.SIGINT,
        )  # fmt: skip
        return PostgresServer(port=port, user=ADMIN_USER, password=password, process=proc)

    return _ready_or_removed(workdir, timeout, launch)


# --- MariaDB ---------------------------------------------------------------------------------


@dataclass(kw_only=True)
class MariaDBServer(_DatabaseServer):
    """A running MariaDB server with a password-authenticated all-privileges user."""

    url_format = "mysql+pymysql://{user}:{password}@{host}:{port}/{dbname}?charset=utf8mb4"
    socket_path: Path

    def _connect(self) -> Any:
        import pymysql

        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            autocommit=True,
            connect_timeout=5,
        )

    def create_database(self, name: str) -> str:
        """(Re)create an empty database and return its admin URL.

        utf8mb4_bin is what Nextcloud uses on MySQL, and it compares and uniques strings
        byte-wise like SQLite does, so copied unique keys cannot collide by case.
        """
        _check_name(name)
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        return self.admin_url(name)

    def readonly_url(self, dbname: str) -> str:
        """URL of a user that has only SELECT on ``dbname`` (idempotent)."""
        user = f"ro_{_check_name(dbname)}"
        password = self._readonly_passwords.setdefault(user, secrets.token_hex(16))
        account = f"'{user}'@'{self.host}'"
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY %s", (password,))
            cur.execute(f"ALTER USER {account} IDENTIFIED BY %s", (password,))
            cur.execute(f"GRANT SELECT ON `{dbname}`.* TO {account}")
        return self.url(dbname, user, password)


def start_mariadb(timeout: float = 60.0) -> MariaDBServer:
    """mariadb-install-db + mariadbd with real grant tables (``--user=root`` when root)."""
    server_bin, install_db = _require(find_mariadb(), "mariadb-server")
    workdir = _mkdtemp("mariadb")

    def launch() -> MariaDBServer:
        datadir = workdir / "data"
        socket_path = workdir / "mysqld.sock"
        password = secrets.token_hex(16)
        _run(
            [
                install_db,
                "--no-defaults",  # must come first; keeps /etc/mysql out of the test server
                *_MARIADB_AS_ROOT,
                f"--datadir={datadir}",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            cwd=workdir,
        )
        # The init file runs with full privileges at startup: the simplest way to create a
        # password user without a client binary or the unix_socket auth plugin in PyMySQL.
        init_file = workdir / "init.sql"
        account = f"'{ADMIN_USER}'@'{HOST}'"
        init_file.write_text(
            # IF NOT EXISTS: the file runs again when a test restarts the server.
            f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY '{password}';\n"
            f"GRANT ALL PRIVILEGES ON *.* TO {account} WITH GRANT OPTION;\n"
        )
        port = free_port()
        proc = _spawn(
            "mariadb",
            [
                server_bin,
                "--no-defaults",
                *_MARIADB_AS_ROOT,
                f"--datadir={datadir}",
                f"--socket={socket_path}",
                f"--pid-file={workdir / 'mysqld.pid'}",
                f"--tmpdir={workdir}",
                f"--init-file={init_file}",
                f"--bind-address={HOST}",
                f"--port={port}",
                "--skip-name-resolve",  # clients are matched as 127.0.0.1, like the users
                "--character-set-server=utf8mb4",
                "--innodb-buffer-pool-size=64M",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0",
                "--innodb-use-native-aio=0",  # io_setup() often fails in containers
                "--skip-log-bin",
            ],
            workdir,
        )
        return MariaDBServer(
            port=port,
            user=ADMIN_USER,
            password=password,
            socket_path=socket_path,
            process=proc,
        )

    return _ready_or_removed(workdir, timeout, launch)


# --- Prometheus ------------------------------------------------------------------------------


def _http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read())


def wait_for_ready(url: str, timeout: float = 30.0, proc: ServerProcess | None = None) -> None:
    """Poll ``{url}/-/ready`` until it answers 200; bounded, clear error on timeout."""
    ready = url.rstrip("/") + "/-/ready"
    if proc is not None:
        _wait_until(proc, lambda: _http_get(ready, timeout=2), timeout, f"answer {ready}")
        return
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            _http_get(ready, timeout=2)
            return
        except (OSError, urllib.error.URLError) as exc:
            last_error = exc
        time.sleep(0.1)
    raise TimeoutError(f"{ready} not ready within {timeout:.0f}s (last error: {last_error!r})")


@dataclass
class PrometheusServer:
    """A running Prometheus; ``url`` is its HTTP base URL."""

    url: str
    config_path: Path
    process: ServerProcess

    def wait_ready(self, timeout: float = 30.0) -> None:
        wait_for_ready(self.url, timeout, self.process)

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data`` (raises if status is not success)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        body = json.loads(_http_get(f"{self.url}/api/v1/{path}{query}"))
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus API {path} failed: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the list of ``{"metric": ..., "value": [ts, "v"]}`` results."""
        return list(self.api("query", query=expr)["result"])

    def stop(self) -> None:
        self.process.stop()


def start_prometheus(
    targets: Sequence[str] = (),
    *,
    scrape_interval: str = "1s",
    job_name: str = "usage-exporter",
    metrics_path: str = "/metrics",
    config: Mapping[str, Any] | None = None,
    timeout: float = 30.0,
) -> PrometheusServer:
    """Start Prometheus scraping ``targets`` (``host:port``), or with a whole ``config``."""
    binary = _require(find_prometheus(), "prometheus")
    if config is None:
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "scrape_configs": [
                {
                    "job_name": job_name,
                    "metrics_path": metrics_path,
                    "static_configs": [{"targets": list(targets)}],
                }
            ],
        }
    workdir = _mkdtemp("prometheus")

    def launch() -> PrometheusServer:
        config_path = workdir / "prometheus.yml"
        config_path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
        port = free_port()
        proc = _spawn(
            "prometheus",
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={HOST}:{port}",
            ],
            workdir,
        )
        return PrometheusServer(
            url=f"http://{HOST}:{port}", config_path=config_path, process=proc
        )

    return _ready_or_removed(workdir, timeout, launch)


# --- third-party servers in virtualenvs of their own (query-exporter, Synapse ...) ---------------

# Kept between sessions: a virtualenv is built once per tool and version.
VENVS = Path("/tmp/usage-exporter-bench/venvs")
# query-exporter's newest release (5.1 on) needs Python >= 3.12; 5.0.2 is the newest for 3.11.
QUERY_EXPORTER_NEWEST = "5.2.2"
QUERY_EXPORTER_ON_3_11 = "5.0.2"
QUERY_EXPORTER_DRIVERS = ("psycopg[binary]>=3.1", "pymysql>=1.1")
# The interpreter query-exporter's virtualenv is built from, when not the one running us.
QUERY_EXPORTER_PYTHON = "QUERY_EXPORTER_PYTHON"


def virtualenv(name: str, requirements: Sequence[str],
               python: str | Path = sys.executable) -> Path:
    """bin/ of VENVS/<name> with `requirements` installed into a virtualenv of `python`:
    created, or re-created when the requirements or the interpreter changed, so a fresh machine
    builds the same environment."""
    env = VENVS / name
    marker = env / "bench-requirements.txt"
    wanted = "\n".join((f"# {python}", *requirements)) + "\n"
    if not marker.exists() or marker.read_text() != wanted:
        print(f"installing {' '.join(requirements)} into {env} ...", flush=True)
        subprocess.run([str(python), "-m", "venv", "--clear", str(env)], check=True)
        subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", *requirements], check=True)
        marker.write_text(wanted)
    return env / "bin"


@dataclass(frozen=True)
class Server:
    """A server process `started` launched, and where it answers."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@contextlib.contextmanager
def started(name: str, argv: Sequence[str | Path], port: int, ready_path: str, log_path: Path,
            *, cwd: Path = _PROJECT, env: Mapping[str, str] | None = None,
            timeout: float = 180.0) -> Iterator[Server]:
    """The process, once GET ready_path answers 200; stopped by its PID when the block ends,
    whether or not it ended in an error."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen([str(a) for a in argv], cwd=cwd, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})})
    server = Server(name, port, process, log_path)
    try:
        wait_answering(server.url + ready_path, process, log_path, timeout, name=name,
                       error=SystemExit)
        yield server
    finally:
        terminate(process, timeout=20)


def query_exporter_python() -> str:
    """The interpreter query-exporter's virtualenv is built from: $QUERY_EXPORTER_PYTHON, or
    the one running this."""
    return os.environ.get(QUERY_EXPORTER_PYTHON) or sys.executable


def query_exporter_release(python: str) -> str:
    """The newest query-exporter release `python` runs."""
    version = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.split()
    newest_runs = tuple(map(int, version)) >= (3, 12)
    return QUERY_EXPORTER_NEWEST if newest_runs else QUERY_EXPORTER_ON_3_11


def query_exporter_bin(python: str | None = None) -> Path:
    """bin/ of a virtualenv of `python` (default query_exporter_python()) holding the newest
    query-exporter release it runs and the database drivers (created on first use)."""
    python = python or query_exporter_python()
    release = query_exporter_release(python)
    return virtualenv(f"query-exporter-{release}",
                      (f"query-exporter=={release}", *QUERY_EXPORTER_DRIVERS), python)


def query_exporter_version(bin_dir: Path) -> str:
    """`query-exporter --version` of the installed one, e.g. "query-exporter, version 5.2.2"."""
    return subprocess.run([bin_dir / "query-exporter", "--version"], capture_output=True,
                          text=True, check=True).stdout.strip()


@contextlib.contextmanager
def query_exporter_process(config: Path, log_path: Path, env: Mapping[str, str] | None = None,
                           bin_dir: Path | None = None) -> Iterator[Server]:
    """query-exporter (from `bin_dir`, default query_exporter_bin()) on `config` (a file of its
    own format) on a free port, without the _created series of counters; stopped by its PID when
    the block ends. Ready once its home page answers: a GET /metrics would run its on-scrape
    queries (and feed their histograms)."""
    port = free_port()
    with started(f"query-exporter ({config.name})",
                 [(bin_dir or query_exporter_bin()) / "query-exporter", "--config", config,
                  "-H", HOST, "-p", str(port), "-L", "warning"], port, "/", log_path,
                 env={"PROMETHEUS_DISABLE_CREATED_SERIES": "True", **(env or {})}) as server:
        yield server


# --- usage-exporter itself --------------------------------------------------------------------


def start_exporter(log_path: Path, *arguments: str) -> subprocess.Popen[bytes]:
    """``python -m exporter ARGUMENTS`` from the project root, its stdout and stderr appended to
    ``log_path``: a file nobody has to drain while it runs, which a restart extends."""
    with log_path.open("ab") as log:
        return subprocess.Popen([sys.executable, "-m", "exporter", *arguments], cwd=_PROJECT,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def start_daemon(config: Path, log_path: Path,
                 as_of: float | None = None) -> subprocess.Popen[bytes]:
    """``usage-exporter run`` on ``config``; ``as_of`` pins the clock its collectors see (a
    fixture's own date) instead of the wall clock."""
    pinned = () if as_of is None else ("--as-of", str(as_of))
    return start_exporter(log_path, "run", "--config", str(config), *pinned)


def wait_daemon_ready(url: str, process: subprocess.Popen[bytes], log_path: Path,
                      seconds: float = 60.0, *, error: type[BaseException] = AssertionError,
                      context: ssl.SSLContext | None = None) -> None:
    """Poll ``url``/-/ready (over TLS with ``context``) until it answers 200 (503 until the
    first refresh); see wait_answering."""
    wait_answering(url + "/-/ready", process, log_path, seconds, error=error, context=context)


def wait_answering(url: str, process: subprocess.Popen[bytes], log_path: Path,
                   seconds: float = 60.0, *, name: str = "the daemon",
                   error: type[BaseException] = AssertionError,
                   context: ssl.SSLContext | None = None) -> None:
    """Poll ``url`` until it answers 200. Raise ``error``, with the end of the log, if the
    process exits first or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise error(f"{name} exited with code {process.returncode}: {tail}")
        # An HTTPError (an OSError) while it is not ready; nothing at all before it listens.
        with contextlib.suppress(OSError, http.client.HTTPException), \
                urllib.request.urlopen(url, timeout=5, context=context) as response:
            if response.status == 200:
                return
        if time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise error(f"{name} was not ready within {seconds:g}s: {tail}")
        time.sleep(0.1)


@dataclass(frozen=True)
class StartedDaemon:
    """A daemon that ready_daemon started: where it answers, its process and its log."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def port(self) -> int:
        port = urllib.parse.urlsplit(self.url).port
        assert port is not None, self.url
        return port


@contextlib.contextmanager
def ready_daemon(config: Path, log_path: Path, url: str, *, as_of: float | None = None,
                   seconds: float = 60.0, error: type[Exception] = AssertionError,
                   context: ssl.SSLContext | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """The daemon (see start_daemon), once ready at ``url``; stopped by its PID when the block
    ends, however it ends."""
    process = start_daemon(config, log_path, as_of)
    try:
        wait_daemon_ready(url, process, log_path, seconds, error=error, context=context)
        yield process
    finally:
        terminate(process, timeout=15)


# --- pytest fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the whole session; tests create their own databases in it."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    """One MariaDB for the whole session; tests create their own databases in it."""
    server = start_mariadb()
    try:
        yield server
    finally:
        server.stop()


# Calls start_prometheus() with the same arguments and stops what it started.
PrometheusFactory = Callable[..., PrometheusServer]


@pytest.fixture
def prometheus_server() -> Iterator[PrometheusFactory]:
    """Factory: ``prometheus_server(["127.0.0.1:9999"])``; all are stopped after the test."""
    _require(find_prometheus(), "prometheus")  # skip/fail before the test body runs
    started: list[PrometheusServer] = []

    def start(targets: Sequence[str] = (), **kwargs: Any) -> PrometheusServer:
        server = start_prometheus(targets, **kwargs)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
