#!/usr/bin/env python3
"""Interop tests: the Flask quickstart logs in against a real Portcullis server,
and Auth0's own Python SDK (auth0-python) drives its Management API.

The runner applies a tenant file to a fresh SQLite database, starts
`portcullis serve` and examples/flask-quickstart/app.py on free loopback ports,
and plays the browser with a requests.Session (cookies kept, redirects followed
by hand so each hop can be checked).

The SDK only speaks https, so the Management API tests start a second
Portcullis (its own tenant file and database) serving TLS with a self-signed
certificate for `localhost`, generated into the temporary directory, and point
REQUESTS_CA_BUNDLE (the SDK's Authentication API client, requests) and
SSL_CERT_FILE (its Management API client, httpx) at it. That server is started
by the first test that needs it.

    python tests/interop/run_interop.py --portcullis target/debug/portcullis

Each test prints `PASS name` or `FAIL name: reason`; the last line is
`N passed, N failed`, and the exit status is non-zero on any failure.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import ipaddress
import json
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

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


class Failure(Exception):
    """A check that did not hold; the message is the reason printed."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise Failure(message)


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@contextmanager
def trusting(cert: Path) -> Iterator[None]:
    """Make `cert` the CA bundle of requests (REQUESTS_CA_BUNDLE) and of httpx and the
    ssl module (SSL_CERT_FILE) while the block runs; the previous values come back after.
    httpx reads SSL_CERT_FILE when a client is created, so create SDK objects inside."""
    names = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: str(cert) for name in names})
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
# The browser
# ---------------------------------------------------------------------------


@dataclass
class Form:
    action: str | None
    method: str
    fields: list[dict[str, str]] = field(default_factory=list)  # attributes of <input>/<button>


VOID_ELEMENTS = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr",
}


class PageParser(HTMLParser):
    """Collects forms with their fields, the page's visible text, and the text of
    elements marked as messages (role="alert", or a class naming error/alert)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.text: list[str] = []
        self.alert_text: list[str] = []
        self._form: Form | None = None
        self._open: list[tuple[str, bool]] = []  # (tag, is_alert) of open elements

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._form = Form(a.get("action"), (a.get("method") or "get").lower())
            self.forms.append(self._form)
        elif tag in ("input", "button") and self._form is not None:
            self._form.fields.append({"_tag": tag, **a})
        if tag not in VOID_ELEMENTS:
            classes = a.get("class", "").lower()
            is_alert = a.get("role") == "alert" or "error" in classes or "alert" in classes
            self._open.append((tag, is_alert))

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        for i in range(len(self._open) - 1, -1, -1):  # tolerate unclosed elements
            if self._open[i][0] == tag:
                del self._open[i:]
                break

    def handle_data(self, data):
        data = data.strip()
        if not data or any(tag in ("script", "style", "template") for tag, _ in self._open):
            return
        self.text.append(data)
        if any(is_alert for _, is_alert in self._open):
            self.alert_text.append(data)


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


def login_form(page: PageParser) -> Form | None:
    """The first POST form that asks for a password."""
    for form in page.forms:
        if form.method == "post" and any(f.get("type", "").lower() == "password" for f in form.fields):
            return form
    return None


def describe(response: requests.Response) -> str:
    body = response.text[:300].replace("\n", " ") if response.text else ""
    return f"{response.request.method} {response.url} -> {response.status_code} {body!r}"


class Browser:
    """A cookie-keeping client that follows redirects by hand and records each hop."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "portcullis-interop/1"
        self.hops: list[str] = []

    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        response = self.session.request(
            method, url, allow_redirects=False, timeout=HTTP_TIMEOUT, **kwargs
        )
        self.hops.append(f"{method} {url} -> {response.status_code}")
        return response

    def get(self, url: str) -> requests.Response:
        return self.request("GET", url)

    def follow(
        self, response: requests.Response, stop: Callable[[str], bool] | None = None
    ) -> requests.Response:
        """Follow redirects (and auto-submitted form_post pages) until a page is reached,
        or until the next hop's URL satisfies `stop` (that hop is not requested)."""
        for _ in range(20):
            if response.is_redirect:
                target = urljoin(response.url, response.headers["Location"])
                if stop and stop(target):
                    return response
                if response.status_code in (307, 308):
                    response = self.request(response.request.method, target, data=response.request.body)
                else:
                    response = self.get(target)
                continue
            form = self._form_post(response)
            if form is None:
                return response
            target = urljoin(response.url, form.action or response.url)
            if stop and stop(target):
                return response
            data = {f["name"]: f.get("value", "") for f in form.fields if f.get("name")}
            response = self.request("POST", target, data=data)
        raise Failure("too many redirects: " + " | ".join(self.hops[-20:]))

    @staticmethod
    def _form_post(response: requests.Response) -> Form | None:
        """A response_mode=form_post page: a POST form of hidden fields carrying code/state."""
        if response.status_code != 200 or "html" not in response.headers.get("Content-Type", ""):
            return None
        for form in parse_page(response.text).forms:
            names = {f.get("name") for f in form.fields}
            hidden_only = all(
                f.get("type", "").lower() in ("hidden", "submit") or f["_tag"] == "button"
                for f in form.fields
            )
            if form.method == "post" and hidden_only and ({"code", "error"} & names):
                return form
        return None

    def submit_login(self, page: requests.Response, email: str, password: str) -> requests.Response:
        """Fill in and POST the login form shown on `page`; returns the direct answer."""
        form = login_form(parse_page(page.text))
        check(form is not None, f"no login form on {page.url}")
        data: list[tuple[str, str]] = []
        submit_sent = False
        for f in form.fields:
            name, kind = f.get("name"), f.get("type", "").lower()
            if not name:
                continue
            if kind in ("submit", "image") or f["_tag"] == "button":
                if not submit_sent and kind in ("submit", "image", ""):
                    data.append((name, f.get("value", "")))
                    submit_sent = True
                continue
            if kind in ("checkbox", "radio") and "checked" not in f:
                continue
            if kind == "password":
                data.append((name, password))
            elif kind == "email" or name.lower() in ("username", "email"):
                data.append((name, email))
            else:
                data.append((name, f.get("value", "")))
        action = urljoin(page.url, form.action or page.url)
        return self.request("POST", action, data=data)


# ---------------------------------------------------------------------------
# The environment the tests run in
# ---------------------------------------------------------------------------


@dataclass
class Management:
    """The second Portcullis, serving https on `localhost`, that the SDK talks to."""

    tmp: Path
    port: int
    cert: Path
    key: Path
    client_id: str = ""
    client_secret: str = ""
    _token: str = ""

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


@dataclass
class Env:
    portcullis: Path
    tmp: Path
    port: int
    flask_port: int
    admin_password: str
    mgmt_port: int = 0
    servers: list[Server] = field(default_factory=list)
    client_id: str = ""
    client_secret: str = ""
    mgmt: Management | None = None
    mgmt_error: str = ""

    @property
    def issuer_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def app(self) -> str:
        return f"http://127.0.0.1:{self.flask_port}"

    @property
    def database(self) -> str:
        return f"sqlite://{self.tmp / 'p.db'}"

    def on_portcullis(self, url: str) -> bool:
        return url.startswith(self.issuer_base + "/")

    def on_app(self, url: str) -> bool:
        return url.startswith(self.app + "/")

    def cli_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        return env

    def setup(self) -> None:
        tenant = self.tmp / "tenant.yaml"
        tenant.write_text(TENANT_YAML.replace("FLASKPORT", str(self.flask_port)))

        apply_env = self.cli_env()
        apply_env["INTEROP_ADMIN_PASSWORD"] = self.admin_password
        run_cli(
            [str(self.portcullis), "apply", "--database", self.database, str(tenant)],
            apply_env,
            "portcullis apply",
        )

        server = Server("portcullis", self.tmp / "portcullis.log")
        self.servers.append(server)
        server.start(
            [
                str(self.portcullis), "serve",
                "--database", self.database,
                "--listen", f"127.0.0.1:{self.port}",
                "--issuer", f"{self.issuer_base}/",
                "--data-dir", str(self.tmp),
            ],
            self.cli_env(),
            self.tmp,
        )
        server.wait_healthy(f"{self.issuer_base}/health")

        out = run_cli(
            [
                str(self.portcullis), "clients", "get", CLIENT_NAME, "--json",
                "--database", self.database, "--data-dir", str(self.tmp),
            ],
            self.cli_env(),
            "portcullis clients get",
        )
        try:
            client = parse_json_output(out)
            self.client_id, self.client_secret = client["client_id"], client["client_secret"]
        except (ValueError, KeyError, TypeError) as error:
            raise Failure(f"clients get printed no client_id/client_secret ({error}): {out!r}") from None

        flask_env = dict(os.environ)
        flask_env.update(
            AUTH0_DOMAIN=self.issuer_base,
            AUTH0_CLIENT_ID=self.client_id,
            AUTH0_CLIENT_SECRET=self.client_secret,
            AUTH0_CALLBACK_URL=f"{self.app}/callback",
            APP_SECRET_KEY=secrets.token_hex(32),
            ROLES_CLAIM=ROLES_CLAIM,
            PORT=str(self.flask_port),
            PYTHONUNBUFFERED="1",
        )
        flask = Server("flask-quickstart", self.tmp / "flask.log")
        self.servers.append(flask)
        flask.start([sys.executable, str(FLASK_APP)], flask_env, self.tmp)
        flask.wait_healthy(f"{self.app}/health")

    def management(self) -> Management:
        """The https server for the SDK tests, started on first use (once: a failed start
        is remembered and fails the later tests at once)."""
        if self.mgmt_error:
            raise Failure(f"management server not available: {self.mgmt_error}")
        if self.mgmt is None:
            try:
                self.mgmt = self._start_management()
            except Exception as error:
                self.mgmt_error = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise
        return self.mgmt

    def _start_management(self) -> Management:
        cert, key = write_self_signed_certificate(self.tmp)
        mgmt = Management(self.tmp, self.mgmt_port, cert, key)
        tenant = self.tmp / "mgmt-tenant.yaml"
        tenant.write_text(MGMT_TENANT_YAML.replace("MGMTPORT", str(mgmt.port)))
        common = ["--database", mgmt.database, "--data-dir", str(self.tmp)]
        # The Management API's identifier is `{issuer}api/v2/`, so apply needs the issuer
        # to resolve the client grant's audience.
        run_cli(
            [str(self.portcullis), "apply", *common, "--issuer", f"{mgmt.base}/", str(tenant)],
            self.cli_env(),
            "portcullis apply (management tenant)",
        )

        server = Server("portcullis-mgmt", self.tmp / "portcullis-mgmt.log")
        self.servers.append(server)
        server.start(
            [
                str(self.portcullis), "serve",
                "--listen", f"127.0.0.1:{mgmt.port}",
                *common,
                "--issuer", f"{mgmt.base}/",
                "--tls-cert", str(cert),
                "--tls-key", str(key),
            ],
            self.cli_env(),
            self.tmp,
        )
        server.wait_healthy(f"{mgmt.base}/health", verify=str(cert))

        out = run_cli(
            [str(self.portcullis), "clients", "get", MGMT_CLIENT_NAME, "--json", *common],
            self.cli_env(),
            "portcullis clients get (management client)",
        )
        try:
            client = parse_json_output(out)
            mgmt.client_id, mgmt.client_secret = client["client_id"], client["client_secret"]
        except (ValueError, KeyError, TypeError) as error:
            raise Failure(f"clients get printed no client_id/client_secret ({error}): {out!r}") from None
        return mgmt

    def teardown(self) -> None:
        for server in reversed(self.servers):
            server.stop()

    def print_logs(self) -> None:
        for server in self.servers:
            print(f"--- last lines of {server.name} log ({server.log}) ---")
            print(tail(server.log))

    # -- flows ---------------------------------------------------------------

    def start_login(self, browser: Browser) -> requests.Response:
        """GET the app's /login and follow redirects until a page or the app answers."""
        response = browser.get(f"{self.app}/login")
        check(response.is_redirect, f"/login did not redirect: {describe(response)}")
        location = urljoin(response.url, response.headers["Location"])
        check(
            location.startswith(f"{self.issuer_base}/authorize"),
            f"/login redirected to {location}, not to {self.issuer_base}/authorize",
        )
        return browser.follow(response)

    def login(self, browser: Browser, email: str, password: str) -> dict:
        """A full login through the form; returns the app's /dashboard JSON."""
        page = self.start_login(browser)
        check(
            page.status_code == 200 and self.on_portcullis(page.url),
            f"expected the login page, got {describe(page)}",
        )
        answer = browser.submit_login(page, email, password)
        final = browser.follow(answer)
        return self.expect_dashboard(browser, final)

    def expect_dashboard(self, browser: Browser, final: requests.Response) -> dict:
        check(
            final.url == f"{self.app}/dashboard" and final.status_code == 200,
            f"login did not end on the dashboard: {describe(final)}; hops: {' | '.join(browser.hops)}",
        )
        check(
            any(f" {self.app}/callback" in hop for hop in browser.hops),
            "the login never came back through the app's /callback",
        )
        try:
            return final.json()
        except ValueError:
            raise Failure(f"/dashboard is not JSON: {describe(final)}") from None


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

TESTS: list[tuple[str, Callable[[Env], None]]] = []


def test(fn: Callable[[Env], None]) -> Callable[[Env], None]:
    TESTS.append((fn.__name__, fn))
    return fn


@test
def discovery_document_names_issuer_and_endpoints(env: Env) -> None:
    response = requests.get(f"{env.issuer_base}/.well-known/openid-configuration", timeout=HTTP_TIMEOUT)
    check(response.status_code == 200, f"discovery: {describe(response)}")
    doc = response.json()
    base = env.issuer_base
    expected = {
        "issuer": f"{base}/",
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "userinfo_endpoint": f"{base}/userinfo",
        "jwks_uri": f"{base}/.well-known/jwks.json",
    }
    for key, value in expected.items():
        check(doc.get(key) == value, f"{key} is {doc.get(key)!r}, expected {value!r}")
    jwks = requests.get(doc["jwks_uri"], timeout=HTTP_TIMEOUT)
    check(jwks.status_code == 200, f"jwks: {describe(jwks)}")
    keys = jwks.json().get("keys")
    check(isinstance(keys, list) and keys, f"jwks has no keys: {jwks.text[:300]!r}")


@test
def user_logs_in_and_sees_dashboard(env: Env) -> None:
    profile = env.login(Browser(), *USER)
    check(profile.get("email") == USER[0], f"email is {profile.get('email')!r}")
    check(profile.get("name") == "Uma User", f"name is {profile.get('name')!r}")
    user_id = profile.get("user_id") or ""
    check(user_id.startswith("auth0|"), f"user_id {user_id!r} does not start with 'auth0|'")
    check(profile.get("roles") == [], f"plain user has roles {profile.get('roles')!r}")


@test
def plain_user_is_forbidden_from_admin(env: Env) -> None:
    browser = Browser()
    env.login(browser, *USER)
    response = browser.get(f"{env.app}/admin")
    check(response.status_code == 403, f"/admin: {describe(response)}")


@test
def admin_logs_in_and_reaches_admin(env: Env) -> None:
    browser = Browser()
    profile = env.login(browser, ADMIN_EMAIL, env.admin_password)
    check(profile.get("email") == ADMIN_EMAIL, f"email is {profile.get('email')!r}")
    check("admin" in (profile.get("roles") or []), f"roles are {profile.get('roles')!r}")
    response = browser.get(f"{env.app}/admin")
    check(response.status_code == 200, f"/admin: {describe(response)}")
    check(
        response.json() == {"message": "Welcome to admin dashboard"},
        f"/admin body: {response.text[:300]!r}",
    )


@test
def second_login_uses_sso_session_without_form(env: Env) -> None:
    browser = Browser()
    first = env.login(browser, *USER)
    browser.hops.clear()
    final = env.start_login(browser)
    check(
        not any(hop.startswith("POST ") for hop in browser.hops),
        f"second login posted something: {' | '.join(browser.hops)}",
    )
    check(
        login_form(parse_page(final.text)) is None or not env.on_portcullis(final.url),
        f"second login showed a login form: {describe(final)}",
    )
    second = env.expect_dashboard(browser, final)
    check(second.get("user_id") == first.get("user_id"), f"SSO login as {second!r}, expected {first!r}")


@test
def logout_ends_app_and_sso_sessions(env: Env) -> None:
    browser = Browser()
    env.login(browser, *USER)

    response = browser.get(f"{env.app}/logout")
    check(response.is_redirect, f"/logout: {describe(response)}")
    location = urljoin(response.url, response.headers["Location"])
    check(location.startswith(f"{env.issuer_base}/v2/logout?"), f"/logout redirected to {location}")
    query = parse_qs(urlsplit(location).query)
    check(query.get("client_id") == [env.client_id], f"logout URL lacks client_id: {location}")

    response = browser.get(location)
    check(response.is_redirect, f"/v2/logout did not redirect: {describe(response)}")
    back = urljoin(response.url, response.headers["Location"])
    check(back == f"{env.app}/", f"/v2/logout redirected to {back!r}, expected {env.app + '/'!r}")
    home = browser.get(back)
    check(home.status_code == 200 and "Log in" in home.text, f"home after logout: {describe(home)}")

    response = browser.get(f"{env.app}/dashboard")
    check(response.is_redirect, f"/dashboard after logout: {describe(response)}")
    check(
        urljoin(response.url, response.headers["Location"]) == f"{env.app}/login",
        f"/dashboard after logout redirected to {response.headers['Location']}",
    )

    page = env.start_login(browser)
    check(
        page.status_code == 200 and env.on_portcullis(page.url) and login_form(parse_page(page.text)),
        f"after logout /authorize did not show the login form: {describe(page)}",
    )


@test
def wrong_password_shows_error_on_login_page(env: Env) -> None:
    browser = Browser()
    page = env.start_login(browser)
    check(login_form(parse_page(page.text)) is not None, f"no login form: {describe(page)}")
    answer = browser.submit_login(page, USER[0], "not the password")
    # A redirect back to another Portcullis page (post/redirect/get) is fine;
    # anything heading for the app is not.
    final = browser.follow(answer, stop=lambda url: not env.on_portcullis(url))
    check(
        not final.is_redirect,
        f"wrong password redirected to {final.headers.get('Location')}",
    )
    check(
        final.status_code == 200 or 400 <= final.status_code < 500,
        f"wrong password answered {describe(final)}",
    )
    parsed = parse_page(final.text)
    check(login_form(parsed) is not None, f"wrong password did not re-render the login form: {describe(final)}")
    text = " ".join(parsed.text).lower()
    check(
        parsed.alert_text or any(word in text for word in ("wrong", "invalid", "incorrect")),
        f"no error message on the re-rendered login page: {' '.join(parsed.text)[:300]!r}",
    )
    check(
        not any(f"{env.app}/callback" in hop for hop in browser.hops),
        f"wrong password reached the callback: {' | '.join(browser.hops)}",
    )


@test
def unregistered_redirect_uri_gets_error_page(env: Env) -> None:
    for redirect_uri in ("https://attacker.example/callback", f"{env.app}/callback-evil"):
        params = {
            "client_id": env.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": "openid profile email",
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
        }
        response = Browser().get(f"{env.issuer_base}/authorize?{urlencode(params)}")
        check(
            400 <= response.status_code < 500,
            f"redirect_uri={redirect_uri}: expected a 4xx error page, got {describe(response)}",
        )
        check("Location" not in response.headers, f"redirect_uri={redirect_uri}: has a Location header")
        check(
            "text/html" in response.headers.get("Content-Type", ""),
            f"redirect_uri={redirect_uri}: Content-Type {response.headers.get('Content-Type')!r}",
        )


# -- Management API through auth0-python -------------------------------------


# The SDK retries 408, 409, 429 and 5xx with back-off (twice by default), so a call that
# is meant to get a 409 would otherwise be sent three times and take seconds.
NO_RETRY = {"max_retries": 0}


def expect_api_error(call: Callable[[], object], status: int, what: str):
    """Run an SDK Management API call that must fail with `status`; returns the SDK's
    exception (an auth0.management.core.api_error.ApiError) after checking its body
    is Auth0's error object for that status."""
    from auth0.management.core.api_error import ApiError

    try:
        result = call()
    except ApiError as error:
        check(
            error.status_code == status,
            f"{what}: the SDK raised {type(error).__name__} with status {error.status_code}, "
            f"expected {status}; body {error.body!r}",
        )
        body = error.body
        check(
            isinstance(body, dict) and body.get("statusCode") == status
            and body.get("error") and body.get("message"),
            f"{what}: error body is not Auth0's {{statusCode, error, message}}: {body!r}",
        )
        return error
    raise Failure(f"{what}: expected a {status} error, the SDK returned {result!r}")


@contextmanager
def sdk_user(client, email: str, **fields) -> Iterator:
    """A user created through the SDK, deleted again afterwards (a 204 even if the test
    deleted it already)."""
    user = client.users.create(
        connection=DB_CONNECTION, email=email, password="Pw-" + secrets.token_urlsafe(12) + "-9", **fields
    )
    check(user.user_id, f"users.create returned no user_id: {user!r}")
    try:
        yield user
    finally:
        try:
            client.users.delete(user.user_id)
        except Exception as error:  # noqa: BLE001 - cleanup must not hide the test's outcome
            print(f"  (cleanup: deleting {user.user_id} failed: {error})")


def sdk_email() -> str:
    return f"sdk-{secrets.token_hex(5)}@example.com"


@test
def sdk_client_credentials_token_for_management_api(env: Env) -> None:
    from auth0.authentication import GetToken
    from auth0.authentication.exceptions import Auth0Error

    mgmt = env.management()
    answer = mgmt.request_token()
    check(isinstance(answer, dict) and answer.get("access_token"), f"token answer: {answer!r}")
    check(str(answer.get("token_type", "")).lower() == "bearer", f"token_type is {answer.get('token_type')!r}")
    check(
        isinstance(answer.get("expires_in"), int) and answer["expires_in"] > 0,
        f"expires_in is {answer.get('expires_in')!r}",
    )
    claims = jwt_claims(answer["access_token"])
    audiences = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
    check(mgmt.audience in audiences, f"aud is {claims.get('aud')!r}, expected {mgmt.audience!r}")
    check(claims.get("iss") == f"{mgmt.base}/", f"iss is {claims.get('iss')!r}")
    granted = set(str(claims.get("scope", "")).split())
    check(set(MGMT_SCOPES) <= granted, f"scope lacks {sorted(set(MGMT_SCOPES) - granted)}: {claims.get('scope')!r}")

    with trusting(mgmt.cert):
        wrong = GetToken(mgmt.domain, mgmt.client_id, client_secret="not-the-secret")
        try:
            result = wrong.client_credentials(mgmt.audience)
        except Auth0Error as error:
            check(error.status_code == 401, f"wrong secret: status {error.status_code} ({error})")
            check(error.error_code, f"wrong secret: no error code in {error}")
        else:
            raise Failure(f"wrong secret got a token: {result!r}")


@test
def sdk_signs_up_and_asks_for_a_password_reset(env: Env) -> None:
    """Auth0's Python SDK against /dbconnections: signup answers Auth0's shapes (a weak
    password is `invalid_password` with its rules), and change_password answers the same
    text for known and unknown emails while only the known one gets a reset email (the
    server has no SMTP settings, so it lands in the outbox)."""
    from auth0.authentication import Database
    from auth0.authentication.exceptions import Auth0Error

    mgmt = env.management()
    email = sdk_email()
    with trusting(mgmt.cert):
        db = Database(mgmt.domain, mgmt.client_id)
        try:
            db.signup(email=email, password="x7Qz", connection=DB_CONNECTION)
        except Auth0Error as error:
            check(error.status_code == 400, f"weak password: status {error.status_code}")
            check(error.error_code == "invalid_password", f"weak password: code {error.error_code!r}")
        else:
            raise Failure("a weak password was accepted")
        created = db.signup(email=email, password="Velvet-otter-52-kayak", connection=DB_CONNECTION, name="Sam Signup")
        check(created.get("email") == email and created.get("email_verified") is False, f"signup answer: {created!r}")
        check(created.get("_id") and not str(created["_id"]).startswith("auth0|"), f"_id is {created.get('_id')!r}")
        try:
            db.signup(email=email, password="Velvet-otter-52-kayak", connection=DB_CONNECTION)
        except Auth0Error as error:
            check(error.error_code == "invalid_signup", f"a second signup: code {error.error_code!r}")
        else:
            raise Failure("the same email signed up twice")
        known = db.change_password(email=email, connection=DB_CONNECTION)
        unknown = db.change_password(email=sdk_email(), connection=DB_CONNECTION)
        check(known == unknown == "We've just sent you an email to reset your password.", f"answers: {known!r} / {unknown!r}")
    outbox = env.tmp / "outbox"
    deadline = time.monotonic() + 10
    found = []
    while time.monotonic() < deadline:
        found = [p for p in outbox.glob("*reset_password*.eml") if email in p.read_text(errors="replace")]
        if found:
            break
        time.sleep(0.2)
    check(len(found) == 1, f"one reset email for {email} in {outbox}: {found}")


@test
def sdk_creates_finds_updates_and_deletes_user(env: Env) -> None:
    mgmt = env.management()
    email = sdk_email()
    with mgmt.client() as client, sdk_user(
        client, email, name="Sam Sdk", app_metadata={"plan": "silver", "team": "blue"}
    ) as created:
        user_id = created.user_id
        check(user_id.startswith("auth0|"), f"user_id {user_id!r} does not start with 'auth0|'")
        check(created.email == email, f"created email is {created.email!r}")
        check(created.name == "Sam Sdk", f"created name is {created.name!r}")
        check(created.blocked in (None, False), f"new user is blocked: {created.blocked!r}")
        check(
            created.app_metadata == {"plan": "silver", "team": "blue"},
            f"created app_metadata is {created.app_metadata!r}",
        )
        identities = [(i.provider, i.connection) for i in created.identities or []]
        check(identities == [("auth0", DB_CONNECTION)], f"identities are {identities!r}")

        fetched = client.users.get(user_id)
        check(
            (fetched.user_id, fetched.email, fetched.name) == (user_id, email, "Sam Sdk"),
            f"users.get returned {fetched!r}",
        )

        by_email = client.users.list_users_by_email(email=email)
        check([u.user_id for u in by_email] == [user_id], f"users-by-email found {by_email!r}")

        pager = client.users.list(q=f'email:"{email}"', search_engine="v3")
        check([u.user_id for u in pager.items] == [user_id], f"users.list(q=email) found {pager.items!r}")
        check(pager.response.total == 1, f"users.list total is {pager.response.total!r}")
        # Iterating the pager asks for the next page until one comes back empty.
        check([u.user_id for u in pager] == [user_id], "iterating users.list did not end after one user")

        blocked = client.users.update(user_id, blocked=True)
        check(blocked.blocked is True, f"update(blocked=True) returned blocked={blocked.blocked!r}")
        check(client.users.get(user_id).blocked is True, "users.get does not show the user blocked")

        merged = client.users.update(user_id, app_metadata={"plan": "gold"})
        check(
            merged.app_metadata == {"plan": "gold", "team": "blue"},
            f"app_metadata was not merged: {merged.app_metadata!r}",
        )
        gold = client.users.list(q='app_metadata.plan:"gold"')
        check(user_id in [u.user_id for u in gold.items], f"q=app_metadata.plan found {gold.items!r}")

        client.users.delete(user_id)
        expect_api_error(lambda: client.users.get(user_id), 404, "users.get after delete")
        check(client.users.list_users_by_email(email=email) == [], "users-by-email still finds the deleted user")


@test
def sdk_manages_roles_and_role_members(env: Env) -> None:
    mgmt = env.management()
    with mgmt.client() as client, sdk_user(client, sdk_email(), name="Rita Roles") as user:
        roles = client.roles.list()
        admins = [r for r in roles.items if r.name == "admin"]
        check(len(admins) == 1, f"roles.list has no single 'admin' role: {roles.items!r}")
        admin = admins[0]
        check(admin.description == "Administrators", f"admin description is {admin.description!r}")
        check(roles.response.total == len(roles.items), f"roles.list total is {roles.response.total!r}")
        check(client.roles.get(admin.id).name == "admin", "roles.get(admin id) is not 'admin'")

        def members() -> list[str]:
            # The SDK pages role members with checkpoints (take/from, "next").
            return [m.user_id for m in client.roles.users.list(admin.id)]

        client.users.roles.assign(user.user_id, roles=[admin.id])
        check(user.user_id in members(), f"roles.users.list(admin) lacks {user.user_id} after assigning")
        assigned = client.users.roles.list(user.user_id)
        check([r.name for r in assigned.items] == ["admin"], f"users.roles.list: {assigned.items!r}")
        check(list(client.users.permissions.list(user.user_id)) == [], "user has permissions")
        check(list(client.roles.permissions.list(admin.id)) == [], "admin role has permissions")

        client.users.roles.delete(user.user_id, roles=[admin.id])
        check(user.user_id not in members(), "user still a member of admin after users.roles.delete")
        check(client.users.roles.list(user.user_id).items == [], "role still assigned after users.roles.delete")
        expect_api_error(
            lambda: client.users.roles.assign(user.user_id, roles=["rol_doesnotexist0000"]),
            404,
            "assigning an unknown role",
        )

        name = f"sdk-{secrets.token_hex(4)}"
        role = client.roles.create(name=name, description="Made by the SDK")
        try:
            check(role.id and role.name == name, f"roles.create returned {role!r}")
            expect_api_error(
                lambda: client.roles.create(name=name, request_options=NO_RETRY),
                409,
                "creating a role with a taken name",
            )
            updated = client.roles.update(role.id, description="Changed by the SDK")
            check(updated.description == "Changed by the SDK", f"roles.update returned {updated!r}")
            found = client.roles.list(name_filter=name)
            check([r.id for r in found.items] == [role.id], f"roles.list(name_filter) found {found.items!r}")
        finally:
            client.roles.delete(role.id)
        expect_api_error(lambda: client.roles.get(role.id), 404, "roles.get after delete")


@test
def sdk_reports_management_api_errors(env: Env) -> None:
    from auth0.management.errors import BadRequestError, ConflictError, NotFoundError, UnauthorizedError

    mgmt = env.management()
    email = sdk_email()
    with mgmt.client() as client, sdk_user(client, email, name="Dee Duplicate"):
        error = expect_api_error(
            lambda: client.users.create(
                connection=DB_CONNECTION,
                email=email,
                password="Pw-" + secrets.token_urlsafe(12) + "-9",
                request_options=NO_RETRY,
            ),
            409,
            "creating a user with a taken email",
        )
        check(isinstance(error, ConflictError), f"taken email raised {type(error).__name__}")

        error = expect_api_error(
            lambda: client.users.create(connection=DB_CONNECTION, email=sdk_email(), password="short"),
            400,
            "creating a user with a short password",
        )
        check(isinstance(error, BadRequestError), f"short password raised {type(error).__name__}")

        error = expect_api_error(lambda: client.users.get("auth0|doesnotexist"), 404, "an unknown user")
        check(isinstance(error, NotFoundError), f"unknown user raised {type(error).__name__}")
        check(error.body.get("errorCode") == "inexistent_user", f"unknown user body: {error.body!r}")

    with mgmt.client(token="not-a-token") as client:
        error = expect_api_error(lambda: client.users.list(), 401, "a bad token")
        check(isinstance(error, UnauthorizedError), f"bad token raised {type(error).__name__}")


@test
def management_api_fuzzed_from_its_openapi_document_answers_no_5xx(env: Env) -> None:
    """Schema-driven fuzzing: schemathesis reads /api/v2/openapi.json and sends generated
    and mutated requests (coverage, fuzzing and stateful phases); no answer may be a 5xx.
    It runs last, because it creates, changes and deletes whatever it finds."""
    mgmt = env.management()
    token = mgmt.token()
    exe = Path(sys.executable).with_name("schemathesis")
    # A new seed each run explores new inputs; it is printed so a failure can be replayed
    # with PORTCULLIS_SCHEMATHESIS_SEED=<seed>.
    seed = os.environ.get("PORTCULLIS_SCHEMATHESIS_SEED") or str(random.SystemRandom().randrange(1, 2**31))
    examples = os.environ.get("PORTCULLIS_SCHEMATHESIS_EXAMPLES", "100")
    print(f"    schemathesis: seed {seed}, {examples} examples per operation")
    result = subprocess.run(
        [
            str(exe), "run", f"{mgmt.base}/api/v2/openapi.json",
            "--checks", "not_a_server_error",
            "--header", f"Authorization: Bearer {token}",
            "--max-examples", examples,
            "--seed", seed,
            "--tls-verify", str(mgmt.cert),
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        # Its cache (.schemathesis/) goes to the run's scratch directory, not the repository.
        cwd=env.tmp,
    )
    summary = [line for line in result.stdout.splitlines() if "generated" in line or "passed" in line or "failed" in line]
    print("    schemathesis:", "; ".join(summary[-2:]))
    check(
        result.returncode == 0,
        f"schemathesis found a server error (replay with PORTCULLIS_SCHEMATHESIS_SEED={seed}):\n"
        + result.stdout[-4000:]
        + result.stderr[-2000:],
    )


# ---------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--portcullis", required=True, type=Path, help="the portcullis binary")
    parser.add_argument("-k", dest="select", help="run only tests whose name contains this")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    binary = args.portcullis.resolve()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        print(f"FAIL setup: {args.portcullis} is not an executable file")
        print("0 passed, 1 failed")
        return 1
    tests = [(name, fn) for name, fn in TESTS if not args.select or args.select in name]

    tmp = Path(tempfile.mkdtemp(prefix="portcullis-interop-"))
    port = free_port()
    flask_port = free_port()
    while flask_port == port:
        flask_port = free_port()
    mgmt_port = free_port()
    while mgmt_port in (port, flask_port):
        mgmt_port = free_port()
    env = Env(
        binary, tmp, port, flask_port,
        admin_password="Adm1n-" + secrets.token_urlsafe(18),
        mgmt_port=mgmt_port,
    )

    passed = failed = 0
    try:
        try:
            env.setup()
        except Exception as error:  # noqa: BLE001 - any setup error fails the run
            reason = str(error) if isinstance(error, Failure) else traceback.format_exc()
            print(f"FAIL setup: {reason}")
            for name, _ in tests:
                print(f"FAIL {name}: not run (setup failed)")
            failed = len(tests) or 1
        else:
            for name, fn in tests:
                try:
                    fn(env)
                except Failure as error:
                    failed += 1
                    print(f"FAIL {name}: {error}")
                except Exception:  # noqa: BLE001 - report and go on
                    failed += 1
                    print(f"FAIL {name}: {traceback.format_exc().strip()}")
                else:
                    passed += 1
                    print(f"PASS {name}")
                sys.stdout.flush()
    finally:
        env.teardown()
        if failed:
            env.print_logs()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
