//! Thin handlers: extract, call one service method, map the result.

pub mod accounts;
pub mod authorize;
pub mod dbconnections;
pub mod discovery;
pub mod logout;
pub mod management;
pub mod ops;
pub mod token;
pub mod userinfo;

use crate::errors::PageError;
use crate::state::AppState;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum_extra::extract::cookie::{Cookie, SameSite};

/// The SSO session cookie.
pub const SESSION_COOKIE: &str = "pc_session";

pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Renders an error page with the tenant's name and the request id.
pub async fn error_page(state: &AppState, headers: &HeaderMap, error: PageError) -> Response {
    let tenant_name = tenant_name(state).await;
    error.render(state, request_id(headers).as_deref(), &tenant_name)
}

pub async fn tenant_name(state: &AppState) -> String {
    state
        .core
        .tenant()
        .await
        .map(|t| t.friendly_name)
        .unwrap_or_else(|_| "Portcullis".to_owned())
}

/// A cookie with the project's defaults: HttpOnly, SameSite=Lax, Secure on HTTPS.
pub fn cookie(
    state: &AppState,
    name: String,
    value: String,
    path: &str,
    max_age: i64,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.secure_cookies)
        .path(path.to_owned())
        .max_age(time::Duration::seconds(max_age))
        .build()
}

/// A cookie that tells the browser to forget `name` at `path`.
pub fn removal(state: &AppState, name: String, path: &str) -> Cookie<'static> {
    cookie(state, name, String::new(), path, 0)
}

/// Marks a response that may be shown in a frame of the origins its CSP names (the
/// `web_message` response); the security-header layer then omits `X-Frame-Options` and COOP.
#[derive(Clone, Copy, Debug)]
pub struct Framable;

/// `Cache-Control: no-store` (and the HTTP/1.0 `Pragma`), for anything carrying a secret.
pub fn no_store(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// The CSP of a page: strict, with optional script nonce, form targets and framing origin.
pub fn page_csp(
    nonce: Option<&str>,
    form_action: Option<&str>,
    frame_ancestors: Option<&str>,
) -> HeaderValue {
    let mut csp =
        String::from("default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'");
    if let Some(n) = nonce {
        csp.push_str(&format!("; script-src 'nonce-{n}'"));
    }
    if let Some(f) = form_action {
        csp.push_str(&format!("; form-action {f}"));
    }
    csp.push_str(&format!(
        "; frame-ancestors {}",
        frame_ancestors.unwrap_or("'none'")
    ));
    HeaderValue::from_str(&csp)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"))
}
