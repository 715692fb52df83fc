#!/usr/bin/env python3
"""Interop tests: the Flask quickstart logs in against a real Portcullis server.

The runner applies a tenant file to a fresh SQLite database, starts
`portcullis serve` and examples/flask-quickstart/app.py on free loopback ports,
and plays the browser with a requests.Session (cookies kept, redirects followed
by hand so each hop can be checked).

    python tests/interop/run_interop.py --portcullis target/debug/portcullis

Each test prints `PASS name` or `FAIL name: reason`; the last line is
`N passed, N failed`, and the exit status is non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable
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

    def wait_healthy(self, url: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            code = self.process.poll() if self.process else None
            if code is not None:
                raise Failure(f"{self.name} exited with status {code} before {url} answered")
            try:
                response = requests.get(url, timeout=2)
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
class Env:
    portcullis: Path
    tmp: Path
    port: int
    flask_port: int
    admin_password: str
    servers: list[Server] = field(default_factory=list)
    client_id: str = ""
    client_secret: str = ""

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
    env = Env(binary, tmp, port, flask_port, admin_password="Adm1n-" + secrets.token_urlsafe(18))

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
