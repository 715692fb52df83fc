"""What the interop tests share: the tenant files, the servers they start, the one-shot
Portcullis commands, the self-signed certificate, and the Management API server that
Auth0's Python SDK talks to. The browser and the login flows are in browser.py; the
fixtures that start everything are in conftest.py.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import re
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
FLASK_APP = REPO_ROOT / "examples" / "flask-quickstart" / "app.py"
CLIENT_NAME = "Flask Quickstart"
ROLES_CLAIM = "https://yourapp.com/roles"
USER = ("user@example.com", "correct horse battery staple")
ADMIN_EMAIL = "admin@example.com"
HTTP_TIMEOUT = 30
START_TIMEOUT = 30

TENANT_YAML = """\
tenant:
  friendly_name: Interop
  roles_claim: https://yourapp.com/roles
clients:
  - name: Flask Quickstart
    app_type: regular_web
    callbacks: ["http://127.0.0.1:FLASKPORT/callback"]
    allowed_logout_urls: ["http://127.0.0.1:FLASKPORT/"]
    grant_types: [authorization_code, refresh_token]
    token_endpoint_auth_method: client_secret_post
roles:
  - name: admin
    description: Administrators
users:
  - email: admin@example.com
    password: ${INTEROP_ADMIN_PASSWORD}
    email_verified: true
    name: Ada Admin
    roles: [admin]
  - email: user@example.com
    password: correct horse battery staple
    email_verified: true
    name: Uma User
"""

MGMT_CLIENT_NAME = "Admin Tool"
DB_CONNECTION = "Username-Password-Authentication"
MGMT_SCOPES = [
    "read:users", "create:users", "update:users", "delete:users",
    "read:roles", "create:roles", "update:roles", "delete:roles",
    "read:role_members", "create:role_members", "delete:role_members",
    "read:clients", "create:clients", "update:clients", "delete:clients",
    "read:client_keys", "update:client_keys",
    "read:resource_servers", "create:resource_servers", "update:resource_servers",
    "delete:resource_servers",
    "read:client_grants", "create:client_grants", "update:client_grants", "delete:client_grants",
    "read:logs",
    "read:attack_protection", "update:attack_protection", "create:user_tickets",
]

MGMT_TENANT_YAML = f"""\
tenant:
  roles_claim: https://yourapp.com/roles
clients:
  - name: {MGMT_CLIENT_NAME}
    app_type: non_interactive
clientGrants:
  - client_id: {MGMT_CLIENT_NAME}
    audience: https://localhost:MGMTPORT/api/v2/
    scope: [{", ".join(MGMT_SCOPES)}]
roles:
  - name: admin
    description: Administrators
"""


class Failure(AssertionError):
    """A check that did not hold; the message is the reason pytest reports."""


def check(condition: object, message: str) -> None:
    """`assert` for the helpers, which pytest does not rewrite: fails with `message`."""
    if not condition:
        raise Failure(message)


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Ports:
    """Free loopback ports, none handed out twice: a port is reserved before its server
    binds it (the tenant file names the Flask app's port before the app starts)."""

    given: set[int] = field(default_factory=set)

    def take(self) -> int:
        port = free_port()
        while port in self.given:
            port = free_port()
        self.given.add(port)
        return port


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as error:
        return f"(cannot read {path}: {error})"
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # colour codes
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


@dataclass
class Server:
    name: str
    log: Path
    process: subprocess.Popen | None = None

    def start(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_healthy(self, url: str, timeout: float = START_TIMEOUT, verify: bool | str = True) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            code = self.process.poll() if self.process else None
            if code is not None:
                raise Failure(f"{self.name} exited with status {code} before {url} answered")
            try:
                response = requests.get(url, timeout=2, verify=verify)
                if response.status_code == 200:
                    return
                last = f"status {response.status_code}"
            except requests.RequestException as error:
                last = type(error).__name__
            time.sleep(0.2)
        raise Failure(f"{self.name}: {url} not healthy after {timeout:.0f}s ({last})")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def cli_env() -> dict[str, str]:
    """The environment Portcullis commands and servers run with."""
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info")
    return env


def run_cli(argv: list[str], env: dict[str, str], what: str) -> str:
    """Run a one-shot Portcullis command; return its stdout or fail with its output."""
    try:
        done = subprocess.run(
            argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        raise Failure(f"{what} timed out: {' '.join(argv)}") from None
    if done.returncode != 0:
        raise Failure(
            f"{what} exited with status {done.returncode}: {' '.join(argv)}\n"
            f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}"
        )
    return done.stdout


def parse_json_output(text: str) -> dict:
    """The JSON object a command printed (tolerating log lines around it)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start != -1 and end > start:
            return json.loads(text[start : end + 1])
        raise


def client_credentials(out: str) -> tuple[str, str]:
    """The client_id and client_secret that `portcullis clients get --json` printed."""
    try:
        client = parse_json_output(out)
        return client["client_id"], client["client_secret"]
    except (ValueError, KeyError, TypeError) as error:
        raise Failure(f"clients get printed no client_id/client_secret ({error}): {out!r}") from None


# ---------------------------------------------------------------------------
# TLS and tokens
# ---------------------------------------------------------------------------


def write_self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for `localhost` and 127.0.0.1, valid for a day; returns
    the PEM certificate and its PKCS#8 private key. The certificate is its own trust
    anchor, so it is marked as a CA the way `openssl req -x509` marks one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "localhost.crt", directory / "localhost.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


# requests reads REQUESTS_CA_BUNDLE; httpx and the ssl module read SSL_CERT_FILE.
TRUST_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


@contextmanager
def trusting(cert: Path) -> Iterator[None]:
    """Make `cert` the CA bundle of requests (REQUESTS_CA_BUNDLE) and of httpx and the
    ssl module (SSL_CERT_FILE) while the block runs; the previous values come back after.
    httpx reads SSL_CERT_FILE when a client is created, so create SDK objects inside.
    (The `trust_mgmt` fixture does the same for a whole test.)"""
    saved = {name: os.environ.get(name) for name in TRUST_VARIABLES}
    os.environ.update({name: str(cert) for name in TRUST_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def jwt_claims(token: str) -> dict:
    """The payload of a JWT, not verified (the tests only look at what was issued)."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as error:
        raise Failure(f"access token is not a JWT ({error}): {token[:40]!r}...") from None


# ---------------------------------------------------------------------------
# The Management API server
# ---------------------------------------------------------------------------


@dataclass
class Management:
    """The second Portcullis, serving https on `localhost`, that the SDK talks to."""

    tmp: Path
    port: int
    cert: Path
    key: Path
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    _token: str = field(default="", repr=False)

    @property
    def domain(self) -> str:
        return f"localhost:{self.port}"

    @property
    def base(self) -> str:
        return f"https://{self.domain}"

    @property
    def audience(self) -> str:
        return f"{self.base}/api/v2/"

    @property
    def database(self) -> str:
        return f"sqlite://{self.tmp / 'mgmt.db'}"

    def request_token(self) -> dict:
        """The SDK's client-credentials grant for the Management API audience."""
        from auth0.authentication import GetToken

        with trusting(self.cert):
            token_client = GetToken(self.domain, self.client_id, client_secret=self.client_secret)
            return token_client.client_credentials(self.audience)

    def token(self) -> str:
        if not self._token:
            answer = self.request_token()
            check(isinstance(answer, dict) and answer.get("access_token"), f"no access_token in {answer!r}")
            self._token = answer["access_token"]
        return self._token

    @contextmanager
    def client(self, token: str | None = None) -> Iterator:
        """An SDK ManagementClient for this server, trusting its certificate while in use."""
        from auth0.management import ManagementClient

        with trusting(self.cert):
            yield ManagementClient(domain=self.domain, token=token if token is not None else self.token())
