//! Request limits on the endpoints attackers hammer: login form posts, `/oauth/token`,
//! `/dbconnections/*`, `/passwordless/*` and the Management API, per client IP and per
//! application. Counters live in the database (see `portcullis_core::protection::throttle`),
//! so they hold across restarts and replicas; a busy bucket is counted in shares, one
//! database write per share rather than per request. Answers carry Auth0's `x-ratelimit-*`
//! headers; a refusal is a 429 with `Retry-After`.

use crate::client_ip::ClientIp;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portcullis_core::protection::throttle::{Decision, Limit};
use serde_json::json;

/// Requests allowed per minute, by family, per IP and per application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimits {
    pub login_form_per_ip: u32,
    pub token_per_ip: u32,
    pub token_per_client: u32,
    pub dbconnections_per_ip: u32,
    pub dbconnections_per_client: u32,
    pub passwordless_per_ip: u32,
    pub management_per_ip: u32,
    pub management_per_client: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            login_form_per_ip: 120,
            token_per_ip: 1_200,
            token_per_client: 6_000,
            dbconnections_per_ip: 60,
            dbconnections_per_client: 1_200,
            passwordless_per_ip: 50,
            management_per_ip: 6_000,
            management_per_client: 6_000,
        }
    }
}

impl RateLimits {
    /// Applies `name=N` settings (requests per minute), comma-separated, as in
    /// `PORTCULLIS_RATE_LIMITS=token_per_ip=300,login_form_per_ip=30`.
    pub fn apply_overrides(&mut self, spec: &str) -> anyhow::Result<()> {
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("rate limit {item:?} must be name=N"))?;
            let n: u32 = value
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| anyhow::anyhow!("rate limit {name} must be a positive number"))?;
            let slot = match name.trim() {
                "login_form_per_ip" => &mut self.login_form_per_ip,
                "token_per_ip" => &mut self.token_per_ip,
                "token_per_client" => &mut self.token_per_client,
                "dbconnections_per_ip" => &mut self.dbconnections_per_ip,
                "dbconnections_per_client" => &mut self.dbconnections_per_client,
                "passwordless_per_ip" => &mut self.passwordless_per_ip,
                "management_per_ip" => &mut self.management_per_ip,
                "management_per_client" => &mut self.management_per_client,
                other => anyhow::bail!("unknown rate limit {other:?}"),
            };
            *slot = n;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    LoginForm,
    Token,
    DbConnections,
    Passwordless,
    Management,
}

fn family(method: &Method, path: &str) -> Option<Family> {
    if path.starts_with("/api/v2/") {
        return Some(Family::Management);
    }
    if method != Method::POST {
        return None;
    }
    match path {
        "/oauth/token" => Some(Family::Token),
        "/authorize" | "/u/login" | "/u/signup" | "/u/reset-password" | "/u/unblock"
        | "/u/consent" => Some(Family::LoginForm),
        p if p.starts_with("/dbconnections/") => Some(Family::DbConnections),
        p if p.starts_with("/passwordless/") => Some(Family::Passwordless),
        _ => None,
    }
}

/// The application a request speaks for: Basic credentials or a `client_id` field for the
/// Authentication API, the access token's `azp` for the Management API.
fn client_of(
    state: &AppState,
    family: Family,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Option<String> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if family == Family::Management {
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))?;
        let claims = state.core.verify_jwt(token.trim(), 0)?;
        return claims
            .get("azp")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
    }
    if let Some(basic) = auth.strip_prefix("Basic ") {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let id = text.split(':').next()?;
        return url::form_urlencoded::parse(id.as_bytes())
            .next()
            .map(|(k, _)| k.into_owned())
            .or_else(|| Some(id.to_owned()));
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        return value
            .get("client_id")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
    }
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned())
}

/// The middleware.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(family) = family(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let ip = request
        .extensions()
        .get::<ClientIp>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.clone());
    let limits = &state.rate_limits;
    let (ip_limit, client_limit) = match family {
        Family::LoginForm => (limits.login_form_per_ip, None),
        Family::Token => (limits.token_per_ip, Some(limits.token_per_client)),
        Family::DbConnections => (
            limits.dbconnections_per_ip,
            Some(limits.dbconnections_per_client),
        ),
        Family::Passwordless => (limits.passwordless_per_ip, None),
        Family::Management => (limits.management_per_ip, Some(limits.management_per_client)),
    };
    let name = format!("{family:?}").to_lowercase();
    // The body is small (the router caps it); read it to find the application, then hand
    // it on unchanged.
    let reads_body = client_limit.is_some() && family != Family::Management;
    let (parts, body) = request.into_parts();
    let (client, request) = if reads_body {
        let Ok(bytes) = axum::body::to_bytes(body, crate::router::BODY_LIMIT).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
        };
        let client = client_of(&state, family, &parts.headers, &bytes);
        (client, Request::from_parts(parts, Body::from(bytes)))
    } else {
        let client = client_limit.and_then(|_| client_of(&state, family, &parts.headers, &[]));
        (client, Request::from_parts(parts, body))
    };
    // Only applications that exist get a bucket, so made-up ids cannot fill the table.
    let client = match client.filter(|c| !c.is_empty() && c.len() <= 128) {
        Some(id) => match state.core.cached_client(&id).await {
            Ok(Some(_)) => Some(id),
            _ => None,
        },
        None => None,
    };
    let mut decisions = Vec::with_capacity(2);
    let ip_bucket = format!("rl:{name}:ip:{ip}");
    let ip_rule = Limit::per(ip_limit, 60);
    match state.core.throttle_shared(&ip_bucket, ip_rule).await {
        Ok(d) => decisions.push(d),
        Err(e) => tracing::error!(error = %e, "rate limit counter unavailable"),
    }
    if let (Some(n), Some(client)) = (client_limit, client.as_deref())
        && decisions.iter().all(|d| d.allowed)
    {
        match state
            .core
            .throttle_shared(&format!("rl:{name}:client:{client}"), Limit::per(n, 60))
            .await
        {
            Ok(d) if !d.allowed => {
                // A refused request is not counted: give the IP bucket its request back.
                if let Err(e) = state.core.throttle_give_back(&ip_bucket, ip_rule).await {
                    tracing::error!(error = %e, "rate limit counter unavailable");
                }
                decisions.push(d);
            }
            Ok(d) => decisions.push(d),
            Err(e) => tracing::error!(error = %e, "rate limit counter unavailable"),
        }
    }
    // Report the tighter bucket.
    let Some(decision) = decisions
        .iter()
        .copied()
        .min_by_key(|d| (d.allowed, d.remaining))
    else {
        return next.run(request).await;
    };
    if !decision.allowed {
        metrics::counter!("portcullis_rate_limited_total", "family" => name.clone()).increment(1);
        tracing::warn!(family = %name, "rate limit reached");
        // One `api_limit` event per family, IP and minute at most, so a flood of refusals
        // cannot flood the audit trail.
        let quiet = state
            .core
            .throttle(&format!("audit:api_limit:{name}:{ip}"), Limit::per(1, 60))
            .await
            .is_ok_and(|d| d.allowed);
        if quiet {
            state
                .core
                .audit(
                    "api_limit",
                    &format!("Rate limit reached on the {name} endpoints"),
                    portcullis_core::audit::EventFields {
                        client_id: client.as_deref(),
                        details: Some(json!({"family": name, "limit": decision.limit})),
                        ..Default::default()
                    },
                )
                .await;
        }
        let mut response = refusal(family, decision);
        headers(&mut response, decision);
        return response;
    }
    let mut response = next.run(request).await;
    headers(&mut response, decision);
    response
}

fn headers(response: &mut Response, d: Decision) {
    let h = response.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(d.reset_at));
    if !d.allowed {
        h.insert(header::RETRY_AFTER, HeaderValue::from(d.retry_after.max(1)));
    }
}

fn refusal(family: Family, d: Decision) -> Response {
    let body = match family {
        Family::Management => json!({
            "statusCode": 429,
            "error": "Too Many Requests",
            "message": "Global limit has been reached",
            "errorCode": "too_many_requests",
        }),
        Family::LoginForm => {
            let html = format!(
                "<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>Too many attempts</title>\
                 <link rel=\"stylesheet\" href=\"/u/assets/style.css\"><main class=\"card\"><h1>Too many attempts</h1>\
                 <p>Please wait {} seconds, then try again.</p></main></html>",
                d.retry_after.max(1)
            );
            return (StatusCode::TOO_MANY_REQUESTS, axum::response::Html(html)).into_response();
        }
        _ => json!({
            "error": "too_many_requests",
            "error_description": "Too many requests. Check the X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset headers.",
        }),
    };
    (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_cover_the_hammered_endpoints() {
        assert_eq!(family(&Method::POST, "/oauth/token"), Some(Family::Token));
        assert_eq!(family(&Method::GET, "/u/login"), None);
        assert_eq!(family(&Method::POST, "/u/login"), Some(Family::LoginForm));
        assert_eq!(
            family(&Method::POST, "/dbconnections/signup"),
            Some(Family::DbConnections)
        );
        assert_eq!(
            family(&Method::GET, "/api/v2/users"),
            Some(Family::Management)
        );
        assert_eq!(family(&Method::GET, "/authorize"), None);
    }

    #[test]
    fn overrides_parse() {
        let mut l = RateLimits::default();
        l.apply_overrides("token_per_ip=5, login_form_per_ip=2")
            .unwrap();
        assert_eq!((l.token_per_ip, l.login_form_per_ip), (5, 2));
        assert!(l.apply_overrides("nope=1").is_err());
        assert!(l.apply_overrides("token_per_ip=0").is_err());
    }
}
