"""Auth0's Python SDK (auth0-python) against the https Portcullis: the
client-credentials grant, /dbconnections, users, roles and role members, and the
Management API's errors."""

from __future__ import annotations

import secrets
import time
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator

import pytest

from helpers import DB_CONNECTION, MGMT_SCOPES, Management, jwt_claims

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
        assert error.status_code == status, (
            f"{what}: the SDK raised {type(error).__name__} with status {error.status_code}, "
            f"expected {status}; body {error.body!r}"
        )
        body = error.body
        assert (
            isinstance(body, dict) and body.get("statusCode") == status
            and body.get("error") and body.get("message")
        ), f"{what}: error body is not Auth0's {{statusCode, error, message}}: {body!r}"
        return error
    pytest.fail(f"{what}: expected a {status} error, the SDK returned {result!r}")


@contextmanager
def sdk_user(client, email: str, **fields) -> Iterator:
    """A user created through the SDK, deleted again afterwards (a 204 even if the test
    deleted it already)."""
    user = client.users.create(
        connection=DB_CONNECTION, email=email, password="Pw-" + secrets.token_urlsafe(12) + "-9", **fields
    )
    assert user.user_id, f"users.create returned no user_id: {user!r}"
    try:
        yield user
    finally:
        try:
            client.users.delete(user.user_id)
        except Exception as error:  # noqa: BLE001 - cleanup must not hide the test's outcome
            warnings.warn(f"cleanup: deleting {user.user_id} failed: {error}", stacklevel=1)


def sdk_email() -> str:
    return f"sdk-{secrets.token_hex(5)}@example.com"


def test_sdk_client_credentials_token_for_management_api(trust_mgmt: Management) -> None:
    from auth0.authentication import GetToken
    from auth0.authentication.exceptions import Auth0Error

    mgmt = trust_mgmt
    answer = mgmt.request_token()
    assert isinstance(answer, dict) and answer.get("access_token"), f"token answer: {answer!r}"
    assert str(answer.get("token_type", "")).lower() == "bearer", f"token_type is {answer.get('token_type')!r}"
    assert (
        isinstance(answer.get("expires_in"), int) and answer["expires_in"] > 0
    ), f"expires_in is {answer.get('expires_in')!r}"
    claims = jwt_claims(answer["access_token"])
    audiences = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
    assert mgmt.audience in audiences, f"aud is {claims.get('aud')!r}, expected {mgmt.audience!r}"
    assert claims.get("iss") == f"{mgmt.base}/", f"iss is {claims.get('iss')!r}"
    granted = set(str(claims.get("scope", "")).split())
    assert set(MGMT_SCOPES) <= granted, (
        f"scope lacks {sorted(set(MGMT_SCOPES) - granted)}: {claims.get('scope')!r}"
    )

    wrong = GetToken(mgmt.domain, mgmt.client_id, client_secret="not-the-secret")
    try:
        result = wrong.client_credentials(mgmt.audience)
    except Auth0Error as error:
        assert error.status_code == 401, f"wrong secret: status {error.status_code} ({error})"
        assert error.error_code, f"wrong secret: no error code in {error}"
    else:
        pytest.fail(f"wrong secret got a token: {result!r}")


def test_sdk_signs_up_and_asks_for_a_password_reset(trust_mgmt: Management) -> None:
    """Auth0's Python SDK against /dbconnections: signup answers Auth0's shapes (a weak
    password is `invalid_password` with its rules), and change_password answers the same
    text for known and unknown emails while only the known one gets a reset email (the
    server has no SMTP settings, so it lands in the outbox)."""
    from auth0.authentication import Database
    from auth0.authentication.exceptions import Auth0Error

    mgmt = trust_mgmt
    email = sdk_email()
    db = Database(mgmt.domain, mgmt.client_id)
    try:
        db.signup(email=email, password="x7Qz", connection=DB_CONNECTION)
    except Auth0Error as error:
        assert error.status_code == 400, f"weak password: status {error.status_code}"
        assert error.error_code == "invalid_password", f"weak password: code {error.error_code!r}"
    else:
        pytest.fail("a weak password was accepted")
    created = db.signup(email=email, password="Velvet-otter-52-kayak", connection=DB_CONNECTION, name="Sam Signup")
    assert created.get("email") == email and created.get("email_verified") is False, f"signup answer: {created!r}"
    assert created.get("_id") and not str(created["_id"]).startswith("auth0|"), f"_id is {created.get('_id')!r}"
    try:
        db.signup(email=email, password="Velvet-otter-52-kayak", connection=DB_CONNECTION)
    except Auth0Error as error:
        assert error.error_code == "invalid_signup", f"a second signup: code {error.error_code!r}"
    else:
        pytest.fail("the same email signed up twice")
    known = db.change_password(email=email, connection=DB_CONNECTION)
    unknown = db.change_password(email=sdk_email(), connection=DB_CONNECTION)
    assert (
        known == unknown == "We've just sent you an email to reset your password."
    ), f"answers: {known!r} / {unknown!r}"

    outbox = mgmt.tmp / "outbox"
    deadline = time.monotonic() + 10
    found = []
    while time.monotonic() < deadline:
        found = [p for p in outbox.glob("*reset_password*.eml") if email in p.read_text(errors="replace")]
        if found:
            break
        time.sleep(0.2)
    assert len(found) == 1, f"one reset email for {email} in {outbox}: {found}"


def test_sdk_creates_finds_updates_and_deletes_user(mgmt: Management) -> None:
    email = sdk_email()
    with mgmt.client() as client, sdk_user(
        client, email, name="Sam Sdk", app_metadata={"plan": "silver", "team": "blue"}
    ) as created:
        user_id = created.user_id
        assert user_id.startswith("auth0|"), f"user_id {user_id!r} does not start with 'auth0|'"
        assert created.email == email, f"created email is {created.email!r}"
        assert created.name == "Sam Sdk", f"created name is {created.name!r}"
        assert created.blocked in (None, False), f"new user is blocked: {created.blocked!r}"
        assert created.app_metadata == {"plan": "silver", "team": "blue"}, (
            f"created app_metadata is {created.app_metadata!r}"
        )
        identities = [(i.provider, i.connection) for i in created.identities or []]
        assert identities == [("auth0", DB_CONNECTION)], f"identities are {identities!r}"

        fetched = client.users.get(user_id)
        assert (
            (fetched.user_id, fetched.email, fetched.name) == (user_id, email, "Sam Sdk")
        ), f"users.get returned {fetched!r}"

        by_email = client.users.list_users_by_email(email=email)
        assert [u.user_id for u in by_email] == [user_id], f"users-by-email found {by_email!r}"

        pager = client.users.list(q=f'email:"{email}"', search_engine="v3")
        assert [u.user_id for u in pager.items] == [user_id], f"users.list(q=email) found {pager.items!r}"
        assert pager.response.total == 1, f"users.list total is {pager.response.total!r}"
        # Iterating the pager asks for the next page until one comes back empty.
        assert [u.user_id for u in pager] == [user_id], "iterating users.list did not end after one user"

        blocked = client.users.update(user_id, blocked=True)
        assert blocked.blocked is True, f"update(blocked=True) returned blocked={blocked.blocked!r}"
        assert client.users.get(user_id).blocked is True, "users.get does not show the user blocked"

        merged = client.users.update(user_id, app_metadata={"plan": "gold"})
        assert merged.app_metadata == {"plan": "gold", "team": "blue"}, (
            f"app_metadata was not merged: {merged.app_metadata!r}"
        )
        gold = client.users.list(q='app_metadata.plan:"gold"')
        assert user_id in [u.user_id for u in gold.items], f"q=app_metadata.plan found {gold.items!r}"

        client.users.delete(user_id)
        expect_api_error(lambda: client.users.get(user_id), 404, "users.get after delete")
        assert client.users.list_users_by_email(email=email) == [], "users-by-email still finds the deleted user"


def test_sdk_manages_roles_and_role_members(mgmt: Management) -> None:
    with mgmt.client() as client, sdk_user(client, sdk_email(), name="Rita Roles") as user:
        roles = client.roles.list()
        admins = [r for r in roles.items if r.name == "admin"]
        assert len(admins) == 1, f"roles.list has no single 'admin' role: {roles.items!r}"
        admin = admins[0]
        assert admin.description == "Administrators", f"admin description is {admin.description!r}"
        assert roles.response.total == len(roles.items), f"roles.list total is {roles.response.total!r}"
        assert client.roles.get(admin.id).name == "admin", "roles.get(admin id) is not 'admin'"

        def members() -> list[str]:
            # The SDK pages role members with checkpoints (take/from, "next").
            return [m.user_id for m in client.roles.users.list(admin.id)]

        client.users.roles.assign(user.user_id, roles=[admin.id])
        assert user.user_id in members(), f"roles.users.list(admin) lacks {user.user_id} after assigning"
        assigned = client.users.roles.list(user.user_id)
        assert [r.name for r in assigned.items] == ["admin"], f"users.roles.list: {assigned.items!r}"
        assert list(client.users.permissions.list(user.user_id)) == [], "user has permissions"
        assert list(client.roles.permissions.list(admin.id)) == [], "admin role has permissions"

        client.users.roles.delete(user.user_id, roles=[admin.id])
        assert user.user_id not in members(), "user still a member of admin after users.roles.delete"
        assert client.users.roles.list(user.user_id).items == [], "role still assigned after users.roles.delete"
        expect_api_error(
            lambda: client.users.roles.assign(user.user_id, roles=["rol_doesnotexist0000"]),
            404,
            "assigning an unknown role",
        )

        name = f"sdk-{secrets.token_hex(4)}"
        role = client.roles.create(name=name, description="Made by the SDK")
        try:
            assert role.id and role.name == name, f"roles.create returned {role!r}"
            expect_api_error(
                lambda: client.roles.create(name=name, request_options=NO_RETRY),
                409,
                "creating a role with a taken name",
            )
            updated = client.roles.update(role.id, description="Changed by the SDK")
            assert updated.description == "Changed by the SDK", f"roles.update returned {updated!r}"
            found = client.roles.list(name_filter=name)
            assert [r.id for r in found.items] == [role.id], f"roles.list(name_filter) found {found.items!r}"
        finally:
            client.roles.delete(role.id)
        expect_api_error(lambda: client.roles.get(role.id), 404, "roles.get after delete")


def test_sdk_reports_management_api_errors(mgmt: Management) -> None:
    from auth0.management.errors import BadRequestError, ConflictError, NotFoundError, UnauthorizedError

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
        assert isinstance(error, ConflictError), f"taken email raised {type(error).__name__}"

        error = expect_api_error(
            lambda: client.users.create(connection=DB_CONNECTION, email=sdk_email(), password="short"),
            400,
            "creating a user with a short password",
        )
        assert isinstance(error, BadRequestError), f"short password raised {type(error).__name__}"

        error = expect_api_error(lambda: client.users.get("auth0|doesnotexist"), 404, "an unknown user")
        assert isinstance(error, NotFoundError), f"unknown user raised {type(error).__name__}"
        assert error.body.get("errorCode") == "inexistent_user", f"unknown user body: {error.body!r}"

    with mgmt.client(token="not-a-token") as client:
        error = expect_api_error(lambda: client.users.list(), 401, "a bad token")
        assert isinstance(error, UnauthorizedError), f"bad token raised {type(error).__name__}"
