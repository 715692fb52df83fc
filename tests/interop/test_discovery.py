"""The discovery document and the JWKS of the plain-HTTP Portcullis."""

from __future__ import annotations

import requests

from browser import Quickstart, describe
from helpers import HTTP_TIMEOUT


def test_discovery_document_names_issuer_and_endpoints(portcullis: Quickstart) -> None:
    response = requests.get(f"{portcullis.issuer_base}/.well-known/openid-configuration", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, f"discovery: {describe(response)}"
    doc = response.json()
    base = portcullis.issuer_base
    expected = {
        "issuer": f"{base}/",
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "userinfo_endpoint": f"{base}/userinfo",
        "jwks_uri": f"{base}/.well-known/jwks.json",
    }
    for key, value in expected.items():
        assert doc.get(key) == value, f"{key} is {doc.get(key)!r}, expected {value!r}"
    jwks = requests.get(doc["jwks_uri"], timeout=HTTP_TIMEOUT)
    assert jwks.status_code == 200, f"jwks: {describe(jwks)}"
    keys = jwks.json().get("keys")
    assert isinstance(keys, list) and keys, f"jwks has no keys: {jwks.text[:300]!r}"
