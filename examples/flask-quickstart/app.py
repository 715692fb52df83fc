"""Flask quickstart: log users in with OpenID Connect against Portcullis (or Auth0).

The classic Auth0 Flask sample, written for current Authlib: the provider is
configured from its discovery document, the ID token is validated by Authlib
(signature, issuer, audience, expiry and nonce), and roles come from a custom
claim in the ID token.

Configuration (environment, or a .env file next to this one):
    AUTH0_DOMAIN         tenant domain ("example.eu.auth0.com") or a full base URL
                         ("http://127.0.0.1:8080"); a bare domain means https
    AUTH0_CLIENT_ID      client id of the application
    AUTH0_CLIENT_SECRET  client secret of the application
    AUTH0_CALLBACK_URL   this app's /callback URL, registered as an allowed callback
    APP_SECRET_KEY       key that signs Flask's session cookie
    ROLES_CLAIM          ID token claim holding the user's roles
                         (default https://yourapp.com/roles)
    PORT                 port to listen on with `python app.py` (default 3000)
"""

import os
import sys
from functools import wraps
from urllib.parse import urlencode

from authlib.integrations.flask_client import OAuth, OAuthError
from dotenv import load_dotenv
from flask import Flask, jsonify, redirect, render_template_string, session, url_for

load_dotenv()

REQUIRED = (
    "AUTH0_DOMAIN",
    "AUTH0_CLIENT_ID",
    "AUTH0_CLIENT_SECRET",
    "AUTH0_CALLBACK_URL",
    "APP_SECRET_KEY",
)
missing = [name for name in REQUIRED if not os.getenv(name)]
if missing:
    sys.exit(f"missing configuration: {', '.join(missing)} (see README.md)")


def base_url(domain: str) -> str:
    """Turn AUTH0_DOMAIN into a base URL without a trailing slash."""
    domain = domain.strip().rstrip("/")
    if "://" not in domain:
        domain = f"https://{domain}"
    return domain


AUTH0_BASE_URL = base_url(os.environ["AUTH0_DOMAIN"])
AUTH0_CLIENT_ID = os.environ["AUTH0_CLIENT_ID"]
AUTH0_CLIENT_SECRET = os.environ["AUTH0_CLIENT_SECRET"]
AUTH0_CALLBACK_URL = os.environ["AUTH0_CALLBACK_URL"]
ROLES_CLAIM = os.getenv("ROLES_CLAIM", "https://yourapp.com/roles")

app = Flask(__name__)
app.secret_key = os.environ["APP_SECRET_KEY"]

oauth = OAuth(app)
oauth.register(
    "auth0",
    client_id=AUTH0_CLIENT_ID,
    client_secret=AUTH0_CLIENT_SECRET,
    server_metadata_url=f"{AUTH0_BASE_URL}/.well-known/openid-configuration",
    client_kwargs={"scope": "openid profile email"},
)


def requires_auth(f):
    @wraps(f)
    def decorated(*args, **kwargs):
        if "profile" not in session:
            return redirect(url_for("login"))
        return f(*args, **kwargs)

    return decorated


def requires_role(role):
    def decorator(f):
        @wraps(f)
        def decorated(*args, **kwargs):
            if "profile" not in session:
                return redirect(url_for("login"))
            if role not in session["profile"].get("roles", []):
                return jsonify({"error": "Access denied"}), 403
            return f(*args, **kwargs)

        return decorated

    return decorator


HOME_PAGE = """<!doctype html>
<title>Flask quickstart</title>
{% if profile %}
  <p>Hello, {{ profile.name or profile.email }}!</p>
  <p><a href="{{ url_for('dashboard') }}">Dashboard</a> ·
     <a href="{{ url_for('logout') }}">Log out</a></p>
{% else %}
  <p><a href="{{ url_for('login') }}">Log in</a></p>
{% endif %}
"""


@app.route("/")
def home():
    return render_template_string(HOME_PAGE, profile=session.get("profile"))


@app.route("/login")
def login():
    return oauth.auth0.authorize_redirect(
        redirect_uri=AUTH0_CALLBACK_URL,
        audience=f"{AUTH0_BASE_URL}/userinfo",
    )


@app.route("/callback")
def callback():
    try:
        # Exchanges the code; Authlib validates the ID token (including the
        # nonce it sent) and puts its claims in token["userinfo"].
        token = oauth.auth0.authorize_access_token()
    except OAuthError as error:
        return jsonify({"error": error.error, "error_description": error.description}), 400

    claims = token["userinfo"]
    # The same user, as the UserInfo endpoint sees the access token.
    userinfo = oauth.auth0.userinfo(token=token)
    if userinfo.get("sub") != claims["sub"]:
        return jsonify({"error": "userinfo subject does not match the ID token"}), 502

    session["profile"] = {
        "user_id": claims["sub"],
        "name": userinfo.get("name", claims.get("name")),
        "email": userinfo.get("email", claims.get("email")),
        "picture": userinfo.get("picture", claims.get("picture")),
        "roles": list(claims.get(ROLES_CLAIM) or []),
    }
    return redirect(url_for("dashboard"))


@app.route("/dashboard")
@requires_auth
def dashboard():
    return jsonify(session["profile"])


@app.route("/admin")
@requires_auth
@requires_role("admin")
def admin_dashboard():
    return jsonify({"message": "Welcome to admin dashboard"})


@app.route("/logout")
def logout():
    session.clear()
    params = {
        "returnTo": url_for("home", _external=True),
        "client_id": AUTH0_CLIENT_ID,
    }
    return redirect(f"{AUTH0_BASE_URL}/v2/logout?" + urlencode(params))


@app.route("/health")
def health():
    return jsonify({"status": "ok"})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.getenv("PORT", "3000")))
