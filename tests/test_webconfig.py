"""The exporter-toolkit web config: TLS (with client certificates and minimum versions), basic auth
with bcrypt hashes and extra headers, over real sockets with certificates made here; a readable
error for each bad file; the real daemon behind it, scraped by curl-like clients and by a real
Prometheus."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import structlog
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exporter import api
from exporter.config import ConfigError
from exporter.http import App, Context, FailedAttempts
from exporter.runner import Runner
from exporter.server import HttpServer
from exporter.webconfig import WebConfig, load_web_config
from tests.conftest import API_KEY, NEXTCLOUD_DB, ROOT, make_config
from tests.servers import StartedDaemon, ready_daemon
from tests.test_cli import exporter, free_port, write_config

PASSWORD = "correct horse battery staple"
# Cost 4, bcrypt's least, keeps the suite fast; the hash is checked by the real bcrypt all the same.
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


# --- certificates --------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path

    def serial(self) -> int:
        return x509.load_pem_x509_certificate(self.cert.read_bytes()).serial_number


def issue(directory: Path, name: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
          | None = None, *, server: bool = False,
          sans: tuple[x509.GeneralName, ...] = ()) -> Issued:
    """A certificate for `name` signed by `issuer` (self-signed CA when None), in PEM files; a
    server's names 127.0.0.1 and localhost, a client's `sans`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1)))
    if issuer is None:
        builder = builder.issuer_name(subject).add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True)
        signer = key
    else:
        builder = builder.issuer_name(issuer[0].subject)
        signer = issuer[1]
    if server:
        sans = (x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    cert = builder.sign(signer, hashes.SHA256())
    issued = Issued(directory / f"{name}.crt", directory / f"{name}.key")
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    issued.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    return issued


def load(issued: Issued) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = serialization.load_pem_private_key(issued.key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return x509.load_pem_x509_certificate(issued.cert.read_bytes()), key


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: Issued
    server: Issued
    client: Issued
    # a client certificate from a CA the server does not trust
    stranger: Issued

    def client_context(self, client: Issued | None = None, **versions: ssl.TLSVersion
                       ) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca.cert)
        if client is not None:
            context.load_cert_chain(client.cert, client.key)
        for name, version in versions.items():
            setattr(context, name, version)
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca = issue(directory, "ca")
    other_ca = issue(directory, "other-ca")
    return Pki(directory, ca, issue(directory, "server", load(ca), server=True),
               issue(directory, "client", load(ca)), issue(directory, "stranger", load(other_ca)))


# --- a real server over the Nextcloud fixture ---------------------------------------------------


@pytest.fixture(scope="module")
def runner(nextcloud_now) -> Iterator[Runner]:
    runner = Runner(make_config(f"sqlite:///{NEXTCLOUD_DB}", "nextcloud"),
                    clock=lambda: nextcloud_now)
    runner.run_all()
    yield runner
    runner.close()


def web_config(directory: Path, document: dict[str, Any]) -> WebConfig:
    path = directory / "web.yml"
    path.write_text(yaml.safe_dump(document))
    return load_web_config(path)


@pytest.fixture
def serve(runner, pki) -> Iterator[Any]:
    """serve(web config document) -> the port of a real HttpServer with the real routes; the
    API's wrong-key limit is 3 per address."""
    servers: list[HttpServer] = []

    def start(document: dict[str, Any]) -> int:
        context = Context(lambda: runner.snapshot, runner.config.api_keys, runner.history,
                          runner.clock, attempts=FailedAttempts(limit=3))
        web = web_config(pki.directory, document)
        server = HttpServer(App(context, api.routes(context)), "127.0.0.1", 0, web=web).start()
        servers.append(server)
        return server.port

    yield start
    for server in servers:
        server.stop()


def tls(**extra: Any) -> dict[str, Any]:
    return {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", **extra}}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def get(port: int, path: str = "/metrics", context: ssl.SSLContext | None = None,
        source: str = "127.0.0.1", **headers: str) -> Answer:
    """One request; HTTPS when a client context is given."""
    if context is None:
        connection: http.client.HTTPConnection = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=10, source_address=(source, 0))
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                                 source_address=(source, 0), context=context)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def unanswered(port: int, context: ssl.SSLContext | None = None) -> bool:
    """Whether a request for /metrics (over TLS with a client context) gets no HTTP answer at
    all: the connection is closed or reset, or the TLS handshake fails."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                (context.wrap_socket(raw, server_hostname="127.0.0.1") if context else raw) \
                as connection:
            connection.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            return connection.recv(1024) == b""
    except OSError:  # ssl.SSLError included
        return True


def basic(user: str, password: str) -> str:
    return "Basic " + b64encode(f"{user}:{password}".encode()).decode()


# --- TLS -----------------------------------------------------------------------------------------


def test_tls_serves_the_metrics_to_a_client_trusting_the_ca_and_refuses_plain_http(
        serve, pki, runner):
    port = serve(tls())
    answer = get(port, context=pki.client_context())
    assert answer.status == 200
    assert answer.body == runner.snapshot.bodies.text
    assert unanswered(port)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            pytest.raises(ssl.SSLCertVerificationError):  # the system's CAs never signed ours
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")


def test_min_version_tls13_refuses_a_tls12_client(serve, pki):
    port = serve(tls(min_version="TLS13"))
    tls12 = pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
    assert unanswered(port, tls12)
    assert get(port, context=pki.client_context()).status == 200
    # The same TLS 1.2 client is served when TLS 1.2 is allowed (the default minimum).
    assert get(serve(tls()), context=tls12).status == 200


def test_cipher_suites_limit_what_a_tls12_client_may_use(serve, pki):
    port = serve(tls(cipher_suites=["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]))

    def tls12_client(openssl_ciphers: str) -> ssl.SSLContext:
        context = pki.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
        context.set_ciphers(openssl_ciphers)
        return context

    assert unanswered(port, tls12_client("ECDHE-ECDSA-AES128-GCM-SHA256"))
    assert get(port, context=tls12_client("ECDHE-ECDSA-AES256-GCM-SHA384")).status == 200
    # TLS 1.3 has suites of its own, which the list leaves alone (as in the exporter-toolkit).
    assert get(port, context=pki.client_context()).status == 200


def test_client_certificates_are_required_and_must_be_signed_by_the_client_ca(serve, pki):
    port = serve(tls(client_auth_type="RequireAndVerifyClientCert",
                     client_ca_file="ca.crt"))
    for client in (None, pki.stranger):
        # TLS 1.3 clients learn of the refusal when they read: either way no answer comes.
        assert unanswered(port, pki.client_context(client))
    assert get(port, context=pki.client_context(pki.client)).status == 200


def test_client_allowed_sans_admits_only_client_certificates_naming_one(serve, pki, tmp_path):
    signed = load(pki.ca)
    allowed = issue(tmp_path, "prometheus", signed,
                    sans=(x509.DNSName("prometheus.example"),))
    by_ip = issue(tmp_path, "by-ip", signed, sans=(x509.IPAddress(ipaddress.ip_address("::1")),))
    other = issue(tmp_path, "other", signed, sans=(x509.DNSName("grafana.example"),))
    port = serve(tls(client_auth_type="RequireAndVerifyClientCert", client_ca_file="ca.crt",
                     client_allowed_sans=["prometheus.example", "0:0:0:0:0:0:0:1"]))
    with structlog.testing.capture_logs() as logs:
        for client in (other, pki.client):  # another SAN; none at all
            assert unanswered(port, pki.client_context(client))
    assert [entry["event"] for entry in logs] == ["client_certificate_refused"] * 2
    for client in (allowed, by_ip):
        assert get(port, context=pki.client_context(client)).status == 200


def test_a_ca_in_the_servers_own_chain_is_not_trusted_for_client_certificates(
        serve, pki, tmp_path):
    intermediate = issue(tmp_path, "intermediate")
    client = issue(tmp_path, "intermediate-client", load(intermediate))
    chain = tmp_path / "chain.crt"
    chain.write_bytes(pki.server.cert.read_bytes() + intermediate.cert.read_bytes())
    port = serve({"tls_server_config": {
        "cert_file": str(chain), "key_file": str(pki.server.key),
        "client_auth_type": "RequireAndVerifyClientCert", "client_ca_file": str(pki.ca.cert)}})
    assert unanswered(port, pki.client_context(client))
    assert get(port, context=pki.client_context(pki.client)).status == 200


def test_routes_see_the_tls_clients_own_address(serve, pki):
    """The API's limit on wrong keys counts per client address, through TLS too: one address
    using up its tries leaves another one served."""
    port = serve(tls())
    context = pki.client_context()
    for _ in range(3):
        assert get(port, "/api/v1/snapshot", context, "127.0.0.2",
                   Authorization="Bearer wrong-key-0123456789").status == 403
    assert get(port, "/api/v1/snapshot", context, "127.0.0.2",
               Authorization=f"Bearer {API_KEY}").status == 429
    assert get(port, "/api/v1/snapshot", context, "127.0.0.3",
               Authorization=f"Bearer {API_KEY}").status == 200


def test_clients_that_never_finish_a_handshake_do_not_hold_up_others(serve, pki):
    """Twenty connections that send nothing and one that completes its handshake and then sends
    nothing: were handshakes done one at a time in the accept loop (as cheroot does), the scrape
    below would wait 20 times 10 s, far past its 10 s timeout."""
    port = serve(tls())
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    quiet = pki.client_context().wrap_socket(socket.create_connection(("127.0.0.1", port)),
                                             server_hostname="127.0.0.1")
    try:
        assert get(port, context=pki.client_context()).status == 200
    finally:
        for connection in [*idle, quiet]:
            connection.close()


def served_serial(port: int, pki: Pki) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            pki.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as connection:
        der = connection.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_a_renewed_certificate_is_served_without_a_restart(serve, pki, tmp_path):
    current = issue(tmp_path, "server", load(pki.ca), server=True)
    first = current.serial()
    port = serve({"tls_server_config": {"cert_file": str(current.cert),
                                        "key_file": str(current.key)}})
    assert served_serial(port, pki) == first
    (tmp_path / "renewal").mkdir()
    renewal = issue(tmp_path / "renewal", "server", load(pki.ca), server=True)
    # Half-way through the renewal the new certificate does not match the old key: it is not
    # taken up, and the old pair goes on being served.
    current.cert.write_bytes(renewal.cert.read_bytes())
    with structlog.testing.capture_logs() as logs:
        assert [served_serial(port, pki) for _ in range(3)] == [first] * 3
    assert [entry["event"] for entry in logs] == ["tls_reload_failed"]
    assert "does not belong to the certificate" in logs[0]["problems"][0]
    # With the new key in place, the next connection gets the new pair.
    current.key.write_bytes(renewal.key.read_bytes())
    with structlog.testing.capture_logs() as logs:
        assert [served_serial(port, pki) for _ in range(3)] == [renewal.serial()] * 3
    assert [entry["event"] for entry in logs] == ["tls_reloaded"]


# --- basic auth and headers ------------------------------------------------------------------


def test_basic_auth_guards_the_metrics(serve, runner):
    port = serve({"basic_auth_users": {"prometheus": HASH}})
    refused = get(port)
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="usage-exporter"'
    assert json.loads(refused.body)["code"] == 401.2
    assert get(port, Authorization=basic("prometheus", "wrong")).status == 401
    assert get(port, Authorization=basic("nobody", PASSWORD)).status == 401
    assert get(port, Authorization="Basic not-base64!").status == 401
    assert get(port, Authorization=f"Bearer {API_KEY}").status == 401
    answer = get(port, Authorization=basic("prometheus", PASSWORD))
    assert (answer.status, answer.body) == (200, runner.snapshot.bodies.text)
    # A verified password is remembered for that password only.
    assert get(port, Authorization=basic("prometheus", PASSWORD + "x")).status == 401
    assert get(port, Authorization=basic("prometheus", PASSWORD)).status == 200


def test_basic_auth_leaves_health_and_the_api_with_its_own_keys_open(serve):
    port = serve({"basic_auth_users": {"prometheus": HASH}})
    assert get(port, "/-/healthy").status == 200
    assert get(port, "/-/ready").status == 200
    assert get(port, "/api/v1/snapshot").status == 401  # the API's own refusal: no key
    assert json.loads(get(port, "/api/v1/snapshot").body)["code"] == 401.1
    assert get(port, "/api/v1/snapshot", Authorization=f"Bearer {API_KEY}").status == 200


def timed_get(port: int, path: str, source: str, **headers: str) -> tuple[float, Answer]:
    began = time.perf_counter()
    answer = get(port, path, None, source, **headers)
    return time.perf_counter() - began, answer


def test_a_flood_of_wrong_passwords_slows_neither_the_api_nor_a_new_right_password(serve):
    """120 clients with 3 connections each guessing passwords as fast as they are answered,
    against a cost-10 hash (as
    the exporter-toolkit suggests): bcrypt runs on a thread of its own, so API calls do not wait
    behind it, and a client with no wrong passwords goes ahead of the guessers, which are then
    refused without a check once they spent their budget."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    port = serve({"basic_auth_users": {"prometheus": hashed}})
    flood = subprocess.Popen([sys.executable, "-m", "tests.flood", str(port), "120", "3"], cwd=ROOT,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert flood.stdout is not None and flood.stdin is not None
        assert flood.stdout.readline() == "flooding\n"
        time.sleep(1)  # the guesses under way
        api_calls = [timed_get(port, "/api/v1/snapshot", "127.0.0.9",
                               Authorization=f"Bearer {API_KEY}") for _ in range(40)]
        first_scrape = timed_get(port, "/metrics", "127.0.0.10",
                                 Authorization=basic("prometheus", PASSWORD))
        flood.stdin.close()
        flooded = {int(status): count
                   for status, count in json.loads(flood.stdout.readline()).items()}
    finally:
        flood.kill()
        flood.wait(10)
    assert {answer.status for _, answer in api_calls} == {200}
    assert statistics.median(seconds for seconds, _ in api_calls) < 0.050
    assert first_scrape[1].status == 200
    assert first_scrape[0] < 1.0
    # Guesses checked and refused (401), and many more refused without a check (429).
    assert set(flooded) == {401, 429} and flooded[429] > flooded[401]


def test_a_refusal_never_logs_the_password(serve):
    port = serve({"basic_auth_users": {"prometheus": HASH}})
    with structlog.testing.capture_logs() as logs:
        assert get(port, Authorization=basic("prometheus", "hunter2-guess")).status == 401
    assert logs and "hunter2-guess" not in repr(logs)


def test_configured_headers_are_on_every_answer_but_a_routes_own_value_wins(serve):
    port = serve({"basic_auth_users": {"prometheus": HASH},
                  "http_server_config": {"headers": {
                      "X-Frame-Options": "sameorigin",
                      "Strict-Transport-Security": "max-age=31536000"}}})
    # The second scrape with the password, verified by then, and the health check are answered
    # on the server's fast path.
    scrape = basic("prometheus", PASSWORD)
    for answer in (get(port), get(port, Authorization=scrape), get(port, Authorization=scrape),
                   get(port, "/-/healthy"), get(port, "/api/v1/snapshot"), get(port, "/nope")):
        assert answer.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert answer.headers["X-Frame-Options"] == "sameorigin"
    admin = get(port, "/")
    assert admin.headers.get_all("X-Frame-Options") == ["DENY"]
    assert admin.headers["Strict-Transport-Security"] == "max-age=31536000"


# --- bad files -------------------------------------------------------------------------------


BAD_FILES = {
    "missing cert file": (
        {"tls_server_config": {"cert_file": "absent.crt", "key_file": "server.key"}},
        "tls_server_config.cert_file: cannot read {dir}/absent.crt: No such file or directory"),
    "unknown key": (
        {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key",
                               "cert_fiel": "x"}},
        "tls_server_config.cert_fiel: unknown key (known keys: cert_file, key_file, "
        "client_auth_type, client_ca_file, min_version, max_version, "
        "prefer_server_cipher_suites, client_allowed_sans, cipher_suites)"),
    "a cipher suite that is not forward-secret AEAD": (
        tls(cipher_suites=["TLS_RSA_WITH_AES_128_CBC_SHA"]),
        "tls_server_config.cipher_suites: not supported: TLS_RSA_WITH_AES_128_CBC_SHA "
        "(supported: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, "
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, "
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)"),
    "allowed SANs without verified client certificates": (
        tls(client_auth_type="VerifyClientCertIfGiven", client_ca_file="ca.crt",
            client_allowed_sans=["prometheus.example"]),
        "tls_server_config.client_allowed_sans: needs client_auth_type: "
        "RequireAndVerifyClientCert"),
    "allowed SANs not a list": (
        tls(client_auth_type="RequireAndVerifyClientCert", client_ca_file="ca.crt",
            client_allowed_sans="prometheus.example"),
        "tls_server_config.client_allowed_sans: expected a list of SANs (DNS names, IP "
        "addresses, emails or URIs)"),
    "unknown section": (
        {"basic_auth": {"a": HASH}},
        "basic_auth: unknown key (known keys: tls_server_config, http_server_config, "
        "basic_auth_users)"),
    "plain password instead of a bcrypt hash": (
        {"basic_auth_users": {"alice": "s3cret-plain"}},
        "basic_auth_users.alice: not a bcrypt hash (make one with: htpasswd -nBC 10 \"\" | "
        "tr -d ':\\n')"),
    "unknown client auth type": (
        tls(client_auth_type="RequireCert", client_ca_file="ca.crt"),
        "tls_server_config.client_auth_type: expected one of NoClientCert, "
        "VerifyClientCertIfGiven, RequireAndVerifyClientCert, got 'RequireCert'"),
    "client auth type that would not verify": (
        tls(client_auth_type="RequireAnyClientCert", client_ca_file="ca.crt"),
        "tls_server_config.client_auth_type: RequireAnyClientCert is not supported by "
        "usage-exporter (it would accept a client certificate without verifying it); use "
        "RequireAndVerifyClientCert with client_ca_file"),
    "client certificates verified against nothing": (
        tls(client_auth_type="RequireAndVerifyClientCert"),
        "tls_server_config.client_ca_file: is required to verify client certificates"),
    "client CA without asking for certificates": (
        tls(client_ca_file="ca.crt"),
        "tls_server_config.client_ca_file: is set but client_auth_type is NoClientCert: set "
        "client_auth_type: RequireAndVerifyClientCert"),
    "key of another certificate": (
        {"tls_server_config": {"cert_file": "server.crt", "key_file": "client.key"}},
        "tls_server_config.key_file: {dir}/client.key: does not belong to the certificate in "
        "cert_file"),
    "key where the certificate goes": (
        {"tls_server_config": {"cert_file": "server.key", "key_file": "server.key"}},
        "tls_server_config.cert_file: no PEM certificate in {dir}/server.key"),
    "TLS 1.1": (
        tls(min_version="TLS11"),
        "tls_server_config.min_version: TLS11 is not supported (TLS 1.0 and 1.1 are "
        "insecure); use TLS12 or TLS13"),
    "versions upside down": (
        tls(min_version="TLS13", max_version="TLS12"),
        "tls_server_config.min_version: is above max_version"),
    "inline certificate": (
        {"tls_server_config": {"cert": "-----BEGIN CERTIFICATE-----", "key_file": "server.key",
                               "cert_file": "server.crt"}},
        "tls_server_config.cert: inline PEM is not supported by usage-exporter; give "
        "cert_file"),
    "rate limit": (
        {"rate_limit": {"interval": "1s", "burst": 5}},
        "rate_limit: is not supported by usage-exporter; rate-limit in a reverse proxy"),
    "header that cannot be set": (
        {"http_server_config": {"headers": {"Server": "nginx"}}},
        "http_server_config.headers.Server: cannot be set (these can: "
        "Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, "
        "Content-Security-Policy)"),
    "header value out of its list": (
        {"http_server_config": {"headers": {"X-Frame-Options": "allow-from x"}}},
        "http_server_config.headers.X-Frame-Options: expected one of deny, sameorigin, got "
        "'allow-from x'"),
    "not a mapping": (["tls_server_config"], "(top level): expected a mapping with "
                      "tls_server_config, http_server_config or basic_auth_users"),
}


@pytest.mark.parametrize("document, problem", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_web_config_gives_one_readable_problem(pki, document, problem):
    with pytest.raises(ConfigError) as raised:
        web_config(pki.directory, document)
    path = pki.directory / "web.yml"
    assert raised.value.problems == [f"{path}: {problem.format(dir=pki.directory)}"]


def test_an_empty_file_or_empty_tls_section_configures_nothing(pki):
    """As in the exporter-toolkit: TLS only when a TLS key is set."""
    (pki.directory / "empty.yml").write_text("")
    assert load_web_config(pki.directory / "empty.yml") == WebConfig()
    assert web_config(pki.directory, {"tls_server_config": {}}) == WebConfig()


def test_check_config_names_the_web_config_problem_and_summarises_a_good_one(pki, tmp_path):
    (tmp_path / "web.yml").write_text(yaml.safe_dump(
        {"tls_server_config": {"cert_file": str(pki.server.cert), "key_file": "missing.key"}}))
    config = write_config(tmp_path / "config.yaml", f"sqlite:///{NEXTCLOUD_DB}", free_port(),
                          extra="")
    config.write_text(config.read_text().replace("server:\n", "server:\n  web_config_file: "
                                                 "web.yml\n"))
    result = exporter("check-config", "--config", str(config))
    assert result.returncode == 2
    assert (f"  server.web_config_file: {tmp_path / 'web.yml'}: tls_server_config.key_file: "
            f"cannot read {tmp_path / 'missing.key'}: No such file or directory") \
        in result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    good = tmp_path / "good.yml"
    good.write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": str(pki.server.cert), "key_file": str(pki.server.key),
                              "client_auth_type": "RequireAndVerifyClientCert",
                              "client_ca_file": str(pki.ca.cert)},
        "basic_auth_users": {"prometheus": HASH}}))
    result = exporter("check-config", "--config", str(config), "--web.config.file", str(good))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(
        "  web config: TLS, client certificates required, basic auth (1 user(s))")


# --- the daemon, end to end ------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(pki, tmp_path_factory, nextcloud_now) -> Iterator[StartedDaemon]:
    """The real daemon behind TLS with client certificates and basic auth."""
    directory = tmp_path_factory.mktemp("daemon")
    (directory / "web.yml").write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": str(pki.server.cert), "key_file": str(pki.server.key),
                              "client_auth_type": "RequireAndVerifyClientCert",
                              "client_ca_file": str(pki.ca.cert), "min_version": "TLS12"},
        "http_server_config": {"headers": {"Strict-Transport-Security": "max-age=600"}},
        "basic_auth_users": {"prometheus": HASH}}))
    port = free_port()
    config = write_config(directory / "config.yaml", f"sqlite:///{NEXTCLOUD_DB}", port)
    config.write_text(config.read_text().replace("server:\n",
                                                 "server:\n  web_config_file: web.yml\n"))
    log_path = directory / "daemon.log"
    with ready_daemon(config, log_path, f"https://127.0.0.1:{port}", as_of=nextcloud_now,
                      context=pki.client_context(pki.client)) as process:
        yield StartedDaemon(f"https://127.0.0.1:{port}", process, log_path)


def test_the_daemon_serves_metrics_over_tls_to_a_certified_client_with_the_password(daemon, pki):
    context = pki.client_context(pki.client)
    answer = get(daemon.port, "/metrics", context, Authorization=basic("prometheus", PASSWORD))
    assert answer.status == 200
    assert answer.headers["Strict-Transport-Security"] == "max-age=600"
    assert b'usage_users{status="enabled"} ' in answer.body
    assert get(daemon.port, "/metrics", context).status == 401
    assert unanswered(daemon.port, pki.client_context())


def test_prometheus_scrapes_the_daemon_over_tls_with_basic_auth(daemon, pki, prometheus_server):
    target = {"static_configs": [{"targets": [f"127.0.0.1:{daemon.port}"]}], "scheme": "https",
              "tls_config": {"ca_file": str(pki.ca.cert), "cert_file": str(pki.client.cert),
                             "key_file": str(pki.client.key)}}
    prometheus = prometheus_server(config={
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            {"job_name": "usage-exporter", **target,
             "basic_auth": {"username": "prometheus", "password": PASSWORD}},
            {"job_name": "wrong-password", **target,
             "basic_auth": {"username": "prometheus", "password": "guess"}},
        ]})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(prometheus.query("up")) < 2:
        time.sleep(0.5)
    up = {r["metric"]["job"]: r["value"][1] for r in prometheus.query("up")}
    assert up == {"usage-exporter": "1", "wrong-password": "0"}
    scraped = get(daemon.port, "/metrics", pki.client_context(pki.client),
                  Authorization=basic("prometheus", PASSWORD)).body.decode()
    enabled = next(line.split()[-1] for line in scraped.splitlines()
                   if line.startswith('usage_users{status="enabled"}'))
    stored = prometheus.query('usage_users{job="usage-exporter",status="enabled"}')
    assert [float(r["value"][1]) for r in stored] == [float(enabled)]


def test_the_daemon_logs_an_https_address_and_stops_on_sigterm(daemon):
    daemon.process.send_signal(signal.SIGTERM)
    daemon.process.wait(timeout=10)
    assert daemon.process.returncode == 0
    log = daemon.log_path.read_text()
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert events[0]["event"] == "listening"
    assert events[0]["url"] == f"https://127.0.0.1:{daemon.port}"
    assert events[-1]["event"] == "stopped"


def test_the_readme_example_is_a_valid_web_config(pki, tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### TLS and basic auth"):]
    example = section[section.index("```yaml\n") + 8:section.index("```\n", 8)]
    for name, issued in (("server.crt", pki.server.cert), ("server.key", pki.server.key),
                         ("clients-ca.crt", pki.ca.cert)):
        (tmp_path / name).write_bytes(issued.read_bytes())
    (tmp_path / "web.yml").write_text(example)
    assert load_web_config(tmp_path / "web.yml").summary() == (
        "TLS, client certificates required, basic auth (1 user(s)), 1 header(s)")
