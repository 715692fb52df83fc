//! HTTP errors, one type per surface because the wire contracts differ:
//! - [`OAuthHttpError`]: RFC 6749 JSON (`error`, `error_description`) with its status;
//! - [`PageError`]: a rendered error page carrying the request id.
//!
//! Internal detail goes to the log, never to the client.

use crate::state::AppState;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use portcullis_core::error::{OAuthError, OAuthErrorCode};
use serde_json::json;

/// An OAuth error as JSON. `basic_auth` adds the `WWW-Authenticate` challenge RFC 6749
/// asks for when a client tried HTTP Basic authentication.
#[derive(Debug)]
pub struct OAuthHttpError {
    pub error: OAuthError,
    pub basic_auth: bool,
}

impl From<OAuthError> for OAuthHttpError {
    fn from(error: OAuthError) -> Self {
        Self {
            error,
            basic_auth: false,
        }
    }
}

impl IntoResponse for OAuthHttpError {
    fn into_response(self) -> Response {
        let code = self.error.code();
        let status = match code {
            OAuthErrorCode::InvalidClient | OAuthErrorCode::InvalidToken => {
                StatusCode::UNAUTHORIZED
            }
            OAuthErrorCode::AccessDenied => StatusCode::FORBIDDEN,
            OAuthErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            OAuthErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        if let OAuthError::Internal(internal) = &self.error {
            tracing::error!(error = %internal.chain(), "internal error on the OAuth surface");
        }
        let body = json!({ "error": code.as_str(), "error_description": self.error.description() });
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if status == StatusCode::UNAUTHORIZED && self.basic_auth {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"portcullis\""),
            );
        }
        response
    }
}

/// A rendered error page.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub title: String,
    pub detail: String,
    /// Logged, never shown.
    pub internal: Option<String>,
}

impl PageError {
    pub fn new(status: StatusCode, title: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title: title.to_owned(),
            detail: detail.into(),
            internal: None,
        }
    }

    /// An internal failure: a generic page for the user, the whole chain for the log.
    pub fn internal(error: &portcullis_core::error::Internal) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Something went wrong".to_owned(),
            detail: "The server could not complete the request.".to_owned(),
            internal: Some(error.chain()),
        }
    }

    pub fn render(self, state: &AppState, request_id: Option<&str>, tenant_name: &str) -> Response {
        if let Some(detail) = &self.internal {
            tracing::error!(error = %detail, "internal error on a page");
        }
        let html = state.pages.render(
            "error.html",
            minijinja::context! {
                title => self.title,
                detail => self.detail,
                request_id => request_id,
                tenant_name => tenant_name,
            },
        );
        (self.status, Html(html)).into_response()
    }
}
