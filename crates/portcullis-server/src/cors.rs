//! CORS for the endpoints a browser application calls directly. Discovery and JWKS are
//! public; `/oauth/token`, `/oauth/revoke` and `/userinfo` answer only origins listed in an
//! application's Allowed Web Origins. Nothing here allows credentials (cookies).

use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

fn is_api_path(path: &str) -> bool {
    matches!(path, "/oauth/token" | "/oauth/revoke" | "/userinfo")
}

pub async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let public = path.starts_with("/.well-known/");
    let origin = request.headers().get(header::ORIGIN).cloned();
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let allow: Option<HeaderValue> = match &origin {
        Some(_) if public => Some(HeaderValue::from_static("*")),
        Some(o) if is_api_path(&path) => match o.to_str() {
            Ok(text) => match state.core.origin_allowed(text).await {
                Ok(true) => Some(o.clone()),
                Ok(false) => None,
                Err(e) => {
                    tracing::error!(error = %portcullis_core::error::report(&e), "checking a CORS origin failed");
                    None
                }
            },
            Err(_) => None,
        },
        _ => None,
    };
    let mut response = if preflight && (public || is_api_path(&path)) {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if allow.is_some() {
            let h = r.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("Authorization, Content-Type, Auth0-Client"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        r
    } else {
        next.run(request).await
    };
    if let Some(value) = allow {
        let h = response.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}
