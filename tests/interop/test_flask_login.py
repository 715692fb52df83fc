"""The Flask quickstart (examples/flask-quickstart) logging users in at Portcullis:
the dashboard, the admin page, single sign-on, logout, a wrong password, and an
unregistered redirect URI."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

from browser import Browser, Quickstart, describe, login_form, parse_page
from helpers import ADMIN_EMAIL, USER


def test_user_logs_in_and_sees_dashboard(quickstart: Quickstart) -> None:
    profile = quickstart.login(Browser(), *USER)
    assert profile.get("email") == USER[0], f"email is {profile.get('email')!r}"
    assert profile.get("name") == "Uma User", f"name is {profile.get('name')!r}"
    user_id = profile.get("user_id") or ""
    assert user_id.startswith("auth0|"), f"user_id {user_id!r} does not start with 'auth0|'"
    assert profile.get("roles") == [], f"plain user has roles {profile.get('roles')!r}"


def test_plain_user_is_forbidden_from_admin(quickstart: Quickstart) -> None:
    browser = Browser()
    quickstart.login(browser, *USER)
    response = browser.get(f"{quickstart.app}/admin")
    assert response.status_code == 403, f"/admin: {describe(response)}"


def test_admin_logs_in_and_reaches_admin(quickstart: Quickstart) -> None:
    browser = Browser()
    profile = quickstart.login(browser, ADMIN_EMAIL, quickstart.admin_password)
    assert profile.get("email") == ADMIN_EMAIL, f"email is {profile.get('email')!r}"
    assert "admin" in (profile.get("roles") or []), f"roles are {profile.get('roles')!r}"
    response = browser.get(f"{quickstart.app}/admin")
    assert response.status_code == 200, f"/admin: {describe(response)}"
    assert response.json() == {"message": "Welcome to admin dashboard"}, f"/admin body: {response.text[:300]!r}"


def test_second_login_uses_sso_session_without_form(quickstart: Quickstart) -> None:
    browser = Browser()
    first = quickstart.login(browser, *USER)
    browser.hops.clear()
    final = quickstart.start_login(browser)
    assert not any(
        hop.startswith("POST ") for hop in browser.hops
    ), f"second login posted something: {' | '.join(browser.hops)}"
    assert (
        login_form(parse_page(final.text)) is None or not quickstart.on_portcullis(final.url)
    ), f"second login showed a login form: {describe(final)}"
    second = quickstart.expect_dashboard(browser, final)
    assert second.get("user_id") == first.get("user_id"), f"SSO login as {second!r}, expected {first!r}"


def test_logout_ends_app_and_sso_sessions(quickstart: Quickstart) -> None:
    browser = Browser()
    quickstart.login(browser, *USER)

    response = browser.get(f"{quickstart.app}/logout")
    assert response.is_redirect, f"/logout: {describe(response)}"
    location = urljoin(response.url, response.headers["Location"])
    assert location.startswith(f"{quickstart.issuer_base}/v2/logout?"), f"/logout redirected to {location}"
    query = parse_qs(urlsplit(location).query)
    assert query.get("client_id") == [quickstart.client_id], f"logout URL lacks client_id: {location}"

    response = browser.get(location)
    assert response.is_redirect, f"/v2/logout did not redirect: {describe(response)}"
    back = urljoin(response.url, response.headers["Location"])
    assert back == f"{quickstart.app}/", f"/v2/logout redirected to {back!r}, expected {quickstart.app + '/'!r}"
    home = browser.get(back)
    assert home.status_code == 200 and "Log in" in home.text, f"home after logout: {describe(home)}"

    response = browser.get(f"{quickstart.app}/dashboard")
    assert response.is_redirect, f"/dashboard after logout: {describe(response)}"
    assert (
        urljoin(response.url, response.headers["Location"]) == f"{quickstart.app}/login"
    ), f"/dashboard after logout redirected to {response.headers['Location']}"

    page = quickstart.start_login(browser)
    assert (
        page.status_code == 200 and quickstart.on_portcullis(page.url) and login_form(parse_page(page.text))
    ), f"after logout /authorize did not show the login form: {describe(page)}"


def test_wrong_password_shows_error_on_login_page(quickstart: Quickstart) -> None:
    browser = Browser()
    page = quickstart.start_login(browser)
    assert login_form(parse_page(page.text)) is not None, f"no login form: {describe(page)}"
    answer = browser.submit_login(page, USER[0], "not the password")
    # A redirect back to another Portcullis page (post/redirect/get) is fine;
    # anything heading for the app is not.
    final = browser.follow(answer, stop=lambda url: not quickstart.on_portcullis(url))
    assert not final.is_redirect, f"wrong password redirected to {final.headers.get('Location')}"
    assert (
        final.status_code == 200 or 400 <= final.status_code < 500
    ), f"wrong password answered {describe(final)}"
    parsed = parse_page(final.text)
    assert login_form(parsed) is not None, f"wrong password did not re-render the login form: {describe(final)}"
    text = " ".join(parsed.text).lower()
    assert parsed.alert_text or any(
        word in text for word in ("wrong", "invalid", "incorrect")
    ), f"no error message on the re-rendered login page: {' '.join(parsed.text)[:300]!r}"
    assert not any(
        f"{quickstart.app}/callback" in hop for hop in browser.hops
    ), f"wrong password reached the callback: {' | '.join(browser.hops)}"


def test_unregistered_redirect_uri_gets_error_page(portcullis: Quickstart) -> None:
    """Needs only Portcullis: the app's callback URL is in the tenant, and no request
    reaches the app."""
    for redirect_uri in ("https://attacker.example/callback", f"{portcullis.app}/callback-evil"):
        params = {
            "client_id": portcullis.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": "openid profile email",
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
        }
        response = Browser().get(f"{portcullis.issuer_base}/authorize?{urlencode(params)}")
        assert (
            400 <= response.status_code < 500
        ), f"redirect_uri={redirect_uri}: expected a 4xx error page, got {describe(response)}"
        assert "Location" not in response.headers, f"redirect_uri={redirect_uri}: has a Location header"
        assert "text/html" in response.headers.get(
            "Content-Type", ""
        ), f"redirect_uri={redirect_uri}: Content-Type {response.headers.get('Content-Type')!r}"
