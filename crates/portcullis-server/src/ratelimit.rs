//! Request limits on the endpoints attackers hammer: `/authorize`, login form posts, `/oauth/token`,
//! `/dbconnections/*`, `/passwordless/*` and the Management API, per client IP and per
//! application. Counters live in the database (see `portcullis_core::protection::throttle`),
//! so they hold across restarts and replicas; a busy bucket is counted in shares, one
//! database write per share rather than per request. Answers carry Auth0's `x-ratelimit-*`
//! headers; a refusal is a 429 with `Retry-After`.

use crate::client_ip::ClientIp;
use crate::identity::ClientIdentity;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portcullis_core::protection::admission::{Admission, Refused};
use portcullis_core::protection::throttle::{Decision, Limit};
use serde_json::json;

/// Requests allowed per minute, by family, per IP and per application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimits {
    pub authorize_per_ip: u32,
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
            authorize_per_ip: 600,
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
                "authorize_per_ip" => &mut self.authorize_per_ip,
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
    Authorize,
    LoginForm,
    Token,
    DbConnections,
    Passwordless,
    Management,
}

impl Family {
    /// The family's name in bucket keys, metrics and events.
    fn name(self) -> &'static str {
        match self {
            Self::Authorize => "authorize",
            Self::LoginForm => "loginform",
            Self::Token => "token",
            Self::DbConnections => "dbconnections",
            Self::Passwordless => "passwordless",
            Self::Management => "management",
        }
    }
}

fn family(method: &Method, path: &str) -> Option<Family> {
    if path.starts_with("/api/v2/") {
        return Some(Family::Management);
    }
    // Every request to /authorize may start a login: each is counted, GET as well as POST.
    if path == "/authorize" {
        return Some(Family::Authorize);
    }
    if method != Method::POST {
        return None;
    }
    match path {
        "/oauth/token" => Some(Family::Token),
        "/u/login" | "/u/signup" | "/u/reset-password" | "/u/unblock" | "/u/consent" => {
            Some(Family::LoginForm)
        }
        p if p.starts_with("/dbconnections/") => Some(Family::DbConnections),
        p if p.starts_with("/passwordless/") => Some(Family::Passwordless),
        _ => None,
    }
}

/// The tighter of an IP's and an application's decision, which the headers report.
#[derive(Clone, Copy, Debug)]
struct ClientDecision(Decision);

/// An application's own bucket of a family (`/oauth/token`, `/dbconnections/*`), charged by
/// the handler through [`Admission`] once the request is known to speak for it: after the
/// client authenticated, or for a public client once its request checks out. Its decision
/// rides back to the middleware on the response, which reports the tighter bucket.
pub(crate) struct ClientBudget {
    state: AppState,
    family: Family,
    /// The key the request's IP is counted by (a refusal's event is quieted per IP).
    ip: String,
    decision: std::sync::OnceLock<Decision>,
}

impl ClientBudget {
    pub(crate) fn token(state: &AppState, ip: &ClientIp) -> Self {
        Self::new(state, Family::Token, ip)
    }

    pub(crate) fn dbconnections(state: &AppState, ip: &ClientIp) -> Self {
        Self::new(state, Family::DbConnections, ip)
    }

    fn new(state: &AppState, family: Family, ip: &ClientIp) -> Self {
        Self {
            state: state.clone(),
            family,
            ip: ip.0.clone(),
            decision: std::sync::OnceLock::new(),
        }
    }

    /// Hands the decision, if one was made, to the middleware.
    pub(crate) fn mark(&self, mut response: Response) -> Response {
        if let Some(d) = self.decision.get() {
            response.extensions_mut().insert(ClientDecision(*d));
        }
        response
    }
}

#[async_trait::async_trait]
impl Admission for ClientBudget {
    async fn admit(&self, client_id: &str) -> Result<(), Refused> {
        let limits = &self.state.rate_limits;
        let per_minute = match self.family {
            Family::Token => limits.token_per_client,
            Family::DbConnections => limits.dbconnections_per_client,
            _ => return Ok(()),
        };
        let name = self.family.name();
        let bucket = format!("rl:{name}:client:{client_id}");
        match self
            .state
            .core
            .throttles()
            .count_shared(&bucket, Limit::per(per_minute, 60))
            .await
        {
            Ok(d) => {
                let _ = self.decision.set(d);
                if d.allowed {
                    return Ok(());
                }
                refused(&self.state, name, &self.ip, Some(client_id), d).await;
                Err(Refused {
                    retry_after: d.retry_after.max(1),
                })
            }
            Err(e) => {
                tracing::error!(error = %portcullis_core::error::report(&e), "rate limit counter unavailable");
                Ok(())
            }
        }
    }
}

/// Counts and logs a refusal: one `api_limit` event per family, IP key (an IPv4 address or
/// an IPv6 /64, as the limits count) and minute at most, so a flood of refusals cannot
/// flood the audit trail.
async fn refused(state: &AppState, name: &str, ip: &str, client: Option<&str>, decision: Decision) {
    metrics::counter!("portcullis_rate_limited_total", "family" => name.to_owned()).increment(1);
    tracing::warn!(family = %name, "rate limit reached");
    // Counted like the limit itself, so refusals past the first of the minute are decided in
    // memory and a flood of them never reaches the database.
    let quiet = state
        .core
        .throttles()
        .count_shared(&format!("audit:api_limit:{name}:{ip}"), Limit::per(1, 60))
        .await
        .is_ok_and(|d| d.allowed);
    if quiet {
        state
            .core
            .audit(
                "api_limit",
                &format!("Rate limit reached on the {name} endpoints"),
                portcullis_core::audit::EventFields {
                    client_id: client,
                    details: Some(json!({"family": name, "limit": decision.limit})),
                    ..Default::default()
                },
            )
            .await;
    }
}

/// The middleware: counts the request against its IP's bucket (and, on the Management API,
/// against the verified caller's application), refuses it past the limit, and reports the
/// tighter bucket in the `x-ratelimit-*` headers.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(family) = family(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let ip = request
        .extensions()
        .get::<ClientIp>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.clone());
    let limits = &state.rate_limits;
    let ip_limit = match family {
        Family::Authorize => limits.authorize_per_ip,
        Family::LoginForm => limits.login_form_per_ip,
        Family::Token => limits.token_per_ip,
        Family::DbConnections => limits.dbconnections_per_ip,
        Family::Passwordless => limits.passwordless_per_ip,
        Family::Management => limits.management_per_ip,
    };
    let name = family.name();
    let mut decisions = Vec::with_capacity(2);
    match state
        .core
        .throttles()
        .count_shared(&format!("rl:{name}:ip:{ip}"), Limit::per(ip_limit, 60))
        .await
    {
        Ok(d) => decisions.push(d),
        Err(e) => {
            tracing::error!(error = %portcullis_core::error::report(&e), "rate limit counter unavailable")
        }
    }
    // The Management API's caller is known from its verified token here; the applications
    // of the other families are charged by their handlers (see `ClientBudget`).
    let client = (family == Family::Management)
        .then(|| {
            request
                .extensions()
                .get::<ClientIdentity>()
                .and_then(|identity| identity.management_client(&state.core))
        })
        .flatten();
    if let Some(client) = client.as_deref()
        && decisions.iter().all(|d| d.allowed)
    {
        match state
            .core
            .throttles()
            .count_shared(
                &format!("rl:{name}:client:{client}"),
                Limit::per(limits.management_per_client, 60),
            )
            .await
        {
            Ok(d) => decisions.push(d),
            Err(e) => {
                tracing::error!(error = %portcullis_core::error::report(&e), "rate limit counter unavailable")
            }
        }
    }
    if let Some(refusal) = decisions.iter().copied().find(|d| !d.allowed) {
        refused(&state, name, &ip, client.as_deref(), refusal).await;
        let mut response = refusal_response(family, refusal);
        headers(&mut response, refusal);
        return response;
    }
    let mut response = next.run(request).await;
    if let Some(ClientDecision(d)) = response.extensions().get::<ClientDecision>().copied() {
        decisions.push(d);
    }
    // Report the tighter bucket.
    if let Some(decision) = decisions
        .iter()
        .copied()
        .min_by_key(|d| (d.allowed, d.remaining))
    {
        headers(&mut response, decision);
    }
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

fn refusal_response(family: Family, d: Decision) -> Response {
    let body = match family {
        Family::Management => json!({
            "statusCode": 429,
            "error": "Too Many Requests",
            "message": "Global limit has been reached",
            "errorCode": "too_many_requests",
        }),
        Family::Authorize | Family::LoginForm => {
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
        assert_eq!(family(&Method::GET, "/authorize"), Some(Family::Authorize));
        assert_eq!(family(&Method::POST, "/authorize"), Some(Family::Authorize));
        assert_eq!(family(&Method::GET, "/userinfo"), None);
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
