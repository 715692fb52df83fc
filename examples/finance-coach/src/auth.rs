//! Login with Portcullis: the authorization code flow with PKCE, `state` and `nonce`
//! (through the `openidconnect` crate), a server-side session behind an HttpOnly cookie, and
//! logout through Portcullis's `/v2/logout` so both sessions end.

use crate::data::{LoginRequest, Session};
use crate::{AppState, Config};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const SESSION_COOKIE: &str = "coach_session";
const STATE_COOKIE: &str = "coach_state";
/// Sessions last eight hours.
const SESSION_SECONDS: i64 = 8 * 3600;

/// The provider's discovered metadata and this app's registration.
pub struct Oidc {
    issuer: IssuerUrl,
    /// The discovery document with its keys; discovered again when Portcullis rotates them.
    metadata: std::sync::RwLock<CoreProviderMetadata>,
    http: reqwest::Client,
}

impl Oidc {
    pub async fn discover(config: &Config, http: reqwest::Client) -> anyhow::Result<Self> {
        let issuer = IssuerUrl::new(config.issuer.clone())?;
        let client = http.clone();
        let metadata =
            CoreProviderMetadata::discover_async(issuer.clone(), &|r| send(client.clone(), r))
                .await?;
        Ok(Self {
            issuer,
            metadata: std::sync::RwLock::new(metadata),
            http,
        })
    }

    fn metadata(&self) -> CoreProviderMetadata {
        match self.metadata.read() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Discovers again (new signing keys after a rotation).
    async fn rediscover(&self) -> anyhow::Result<()> {
        let client = self.http.clone();
        let fresh =
            CoreProviderMetadata::discover_async(self.issuer.clone(), &|r| send(client.clone(), r))
                .await?;
        if let Ok(mut slot) = self.metadata.write() {
            *slot = fresh;
        }
        Ok(())
    }
}

/// The HTTP client openidconnect calls: reqwest, following no redirects.
async fn send(
    client: reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let mut builder = client
        .request(parts.method, parts.uri.to_string())
        .body(body);
    for (name, value) in &parts.headers {
        builder = builder.header(name, value);
    }
    let response = builder.send().await?;
    let mut out = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        out = out.header(name, value);
    }
    let body = response.bytes().await?.to_vec();
    Ok(out
        .body(body)
        .unwrap_or_else(|_| openidconnect::http::Response::new(Vec::new())))
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Hex SHA-256: secrets are stored only as their hash.
pub fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn cookie(config: &Config, name: &str, value: String, path: &str, max_age: i64) -> Cookie<'static> {
    Cookie::build((name.to_owned(), value))
        .http_only(true)
        .secure(config.secure_cookies())
        .same_site(SameSite::Lax)
        .path(path.to_owned())
        .max_age(time::Duration::seconds(max_age))
        .build()
}

/// The signed-in user, if the session cookie names a live session.
pub async fn current(state: &AppState, jar: &CookieJar) -> Option<(String, Session)> {
    let secret = jar.get(SESSION_COOKIE)?.value().to_owned();
    let hash = digest(&secret);
    match state.db.find_session(&hash, now()).await {
        Ok(Some(session)) => Some((hash, session)),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "reading a session failed");
            None
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginQuery {
    pub screen_hint: Option<String>,
}

/// `GET /login`: off to Portcullis's Universal Login (or its signup page).
pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<LoginQuery>,
) -> Response {
    let config = &state.config;
    let Ok(redirect) = RedirectUrl::new(format!("{}/callback", config.base_url)) else {
        return crate::pages::failure(&state, "The app's base URL is not valid.");
    };
    let client = CoreClient::from_provider_metadata(
        state.oidc.metadata(),
        ClientId::new(config.client_id.clone()),
        Some(ClientSecret::new(config.client_secret.clone())),
    )
    .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("read:transactions".into()))
        .add_scope(Scope::new("read:budgets".into()))
        .add_extra_param("audience", config.audience.clone())
        .set_pkce_challenge(challenge);
    if query.screen_hint.as_deref() == Some("signup") {
        request = request.add_extra_param("screen_hint", "signup");
    }
    let (url, csrf, nonce) = request.url();
    let saved = state
        .db
        .save_login_request(
            &digest(csrf.secret()),
            &LoginRequest {
                verifier: verifier.secret().clone(),
                nonce: nonce.secret().clone(),
            },
            now(),
        )
        .await;
    if let Err(e) = saved {
        tracing::error!(error = %e, "saving a login request failed");
        return crate::pages::failure(&state, "Logging in is not possible right now.");
    }
    let jar = jar.add(cookie(
        config,
        STATE_COOKIE,
        csrf.secret().clone(),
        "/callback",
        600,
    ));
    (jar, Redirect::to(url.as_str())).into_response()
}

#[derive(Debug, serde::Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// `GET /callback`: checks `state`, exchanges the code with the PKCE verifier, verifies the
/// ID token and its `nonce`, and opens the session.
pub async fn callback(
    State(state): State<AppState>,
    jar: CookieJar,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let config = &state.config;
    let cookie_state = jar.get(STATE_COOKIE).map(|c| c.value().to_owned());
    if let Some(error) = &query.error {
        // Portcullis's words are shown only for an answer to this browser's own request;
        // anyone can craft a link to /callback with other words.
        let ours =
            matches!((&query.state, &cookie_state), (Some(a), Some(b)) if digest(a) == digest(b));
        let why = match (ours, query.error_description.as_deref()) {
            (true, Some(description)) => description.to_owned(),
            _ if error == "access_denied" => "Access was denied.".to_owned(),
            _ => "Logging in did not complete. Please try again.".to_owned(),
        };
        return crate::pages::message(&state, "Login did not complete", &why, Some("/"));
    }
    let (Some(code), Some(returned), Some(expected)) = (query.code, query.state, cookie_state)
    else {
        return crate::pages::message(
            &state,
            "Login did not complete",
            "The login answer was incomplete. Please try again.",
            Some("/login"),
        );
    };
    if digest(&returned) != digest(&expected) {
        return crate::pages::message(
            &state,
            "Login did not complete",
            "The login answer does not belong to this browser. Please try again.",
            Some("/login"),
        );
    }
    let pending = match state.db.take_login_request(&digest(&returned), now()).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return crate::pages::message(
                &state,
                "Login expired",
                "This login took too long or was already used. Please log in again.",
                Some("/login"),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "reading a login request failed");
            return crate::pages::failure(&state, "Logging in is not possible right now.");
        }
    };
    match finish(&state, &code, pending).await {
        Ok((secret, _)) => {
            let jar = jar
                .remove(Cookie::build(STATE_COOKIE).path("/callback"))
                .add(cookie(config, SESSION_COOKIE, secret, "/", SESSION_SECONDS));
            (jar, Redirect::to("/dashboard")).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "a login failed");
            crate::pages::message(
                &state,
                "Login did not complete",
                "Portcullis's answer could not be verified. Please try again.",
                Some("/login"),
            )
        }
    }
}

async fn finish(
    state: &AppState,
    code: &str,
    pending: LoginRequest,
) -> anyhow::Result<(String, Session)> {
    let config = &state.config;
    let client = CoreClient::from_provider_metadata(
        state.oidc.metadata(),
        ClientId::new(config.client_id.clone()),
        Some(ClientSecret::new(config.client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(format!("{}/callback", config.base_url))?);
    let http = state.oidc.http.clone();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))?
        .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
        .request_async(&|r| send(http.clone(), r))
        .await?;
    let id_token = tokens
        .id_token()
        .ok_or_else(|| anyhow::anyhow!("no ID token"))?;
    let nonce = Nonce::new(pending.nonce);
    let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
        Ok(c) => c.clone(),
        Err(first) => {
            // Perhaps Portcullis rotated its signing key since discovery: look again, once.
            state.oidc.rediscover().await?;
            let fresh = CoreClient::from_provider_metadata(
                state.oidc.metadata(),
                ClientId::new(config.client_id.clone()),
                Some(ClientSecret::new(config.client_secret.clone())),
            );
            id_token
                .claims(&fresh.id_token_verifier(), &nonce)
                .map_err(|_| first)?
                .clone()
        }
    };
    // The roles claim is a namespaced custom claim; read it from the verified token.
    let payload = id_token.to_string();
    let body = payload.split('.').nth(1).unwrap_or_default();
    let raw: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body)?)?;
    let roles = raw
        .get(&config.roles_claim)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let email = claims.email().map(|e| e.to_string()).unwrap_or_default();
    let name = claims
        .name()
        .and_then(|n| n.get(None))
        .map_or_else(|| email.clone(), |n| n.to_string());
    let session = Session {
        sub: claims.subject().to_string(),
        name,
        email,
        roles,
        access_token: tokens.access_token().secret().clone(),
        csrf: CsrfToken::new_random_len(32).secret().clone(),
    };
    let month = time::OffsetDateTime::now_utc().date();
    let month = format!("{:04}-{:02}", month.year(), u8::from(month.month()));
    if state.db.seed_if_new(&session.sub, &month).await? {
        tracing::info!(sub = %session.sub, "sample data created for a new user");
    }
    let secret = CsrfToken::new_random_len(32).secret().clone();
    state
        .db
        .create_session(&digest(&secret), &session, now() + SESSION_SECONDS)
        .await?;
    Ok((secret, session))
}

#[derive(Debug, serde::Deserialize)]
pub struct LogoutForm {
    pub csrf: Option<String>,
}

/// `POST /logout`: ends this app's session, then Portcullis's (`/v2/logout`), which sends
/// the browser back to the home page.
pub async fn logout(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    jar: CookieJar,
    axum::Form(form): axum::Form<LogoutForm>,
) -> Response {
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site");
    // Without a session of ours (a cross-site post carries no Lax cookie), there is
    // nothing to end, and Portcullis's session is not ours to end either.
    let Some((hash, session)) = current(&state, &jar).await else {
        return Redirect::to("/").into_response();
    };
    if cross_site || form.csrf.as_deref() != Some(session.csrf.as_str()) {
        return crate::pages::message(
            &state,
            "Not logged out",
            "The logout form was not sent by this app.",
            Some("/dashboard"),
        );
    }
    if let Err(e) = state.db.delete_session(&hash).await {
        tracing::error!(error = %e, "deleting a session failed");
    }
    let config = &state.config;
    let mut url = match url::Url::parse(&format!("{}v2/logout", config.issuer)) {
        Ok(u) => u,
        Err(_) => return crate::pages::failure(&state, "The issuer URL is not valid."),
    };
    url.query_pairs_mut()
        .append_pair("client_id", &config.client_id)
        .append_pair("returnTo", &format!("{}/", config.base_url));
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    (jar, Redirect::to(url.as_str())).into_response()
}
