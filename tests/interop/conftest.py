"""Interop tests: the Flask quickstart logs in against a real Portcullis server,
and Auth0's own Python SDK (auth0-python) drives its Management API.

    python -m pytest tests/interop --portcullis target/debug/portcullis

The session fixtures here start what the selected tests need, once each, on free
loopback ports, in one temporary directory (removed at the end unless --keep-tmp):

- `portcullis`: the quickstart's tenant file applied to a fresh SQLite database and
  `portcullis serve` over plain HTTP;
- `quickstart`: that server plus examples/flask-quickstart/app.py registered with it;
- `mgmt`: a second Portcullis (its own tenant file and database) serving TLS with a
  self-signed certificate for `localhost`, generated into the temporary directory,
  for the SDK, which only speaks https. `trust_mgmt` points REQUESTS_CA_BUNDLE (the
  SDK's Authentication API client, requests) and SSL_CERT_FILE (its Management API
  client, httpx) at that certificate for one test.

A server that fails to start fails every test that needs it, at once. When a test
fails, the report ends with the last lines of every server's log.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from browser import Quickstart
from helpers import (
    CLIENT_NAME,
    FLASK_APP,
    MGMT_CLIENT_NAME,
    MGMT_TENANT_YAML,
    ROLES_CLAIM,
    TENANT_YAML,
    TRUST_VARIABLES,
    Management,
    Ports,
    Server,
    cli_env,
    client_credentials,
    run_cli,
    tail,
    write_self_signed_certificate,
)

SERVERS = pytest.StashKey[list[Server]]()
KEPT = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("portcullis", "Portcullis interop tests")
    group.addoption(
        "--portcullis",
        metavar="PATH",
        default=os.environ.get("PORTCULLIS_BIN"),
        help="the portcullis binary (default: $PORTCULLIS_BIN)",
    )
    group.addoption(
        "--keep-tmp",
        action="store_true",
        help="keep the temporary directory (databases, tenant files, server logs)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SERVERS] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `runs_last` go after all others, whatever the order of the files
    named on the command line."""
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    """A failed test (or fixture) gets the last lines of every server's log."""
    report = yield
    if report.failed:
        for server in item.config.stash[SERVERS]:
            report.sections.append((f"last lines of {server.name} log ({server.log})", tail(server.log)))
    return report


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if KEPT in config.stash:
        terminalreporter.write_line(f"kept {config.stash[KEPT]}")


# ---------------------------------------------------------------------------
# The binary, the directory and the ports
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def portcullis_bin(pytestconfig: pytest.Config) -> Path:
    value = pytestconfig.getoption("portcullis")
    if not value:
        pytest.fail("no portcullis binary: pass --portcullis PATH or set PORTCULLIS_BIN", pytrace=False)
    binary = Path(value).resolve()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"{value} is not an executable file", pytrace=False)
    return binary


@pytest.fixture(scope="session")
def interop_tmp(pytestconfig: pytest.Config) -> Iterator[Path]:
    """The run's scratch directory: databases, tenant files, certificate, logs, outbox."""
    tmp = Path(tempfile.mkdtemp(prefix="portcullis-interop-"))
    yield tmp
    if pytestconfig.getoption("keep_tmp"):
        pytestconfig.stash[KEPT] = tmp
    else:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def ports() -> Ports:
    return Ports()


@pytest.fixture(scope="session")
def servers(pytestconfig: pytest.Config) -> list[Server]:
    """Every server started so far (their logs go into failure reports)."""
    return pytestconfig.stash[SERVERS]


# ---------------------------------------------------------------------------
# Portcullis over plain HTTP, and the Flask quickstart
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def portcullis(
    portcullis_bin: Path, interop_tmp: Path, ports: Ports, servers: list[Server]
) -> Iterator[Quickstart]:
    """The quickstart's tenant applied to a fresh database and `portcullis serve` on it."""
    tmp = interop_tmp
    env = Quickstart(tmp, ports.take(), ports.take(), admin_password="Adm1n-" + secrets.token_urlsafe(18))
    tenant = tmp / "tenant.yaml"
    tenant.write_text(TENANT_YAML.replace("FLASKPORT", str(env.flask_port)))

    apply_env = cli_env()
    apply_env["INTEROP_ADMIN_PASSWORD"] = env.admin_password
    run_cli(
        [str(portcullis_bin), "apply", "--database", env.database, str(tenant)],
        apply_env,
        "portcullis apply",
    )

    server = Server("portcullis", tmp / "portcullis.log")
    servers.append(server)
    try:
        server.start(
            [
                str(portcullis_bin), "serve",
                "--database", env.database,
                "--listen", f"127.0.0.1:{env.port}",
                "--issuer", f"{env.issuer_base}/",
                "--data-dir", str(tmp),
            ],
            cli_env(),
            tmp,
        )
        server.wait_healthy(f"{env.issuer_base}/health")

        out = run_cli(
            [
                str(portcullis_bin), "clients", "get", CLIENT_NAME, "--json",
                "--database", env.database, "--data-dir", str(tmp),
            ],
            cli_env(),
            "portcullis clients get",
        )
        env.client_id, env.client_secret = client_credentials(out)
        yield env
    finally:
        server.stop()


@pytest.fixture(scope="session")
def quickstart(portcullis: Quickstart, servers: list[Server]) -> Iterator[Quickstart]:
    """examples/flask-quickstart/app.py, registered with and logging in at `portcullis`."""
    env = portcullis
    flask_env = dict(os.environ)
    flask_env.update(
        AUTH0_DOMAIN=env.issuer_base,
        AUTH0_CLIENT_ID=env.client_id,
        AUTH0_CLIENT_SECRET=env.client_secret,
        AUTH0_CALLBACK_URL=f"{env.app}/callback",
        APP_SECRET_KEY=secrets.token_hex(32),
        ROLES_CLAIM=ROLES_CLAIM,
        PORT=str(env.flask_port),
        PYTHONUNBUFFERED="1",
    )
    flask = Server("flask-quickstart", env.tmp / "flask.log")
    servers.append(flask)
    try:
        flask.start([sys.executable, str(FLASK_APP)], flask_env, env.tmp)
        flask.wait_healthy(f"{env.app}/health")
        yield env
    finally:
        flask.stop()


# ---------------------------------------------------------------------------
# Portcullis over TLS, for Auth0's SDK
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mgmt(
    portcullis_bin: Path, interop_tmp: Path, ports: Ports, servers: list[Server]
) -> Iterator[Management]:
    """The https server for the SDK tests, with its own tenant (a machine-to-machine
    client granted the Management API) and database, started on first request."""
    tmp = interop_tmp
    cert, key = write_self_signed_certificate(tmp)
    mgmt = Management(tmp, ports.take(), cert, key)
    tenant = tmp / "mgmt-tenant.yaml"
    tenant.write_text(MGMT_TENANT_YAML.replace("MGMTPORT", str(mgmt.port)))
    common = ["--database", mgmt.database, "--data-dir", str(tmp)]
    # The Management API's identifier is `{issuer}api/v2/`, so apply needs the issuer
    # to resolve the client grant's audience.
    run_cli(
        [str(portcullis_bin), "apply", *common, "--issuer", f"{mgmt.base}/", str(tenant)],
        cli_env(),
        "portcullis apply (management tenant)",
    )

    server = Server("portcullis-mgmt", tmp / "portcullis-mgmt.log")
    servers.append(server)
    try:
        server.start(
            [
                str(portcullis_bin), "serve",
                "--listen", f"127.0.0.1:{mgmt.port}",
                *common,
                "--issuer", f"{mgmt.base}/",
                "--tls-cert", str(cert),
                "--tls-key", str(key),
            ],
            cli_env(),
            tmp,
        )
        server.wait_healthy(f"{mgmt.base}/health", verify=str(cert))

        out = run_cli(
            [str(portcullis_bin), "clients", "get", MGMT_CLIENT_NAME, "--json", *common],
            cli_env(),
            "portcullis clients get (management client)",
        )
        mgmt.client_id, mgmt.client_secret = client_credentials(out)
        yield mgmt
    finally:
        server.stop()


@pytest.fixture
def trust_mgmt(mgmt: Management, monkeypatch: pytest.MonkeyPatch) -> Management:
    """`mgmt`, with its certificate as the CA bundle of requests and httpx for the whole
    test (for SDK clients a test builds itself); the previous values come back after."""
    for name in TRUST_VARIABLES:
        monkeypatch.setenv(name, str(mgmt.cert))
    return mgmt
