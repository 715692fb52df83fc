//! Thin handlers: extract, call one service method, map the result.

pub mod authorize;
pub mod discovery;
pub mod logout;
pub mod ops;
pub mod token;
pub mod userinfo;

use crate::errors::PageError;
use crate::state::AppState;
use axum::http::HeaderMap;
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
