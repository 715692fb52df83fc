//! Validates OAuth 2 access tokens (JWTs) for a Rust API, against any OpenID Connect
//! issuer (Portcullis, Auth0, others).
//!
//! - [`Verifier`] discovers the issuer's `jwks_uri`, caches its keys, and fetches them again
//!   when a token names an unknown `kid`, at most once per [`Options::refetch_floor`], so a
//!   flood of bad tokens cannot make it hammer the issuer.
//! - Each token is checked for its signature, an allowed algorithm that matches the key's
//!   type, `iss`, `aud`, and `exp`/`nbf` with a small leeway.
//! - [`Claims`] exposes `sub`, the scopes and the `permissions` claim.
//! - [`Authenticated`] is an axum extractor, and [`Claims::require_scope`] /
//!   [`Claims::require_permission`] answer 403. Every refusal is an [`AuthError`] whose
//!   response carries a `WWW-Authenticate: Bearer` header (RFC 6750).
//!
//! ```no_run
//! use axum::{Json, Router, extract::FromRef, routing::get};
//! use portcullis_verify::{Authenticated, AuthError, Options, Verifier};
//!
//! #[derive(Clone)]
//! struct AppState { verifier: Verifier }
//! impl FromRef<AppState> for Verifier {
//!     fn from_ref(state: &AppState) -> Verifier { state.verifier.clone() }
//! }
//!
//! async fn transactions(Authenticated(claims): Authenticated) -> Result<Json<Vec<String>>, AuthError> {
//!     claims.require_permission("read:transactions")?;
//!     Ok(Json(vec![claims.sub.clone()]))
//! }
//!
//! # async fn run() {
//! let verifier = Verifier::new(Options::new("https://id.example.com/", "https://api.example.com"))
//!     .expect("an HTTP client");
//! let app: Router = Router::new()
//!     .route("/api/transactions", get(transactions))
//!     .with_state(AppState { verifier });
//! # }
//! ```

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// What a verifier accepts.
#[derive(Clone, Debug)]
pub struct Options {
    /// The issuer, exactly as tokens carry it in `iss` (Portcullis and Auth0 end it with `/`).
    pub issuer: String,
    /// The API's identifier; a token's `aud` must contain it.
    pub audience: String,
    /// Signature algorithms accepted (default RS256, ES256, EdDSA). HMAC is never accepted.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp` and `nbf` (default 30 s).
    pub leeway: Duration,
    /// How long fetched keys are used before they are fetched again (default 10 min).
    pub keys_ttl: Duration,
    /// The least time between two fetches (default 30 s).
    pub refetch_floor: Duration,
    /// The JWKS URL; discovered from `{issuer}.well-known/openid-configuration` when `None`.
    pub jwks_uri: Option<String>,
    /// The `typ` header a token must carry, such as `at+jwt` (RFC 9068); any when `None`.
    pub required_typ: Option<String>,
}

impl Options {
    #[must_use]
    pub fn new(issuer: &str, audience: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            algorithms: vec![Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA],
            leeway: Duration::from_secs(30),
            keys_ttl: Duration::from_secs(600),
            refetch_floor: Duration::from_secs(30),
            jwks_uri: None,
            required_typ: None,
        }
    }
}

/// The checked claims of an access token.
#[derive(Clone, Debug)]
pub struct Claims {
    pub sub: String,
    /// The `scope` claim, split.
    pub scopes: Vec<String>,
    /// The `permissions` claim (Auth0's RBAC), empty when absent.
    pub permissions: Vec<String>,
    /// Whether the token had a `permissions` claim at all.
    pub has_permissions_claim: bool,
    /// Every claim, for anything else (`azp`, namespaced claims).
    pub all: Value,
}

impl Claims {
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    #[must_use]
    pub fn has_permission(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }

    /// `Ok` when the token carries `scope`, else a 403 `insufficient_scope`.
    pub fn require_scope(&self, scope: &str) -> Result<(), AuthError> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope(scope.to_owned()))
        }
    }

    /// `Ok` when the token grants `permission`: through its `permissions` claim when it
    /// has one (Auth0's and Portcullis's RBAC), else through its scopes. Else a 403
    /// `insufficient_scope`.
    pub fn require_permission(&self, permission: &str) -> Result<(), AuthError> {
        let granted = if self.has_permissions_claim {
            self.has_permission(permission)
        } else {
            self.has_scope(permission)
        };
        if granted {
            Ok(())
        } else {
            Err(AuthError::InsufficientScope(permission.to_owned()))
        }
    }
}

/// Why a request was refused. Its response is RFC 6750's: 401 with
/// `WWW-Authenticate: Bearer …, error="invalid_token"` (no `error` when no token was sent),
/// or 403 with `error="insufficient_scope"`, and a small JSON body.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    #[error("the token lacks {0}")]
    InsufficientScope(String),
    /// The issuer's keys could not be fetched (answered as 503).
    #[error("the issuer's keys are unavailable")]
    Unavailable,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let (status, challenge, body) = match &self {
            Self::Missing => (
                StatusCode::UNAUTHORIZED,
                "Bearer realm=\"api\"".to_owned(),
                serde_json::json!({"error": "unauthorized", "error_description": "A bearer token is required."}),
            ),
            Self::Invalid(why) => (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"{why}\""
                ),
                serde_json::json!({"error": "invalid_token", "error_description": why}),
            ),
            Self::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                format!(
                    "Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"{}\"",
                    quoted(scope)
                ),
                serde_json::json!({"error": "insufficient_scope", "error_description": format!("The token lacks {scope}."), "scope": scope}),
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Bearer realm=\"api\"".to_owned(),
                serde_json::json!({"error": "temporarily_unavailable", "error_description": "Tokens cannot be checked right now."}),
            ),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// A scope as a quoted-string value: no quotes or backslashes.
fn quoted(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && *c != '\\').collect()
}

#[derive(Clone)]
struct Key {
    alg: Algorithm,
    key: DecodingKey,
}

/// The keys as last fetched. Readers take a snapshot and never wait on the network.
#[derive(Default)]
struct Snapshot {
    keys: HashMap<String, Key>,
    /// When a fetch last ran (successful or not).
    fetched_at: Option<Instant>,
    /// Whether the last fetch failed.
    failed: bool,
}

/// Verifies tokens of one issuer for one API. Cheap to clone (shared cache).
#[derive(Clone)]
pub struct Verifier {
    options: Arc<Options>,
    http: reqwest::Client,
    keys: Arc<RwLock<Arc<Snapshot>>>,
    /// Held only while fetching (one fetch at a time); holds the discovered JWKS URL.
    fetching: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.options.issuer)
            .field("audience", &self.options.audience)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier with its own HTTP client (10 s timeout, no redirects followed).
    pub fn new(options: Options) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self::with_client(options, http))
    }

    /// A verifier fetching with `http` (for custom TLS roots or proxies).
    #[must_use]
    pub fn with_client(options: Options, http: reqwest::Client) -> Self {
        let jwks_uri = options.jwks_uri.clone();
        Self {
            options: Arc::new(options),
            http,
            keys: Arc::default(),
            fetching: Arc::new(Mutex::new(jwks_uri)),
        }
    }

    #[must_use]
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Verifies a bearer token and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::Invalid("malformed token"))?;
        if !self.options.algorithms.contains(&header.alg) {
            return Err(AuthError::Invalid("algorithm not allowed"));
        }
        if let Some(required) = &self.options.required_typ
            && !header
                .typ
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(required))
        {
            return Err(AuthError::Invalid("not an access token"));
        }
        // A token without `kid` is tried against every key of its algorithm.
        let candidates = self.keys_for(header.kid.as_deref(), header.alg).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.options.issuer]);
        validation.set_audience(&[&self.options.audience]);
        validation.leeway = self.options.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let mut outcome = Err(AuthError::Invalid("unknown signing key"));
        for key in &candidates {
            outcome = jsonwebtoken::decode::<Value>(token, key, &validation)
                .map(|data| data.claims)
                .map_err(|e| AuthError::Invalid(reason(e.kind())));
            if outcome.is_ok() {
                break;
            }
        }
        let claims = outcome?;
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Claims {
            sub: claims
                .get("sub")
                .and_then(Value::as_str)
                .ok_or(AuthError::Invalid("no subject"))?
                .to_owned(),
            // `scope` as a string (RFC 9068) or an array; `scp` as some issuers name it.
            scopes: match claims.get("scope").or_else(|| claims.get("scp")) {
                Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
                other => strings(other),
            },
            permissions: strings(claims.get("permissions")),
            has_permissions_claim: claims.get("permissions").is_some_and(Value::is_array),
            all: claims,
        })
    }

    /// The keys a token may be checked against: the one named by `kid`, or, without a
    /// `kid`, every key of the token's algorithm. A known key is served from the snapshot
    /// at once (a stale set is refreshed in the background); only an unknown `kid` waits
    /// for a fetch, and a fetch runs at most once per refetch floor.
    async fn keys_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<DecodingKey>, AuthError> {
        let snap = self.snapshot();
        match pick(&snap, kid, alg) {
            Ok(found) if !found.is_empty() => {
                if snap
                    .fetched_at
                    .is_some_and(|t| t.elapsed() >= self.options.keys_ttl)
                {
                    let this = self.clone();
                    tokio::spawn(async move { this.refresh(false).await });
                }
                return Ok(found);
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        // Not known (yet): perhaps the issuer rotated its keys.
        self.refresh(true).await;
        let snap = self.snapshot();
        let found = pick(&snap, kid, alg)?;
        if !found.is_empty() {
            return Ok(found);
        }
        if snap.keys.is_empty() || snap.failed {
            return Err(AuthError::Unavailable);
        }
        Err(AuthError::Invalid("unknown signing key"))
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.keys.read().map(|s| Arc::clone(&s)).unwrap_or_default()
    }

    /// Fetches the keys unless a fetch ran within the refetch floor. With `wait`, queues
    /// behind a fetch in progress; otherwise skips when one is running. A failed or empty
    /// fetch keeps the keys already known.
    async fn refresh(&self, wait: bool) {
        let mut uri = if wait {
            self.fetching.lock().await
        } else {
            match self.fetching.try_lock() {
                Ok(guard) => guard,
                Err(_) => return,
            }
        };
        let before = self.snapshot();
        if before
            .fetched_at
            .is_some_and(|t| t.elapsed() < self.options.refetch_floor)
        {
            return;
        }
        let (keys, failed) = match self.fetch(&mut uri).await {
            Ok(keys) if !keys.is_empty() || before.keys.is_empty() => (keys, false),
            Ok(_) => {
                tracing::warn!("the issuer published no usable keys; keeping the known ones");
                (before.keys.clone(), false)
            }
            Err(e) => {
                tracing::warn!(error = %e, "fetching the issuer's keys failed");
                (before.keys.clone(), true)
            }
        };
        let next = Arc::new(Snapshot {
            keys,
            fetched_at: Some(Instant::now()),
            failed,
        });
        if let Ok(mut slot) = self.keys.write() {
            *slot = next;
        }
    }

    async fn fetch(&self, jwks_uri: &mut Option<String>) -> Result<HashMap<String, Key>, String> {
        let uri = match jwks_uri.as_ref() {
            Some(u) => u.clone(),
            None => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.options.issuer.trim_end_matches('/')
                );
                let doc: Value = self.get_json(&url).await?;
                let uri = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or("the discovery document has no jwks_uri")?
                    .to_owned();
                *jwks_uri = Some(uri.clone());
                uri
            }
        };
        let jwks = self.get_json(&uri).await?;
        Ok(parse_jwks(&jwks, &self.options.algorithms))
    }

    async fn get_json(&self, url: &str) -> Result<Value, String> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: {}", response.status()));
        }
        response.json().await.map_err(|e| format!("GET {url}: {e}"))
    }
}

/// The keys of `snap` a token may use: the one named by `kid` (refused if pinned to
/// another algorithm), or every key of `alg` when the token names none.
fn pick(snap: &Snapshot, kid: Option<&str>, alg: Algorithm) -> Result<Vec<DecodingKey>, AuthError> {
    match kid {
        Some(kid) => match snap.keys.get(kid) {
            Some(k) if k.alg == alg => Ok(vec![k.key.clone()]),
            Some(_) => Err(AuthError::Invalid("algorithm does not match the key")),
            None => Ok(Vec::new()),
        },
        None => Ok(snap
            .keys
            .values()
            .filter(|k| k.alg == alg)
            .map(|k| k.key.clone())
            .collect()),
    }
}

fn reason(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "the token has expired",
        K::ImmatureSignature => "the token is not valid yet",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::InvalidSignature => "bad signature",
        K::MissingRequiredClaim(_) => "a required claim is missing",
        _ => "the token could not be verified",
    }
}

/// Public keys from a JWKS, each pinned to one algorithm: its `alg`, or the one its key type
/// implies. Keys for other uses, or for algorithms not allowed, are skipped.
fn parse_jwks(jwks: &Value, allowed: &[Algorithm]) -> HashMap<String, Key> {
    let mut keys = HashMap::new();
    for jwk in jwks
        .get("keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| jwk.get(k).and_then(Value::as_str);
        // A key without `kid` can still check tokens that name none.
        let kid = s("kid").map_or_else(|| format!("#{}", keys.len()), str::to_owned);
        if s("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let alg = match (s("alg"), s("kty"), s("crv")) {
            (Some(a), _, _) => a.parse::<Algorithm>().ok(),
            (None, Some("RSA"), _) => Some(Algorithm::RS256),
            (None, Some("EC"), Some("P-256")) => Some(Algorithm::ES256),
            (None, Some("EC"), Some("P-384")) => Some(Algorithm::ES384),
            (None, Some("OKP"), Some("Ed25519")) => Some(Algorithm::EdDSA),
            _ => None,
        };
        let Some(alg) = alg.filter(|a| allowed.contains(a)) else {
            continue;
        };
        let key = match (alg, s("kty")) {
            (
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512,
                Some("RSA"),
            ) => DecodingKey::from_rsa_components(
                s("n").unwrap_or_default(),
                s("e").unwrap_or_default(),
            ),
            (Algorithm::ES256 | Algorithm::ES384, Some("EC")) => DecodingKey::from_ec_components(
                s("x").unwrap_or_default(),
                s("y").unwrap_or_default(),
            ),
            (Algorithm::EdDSA, Some("OKP")) => {
                DecodingKey::from_ed_components(s("x").unwrap_or_default())
            }
            _ => continue,
        };
        if let Ok(key) = key {
            keys.insert(kid, Key { alg, key });
        }
    }
    keys
}

/// The verified claims of the request's bearer token (axum extractor). The state must give
/// a [`Verifier`] through `FromRef`.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Claims);

impl<S> FromRequestParts<S> for Authenticated
where
    Verifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(AuthError::Missing)?;
        // The scheme is case-insensitive (RFC 7235); another scheme is no bearer token.
        let token = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => return Err(AuthError::Missing),
        };
        if token.is_empty() {
            return Err(AuthError::Invalid("empty bearer token"));
        }
        let verifier = Verifier::from_ref(state);
        verifier.verify(token).await.map(Authenticated)
    }
}
