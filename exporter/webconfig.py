"""The web config file that Prometheus exporters share (exporter-toolkit's --web.config.file):
TLS, HTTP basic auth with bcrypt hashes, and extra response headers. exporter.server applies
them: its event loop does the TLS handshakes, `Guard` wraps the app, `PasswordChecks` runs the
bcrypt checks.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import heapq
import hmac
import ipaddress
import itertools
import re
import secrets
import ssl
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import structlog

from exporter.config import ConfigError, Option, _Reader, boolean, read_yaml, string
from exporter.http import FailedAttempts, HttpError, StartResponse

log = structlog.get_logger()

TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Headers the exporter-toolkit lets a web config set, with the values it allows (None: any).
HEADERS: Mapping[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
# The TLS 1.2 suites cipher_suites may name, by Go's names (as in the exporter-toolkit) with
# OpenSSL's: the forward-secret AEAD ones. Like Go, the list leaves TLS 1.3's suites alone.
CIPHER_SUITES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
}
# exporter-toolkit keys this server cannot honour, and what to do instead.
UNSUPPORTED = {
    "rate_limit": "is not supported by usage-exporter; rate-limit in a reverse proxy",
    "cert": "inline PEM is not supported by usage-exporter; give cert_file",
    "key": "inline PEM is not supported by usage-exporter; give key_file",
    "client_ca": "inline PEM is not supported by usage-exporter; give client_ca_file",
    "curve_preferences": "is not supported by usage-exporter (OpenSSL's defaults apply)",
}
UNSUPPORTED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
BCRYPT_HASH = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
# bcrypt reads at most 72 bytes of a password; htpasswd and Go ignore the rest, and so do we.
BCRYPT_MAX_PASSWORD = 72
# Checked for a user name that does not exist, so that a miss costs as long as a wrong password
# (cost 10, as the exporter-toolkit docs suggest; the password behind it was random, and lost).
DECOY_HASH = b"$2b$10$Qs72Hmdzb74vHmjpV/FETO6U/SlvzzTnEcP0JwXmkHoqHzuTBDkzC"
REALM = 'Basic realm="usage-exporter"'


@dataclass(frozen=True)
class TlsSettings:
    cert_file: Path
    key_file: Path
    client_auth: ssl.VerifyMode = ssl.CERT_NONE
    client_ca_file: Path | None = None
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    prefer_server_cipher_suites: bool = True
    # A client certificate must name one of these (DNS name, IP address, email or URI); empty:
    # any certificate the client CA signed.
    client_allowed_sans: tuple[str, ...] = ()
    cipher_suites: tuple[str, ...] = ()  # OpenSSL names; empty: OpenSSL's defaults

    def allows(self, peer_certificate: Mapping[str, Any] | None) -> bool:
        """Whether a verified client certificate (as ssl's getpeercert() gives it) names an
        allowed SAN, as the exporter-toolkit checks it."""
        if not self.client_allowed_sans:
            return True
        names = {_san(value) for _, value in (peer_certificate or {}).get("subjectAltName", ())}
        return not names.isdisjoint(_san(value) for value in self.client_allowed_sans)

    @property
    def files(self) -> tuple[Path, ...]:
        return tuple(path for _, path in self._keyed_files())

    def files_state(self) -> tuple[tuple[int, int, int] | None, ...]:
        """What changes when a certificate file is replaced: to reload renewed ones."""
        def state(path: Path) -> tuple[int, int, int] | None:
            try:
                stat = path.stat()
            except OSError:
                return None
            return stat.st_mtime_ns, stat.st_size, stat.st_ino

        return tuple(state(f) for f in self.files)

    def context(self) -> ssl.SSLContext:
        """A server context from the files as they are now, or ConfigError naming the file and
        what is wrong with it."""
        problems = []
        for key, path in self._keyed_files():
            try:
                path.read_bytes()
            except OSError as error:
                problems.append(f"tls_server_config.{key}: cannot read {path}: {error.strerror}")
        if problems:
            raise ConfigError(problems)
        try:
            # Parsed in a context of its own: the server's chain must not become trusted for
            # client certificates.
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(
                cadata=self.cert_file.read_text(errors="replace"))
        except (ssl.SSLError, ValueError):
            raise ConfigError([f"tls_server_config.cert_file: no PEM certificate in "
                               f"{self.cert_file}"]) from None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version, context.maximum_version = self.min_version, self.max_version
        if self.prefer_server_cipher_suites:
            context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        if self.cipher_suites:
            context.set_ciphers(":".join(self.cipher_suites))
        context.set_alpn_protocols(["http/1.1"])
        try:
            # An empty password: an encrypted key fails here instead of prompting on a terminal.
            context.load_cert_chain(self.cert_file, self.key_file, password="")
        except ssl.SSLError as error:
            raise ConfigError([f"tls_server_config.key_file: {self.key_file}: "
                               f"{_key_problem(self.key_file, error)}"]) from None
        context.verify_mode = self.client_auth
        if self.client_ca_file is not None:
            try:
                context.load_verify_locations(cafile=self.client_ca_file)
            except ssl.SSLError:
                raise ConfigError([f"tls_server_config.client_ca_file: no PEM certificate in "
                                   f"{self.client_ca_file}"]) from None
        return context

    def _keyed_files(self) -> Iterable[tuple[str, Path]]:
        yield "cert_file", self.cert_file
        yield "key_file", self.key_file
        if self.client_ca_file is not None:
            yield "client_ca_file", self.client_ca_file


def _san(value: str) -> str:
    """A SAN as compared: an IP address in one spelling (ssl writes IPv6 ones in full)."""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return value


def cipher_suite_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError("expected a list of cipher suite names such as "
                         "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
    unknown = [name for name in value if name not in CIPHER_SUITES]
    if unknown:
        raise ValueError(f"not supported: {', '.join(map(str, unknown))} (supported: "
                         f"{', '.join(CIPHER_SUITES)})")
    return tuple(CIPHER_SUITES[name] for name in value)


def san_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("expected a list of SANs (DNS names, IP addresses, emails or URIs)")
    return tuple(value)


def _key_problem(key_file: Path, error: ssl.SSLError) -> str:
    if error.reason in ("KEY_VALUES_MISMATCH", "NO_CERTIFICATE_ASSIGNED"):
        return "does not belong to the certificate in cert_file"
    if b"ENCRYPTED" in key_file.read_bytes():
        return "the key is encrypted; give it unencrypted (and readable only by the exporter)"
    return "no PEM private key in it"


@dataclass(frozen=True)
class WebConfig:
    tls: TlsSettings | None = None
    # name -> bcrypt hash
    users: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    headers: tuple[tuple[str, str], ...] = ()

    def summary(self) -> str:
        parts = []
        if self.tls is not None:
            clients = {ssl.CERT_REQUIRED: ", client certificates required",
                       ssl.CERT_OPTIONAL: ", client certificates verified if given"}
            parts.append("TLS" + clients.get(self.tls.client_auth, ""))
        if self.users:
            parts.append(f"basic auth ({len(self.users)} user(s))")
        if self.headers:
            parts.append(f"{len(self.headers)} header(s)")
        return ", ".join(parts) or "nothing configured"


# --- parsing ---


def client_auth_type(value: Any) -> ssl.VerifyMode:
    if value in UNSUPPORTED_CLIENT_AUTH:
        raise ValueError(f"{value} is not supported by usage-exporter (it would accept a client "
                         "certificate without verifying it); use RequireAndVerifyClientCert "
                         "with client_ca_file")
    if value not in CLIENT_AUTH_TYPES:
        raise ValueError(f"expected one of {', '.join(CLIENT_AUTH_TYPES)}, got {value!r}")
    return CLIENT_AUTH_TYPES[value]


def tls_version(value: Any) -> ssl.TLSVersion:
    if value in ("TLS10", "TLS11"):
        raise ValueError(f"{value} is not supported (TLS 1.0 and 1.1 are insecure); "
                         "use TLS12 or TLS13")
    if value not in TLS_VERSIONS:
        raise ValueError(f"expected TLS12 or TLS13, got {value!r}")
    return TLS_VERSIONS[value]


def _without_unsupported(node: Any, path: str, reader: _Reader) -> Any:
    """`node` less the exporter-toolkit keys we cannot honour, each reported with the reason."""
    if not isinstance(node, dict):
        return node
    for key in node.keys() & UNSUPPORTED.keys():
        reader.problem(f"{path}{key}", UNSUPPORTED[key])
    return {key: value for key, value in node.items() if key not in UNSUPPORTED}


def _tls(node: Any, reader: _Reader) -> TlsSettings | None:
    node = _without_unsupported(node, "tls_server_config.", reader)
    if not node:  # as in the exporter-toolkit: no TLS key set, no TLS
        return None
    problems_before = len(reader.problems)
    values = reader.section(node, "tls_server_config", {
        "cert_file": Option(string, required=True),
        "key_file": Option(string, required=True),
        "client_auth_type": Option(client_auth_type, ssl.CERT_NONE),
        "client_ca_file": Option(string),
        "min_version": Option(tls_version, ssl.TLSVersion.TLSv1_2),
        "max_version": Option(tls_version, ssl.TLSVersion.TLSv1_3),
        "prefer_server_cipher_suites": Option(boolean, True),
        "client_allowed_sans": Option(san_list, ()),
        "cipher_suites": Option(cipher_suite_list, ()),
    })
    if len(reader.problems) > problems_before:
        return None  # the checks below would only repeat a problem already told
    client_auth, ca_file = values["client_auth_type"], values["client_ca_file"]
    if ca_file is not None and client_auth == ssl.CERT_NONE:
        reader.problem("tls_server_config.client_ca_file", "is set but client_auth_type is "
                       "NoClientCert: set client_auth_type: RequireAndVerifyClientCert")
    if ca_file is None and client_auth != ssl.CERT_NONE:
        reader.problem("tls_server_config.client_ca_file",
                       "is required to verify client certificates")
    if values["client_allowed_sans"] and client_auth != ssl.CERT_REQUIRED:
        reader.problem("tls_server_config.client_allowed_sans",
                       "needs client_auth_type: RequireAndVerifyClientCert")
    if values["min_version"] > values["max_version"]:
        reader.problem("tls_server_config.min_version", "is above max_version")
    return TlsSettings(
        cert_file=reader.base_dir / values["cert_file"],
        key_file=reader.base_dir / values["key_file"],
        client_auth=client_auth,
        client_ca_file=None if ca_file is None else reader.base_dir / ca_file,
        min_version=values["min_version"],
        max_version=values["max_version"],
        prefer_server_cipher_suites=values["prefer_server_cipher_suites"],
        client_allowed_sans=values["client_allowed_sans"],
        cipher_suites=values["cipher_suites"],
    )


def mapping(value: Any) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping, got {type(value).__name__}")
    return value


def _headers(node: dict[Any, Any], reader: _Reader) -> tuple[tuple[str, str], ...]:
    headers = []
    for name, value in node.items():
        path = f"http_server_config.headers.{name}"
        allowed = HEADERS.get(name, ())
        if name not in HEADERS:
            reader.problem(path, f"cannot be set (these can: {', '.join(HEADERS)})")
        elif not isinstance(value, str) or "\r" in value or "\n" in value:
            reader.problem(path, "expected a one-line string")
        elif allowed is not None and value and value not in allowed:
            reader.problem(path, f"expected one of {', '.join(allowed)}, got {value!r}")
        elif value:  # blank: not sent, as in the exporter-toolkit
            headers.append((name, value))
    return tuple(headers)


def _users(node: Any, reader: _Reader) -> dict[str, bytes]:
    if node is None:
        return {}
    if not isinstance(node, dict):
        reader.problem("basic_auth_users", "expected a mapping of user name to bcrypt hash")
        return {}
    users = {}
    for name, hashed in node.items():
        path = f"basic_auth_users.{name}"
        match = BCRYPT_HASH.fullmatch(hashed) if isinstance(hashed, str) else None
        if not isinstance(name, str) or not name or ":" in name:
            reader.problem(path, "a user name must be a non-empty string without ':'")
        elif match is None or not 4 <= int(match.group(1)) <= 31:
            # The value is never echoed: it is a password hash.
            reader.problem(path, "not a bcrypt hash (make one with: htpasswd -nBC 10 \"\" | "
                           "tr -d ':\\n')")
        else:
            users[name] = hashed.encode()
    return users


def parse_web_config(raw: Any, base_dir: Path) -> WebConfig:
    """Validate a loaded web config document; relative file names are read from `base_dir`."""
    reader = _Reader(base_dir)
    if raw is None:
        return WebConfig()
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): expected a mapping with tls_server_config, "
                           "http_server_config or basic_auth_users"])
    raw = _without_unsupported(raw, "", reader)
    known = ("tls_server_config", "http_server_config", "basic_auth_users")
    for key in raw:
        if key not in known:
            reader.problem(str(key), f"unknown key (known keys: {', '.join(known)})")
    tls = _tls(raw.get("tls_server_config"), reader)
    http = reader.section(raw.get("http_server_config"), "http_server_config", {
        # Accepted for compatibility: the server speaks HTTP/1.1 only.
        "http2": Option(boolean, True),
        "headers": Option(mapping, {}),
    })
    headers = _headers(http["headers"], reader)
    users = _users(raw.get("basic_auth_users"), reader)
    if tls is not None:
        try:
            tls.context()
        except ConfigError as error:
            reader.problems.extend(error.problems)
    if reader.problems:
        raise ConfigError(reader.problems)
    return WebConfig(tls, users, headers)


def load_web_config(path: Path) -> WebConfig:
    """The web config file at `path`; every problem is prefixed with the file's name."""
    raw = read_yaml(path)
    try:
        return parse_web_config(raw, path.parent)
    except ConfigError as error:
        raise ConfigError([f"{path}: {problem}" for problem in error.problems]) from None


# --- basic auth and headers ---


class BasicAuth:
    """Checks user and password against bcrypt hashes. A bcrypt check is slow on purpose, so
    the keyed digest of each user's last verified password is kept and compared in constant
    time: a scrape costs a bcrypt once, not every time. PasswordChecks bounds how many checks
    run at once."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, bytes] = {}

    def _digest(self, user: str, password: bytes) -> bytes:
        return hmac.new(self._key, user.encode() + b"\0" + password, hashlib.sha256).digest()

    def _known(self, user: str, password: bytes) -> bool:
        verified = self._verified.get(user)
        return verified is not None and hmac.compare_digest(verified,
                                                            self._digest(user, password))

    def check(self, user: str, password: bytes) -> bool:
        if self._known(user, password):
            return True
        hashed = self._users.get(user)
        match = bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed or DECOY_HASH)
        if match and hashed is not None:
            self._verified[user] = self._digest(user, password)
            return True
        return False

    def check_header(self, authorization: str | None) -> bool:
        """Whether an Authorization header carries valid Basic credentials."""
        credentials = _basic_credentials(authorization)
        return credentials is not None and self.check(*credentials)

    def known(self, authorization: str | None) -> bool:
        """Whether the header carries a password already verified: checking it again costs no
        bcrypt."""
        credentials = _basic_credentials(authorization)
        return credentials is not None and self._known(*credentials)


def _basic_credentials(authorization: str | None) -> tuple[str, bytes] | None:
    """User and password of a Basic Authorization header; None if it is not one."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        name = user.decode()
    except ValueError:  # not base64, or a name that is not UTF-8
        return None
    return (name, password) if colon else None


class PasswordChecks:
    """The bcrypt checks of passwords not verified before, for the event loop, on two threads of
    their own (never on a worker that API calls wait for): one for any client, one kept for
    clients without recent wrong passwords, so that a new client does not wait for a guesser's
    check to end, and guessing takes one core (and a check per new address). Clients with fewer
    recent wrong passwords go first, and among equals the latest comes first (under a flood, the
    first try of a new client is not queued behind every flooding client's). A client with
    `limit` wrong ones within `window` seconds, or with a check already waiting, is refused
    (429.2) without one, after `pause` seconds: so that guessing on many connections at once
    cannot keep the event loop busy with refusals either."""

    def __init__(self, auth: BasicAuth, limit: int = 5, window: float = 60.0,
                 pause: float = 1.0) -> None:
        self.auth, self.pause = auth, pause
        self.attempts = FailedAttempts(limit=limit, window=window)
        self._threads = ThreadPoolExecutor(2, thread_name_prefix="bcrypt")
        self._turns: list[tuple[int, int, asyncio.Future[str]]] = []  # a heap
        self._numbers = itertools.count()
        self._free = {ANY_CLIENT: True, NEW_CLIENTS: True}  # the two threads' lanes
        self._waiting: set[str] = set()

    async def verify(self, client: str, authorization: str | None) -> None:
        """Check the credentials once: a right password is then known to `auth`; a wrong one
        counts against `client`."""
        wait = self.attempts.retry_after(client)
        if wait:
            await asyncio.sleep(self.pause)
            raise HttpError(429.2, "Too many wrong passwords from this address; try again in "
                            f"{wait} seconds.", retry_after=wait)
        if client in self._waiting:
            await asyncio.sleep(self.pause)
            raise HttpError(429.2, "A password check for this address is under way; try "
                            "again in 1 second.", retry_after=1)
        self._waiting.add(client)
        try:
            lane = await self._turn(self.attempts.recent(client))
            try:
                loop = asyncio.get_running_loop()
                right = await loop.run_in_executor(self._threads, self.auth.check_header,
                                                   authorization)
            finally:
                self._release(lane)
        finally:
            self._waiting.discard(client)
        if not right:
            self.attempts.failed(client)

    async def _turn(self, failures: int) -> str:
        turn: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._turns, (failures, -next(self._numbers), turn))
        self._next()
        try:
            return await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # given a lane, then cancelled: free it
                self._release(turn.result())
            raise

    def _release(self, lane: str) -> None:
        self._free[lane] = True
        self._next()

    def _next(self) -> None:
        while self._turns:
            failures, _, turn = self._turns[0]
            if turn.done():  # cancelled while waiting
                heapq.heappop(self._turns)
                continue
            lane = (ANY_CLIENT if self._free[ANY_CLIENT] else
                    NEW_CLIENTS if self._free[NEW_CLIENTS] and failures == 0 else None)
            if lane is None:
                return
            heapq.heappop(self._turns)
            self._free[lane] = False
            turn.set_result(lane)

    def stop(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


ANY_CLIENT, NEW_CLIENTS = "any client", "clients without recent wrong passwords"


class Guard:
    """WSGI middleware from a web config: its headers on every response (a route's own value of
    the same header wins, as in the exporter-toolkit), and basic auth on `guarded_paths`. It
    lets through only passwords verified before: the server verifies new ones first, off the
    event loop (PasswordChecks), since a check is a bcrypt."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
                 web: WebConfig, guarded_paths: Iterable[str]) -> None:
        self.app = app
        self.headers = web.headers
        self.auth = BasicAuth(web.users) if web.users else None
        self.guarded_paths = frozenset(guarded_paths)

    def _guarded(self, environ: dict[str, Any]) -> bool:
        return self.auth is not None and environ.get("PATH_INFO", "") in self.guarded_paths

    def unverified(self, environ: dict[str, Any]) -> bool:
        """Whether the request brings Basic credentials for a guarded path that were not
        verified before: they cost a bcrypt check."""
        authorization = environ.get("HTTP_AUTHORIZATION")
        return (self._guarded(environ) and _basic_credentials(authorization) is not None
                and not self.auth.known(authorization))  # type: ignore[union-attr]

    def admits(self, path: str, authorization: str | None) -> bool:
        """Whether a request needs no password or brings one verified before."""
        return (self.auth is None or path not in self.guarded_paths
                or self.auth.known(authorization))

    def with_headers(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """`headers` and the web config's headers that they do not set."""
        present = {name.lower() for name, _ in headers}
        return [*headers,
                *((name, value) for name, value in self.headers if name.lower() not in present)]

    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        def with_headers(status: str, headers: list[tuple[str, str]],
                         exc_info: Any = None) -> Any:
            return start_response(status, self.with_headers(headers), exc_info)

        if not self.admits(environ.get("PATH_INFO", ""), environ.get("HTTP_AUTHORIZATION")):
            log.info("basic_auth_refused", route=environ.get("PATH_INFO", ""))
            body = b'{"code": 401.2, "message": "Authentication required (HTTP basic auth)."}'
            with_headers("401 Unauthorized", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                ("WWW-Authenticate", REALM)])
            return [body]
        return self.app(environ, with_headers)


# --- TLS ---


class Certificates:
    """The server's TLS context, built again when a certificate file changes, so a renewed
    certificate needs no restart."""

    def __init__(self, tls: TlsSettings) -> None:
        self._tls = tls
        self._context = tls.context()
        self._files = tls.files_state()

    def context(self) -> ssl.SSLContext:
        """The context for a new connection. A change that does not load (a renewal half
        written) leaves the previous one in use."""
        files = self._tls.files_state()
        if files != self._files:
            self._files = files
            try:
                self._context = self._tls.context()
                log.info("tls_reloaded", cert_file=str(self._tls.cert_file))
            except ConfigError as error:
                log.warning("tls_reload_failed", problems=error.problems,
                            kept="the certificate read before")
        return self._context

    def admits(self, peer_certificate: Mapping[str, Any] | None) -> bool:
        """Whether a client whose handshake passed may be served: client_allowed_sans."""
        if self._tls.allows(peer_certificate):
            return True
        log.info("client_certificate_refused", reason="no SAN of tls_server_config."
                 "client_allowed_sans in the client certificate")
        return False
