"""The browser the interop tests play: a requests.Session that keeps cookies and follows
redirects by hand so each hop can be checked, an HTML parser for forms and messages,
and the quickstart's login flows through Portcullis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable
from urllib.parse import urljoin

import requests

from helpers import HTTP_TIMEOUT, Failure, check


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


@dataclass
class Quickstart:
    """The plain-HTTP Portcullis with the quickstart's tenant applied, the Flask
    quickstart's address and client, and the login flows through that app. The
    `portcullis` fixture hands it out with the server running; the `quickstart`
    fixture, with the Flask app running too."""

    tmp: Path
    port: int
    flask_port: int
    admin_password: str = field(repr=False)
    client_id: str = ""
    client_secret: str = field(default="", repr=False)

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
