//! A panic inside a handler or a middleware must not drop the connection. tower-http's
//! `CatchPanicLayer` turns it into a bare 500 marked [`Panicked`]; [`in_surface_shape`], just
//! outside it, rewrites that 500 in the shape of the surface that was called: RFC 6749 JSON,
//! Auth0's Management API error, or an error page with the request id.
//!
//! The panic itself is logged once, by the hook [`install_hook`] sets: one structured line
//! with the panic's message and place, in the request's span. Code must not put secrets in
//! panic messages (`expect` texts are fixed strings here).

use crate::errors::{OAuthHttpError, PageError};
use crate::handlers::management::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use portcullis_core::error::{OAuthError, OAuthErrorCode};
use portcullis_core::management::ManagementError;
use tower_http::catch_panic::CatchPanicLayer;

/// Marks the 500 that stands for a caught panic.
#[derive(Clone, Copy, Debug)]
pub struct Panicked;

type OnPanic = fn(Box<dyn std::any::Any + Send + 'static>) -> Response;

/// The layer that catches panics (innermost, around every route and its middleware).
#[must_use]
pub fn catch_layer() -> CatchPanicLayer<OnPanic> {
    CatchPanicLayer::custom(on_panic as OnPanic)
}

fn on_panic(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    metrics::counter!("portcullis_panics_total").increment(1);
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(Panicked);
    response
}

/// The surface a path belongs to, which decides the error's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Surface {
    /// RFC 6749 JSON: `/oauth/*`, `/userinfo`, `/dbconnections/*`, `/passwordless/*`.
    OAuth,
    /// Auth0's `{statusCode, error, message, errorCode}`.
    Management,
    /// Everything a browser is sent to: an HTML error page.
    Page,
}

fn surface(path: &str) -> Surface {
    if path.starts_with("/api/v2/") {
        Surface::Management
    } else if path.starts_with("/oauth/")
        || path == "/userinfo"
        || path.starts_with("/dbconnections/")
        || path.starts_with("/passwordless/")
    {
        Surface::OAuth
    } else {
        Surface::Page
    }
}

/// Middleware: answers a caught panic in its surface's own error shape.
pub async fn in_surface_shape(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let surface = surface(request.uri().path());
    // A cheap handle on the id (a shared buffer), kept for the rare page that needs it.
    let request_id = request.headers().get("x-request-id").cloned();
    let response = next.run(request).await;
    if response.extensions().get::<Panicked>().is_none() {
        return response;
    }
    let mut answer = match surface {
        Surface::OAuth => OAuthHttpError::from(OAuthError::new(
            OAuthErrorCode::ServerError,
            "The server could not complete the request",
        ))
        .into_response(),
        Surface::Management => ApiError(ManagementError::new(
            portcullis_core::management::Failure::Internal,
            "internal_error",
            "Internal error",
        ))
        .into_response(),
        Surface::Page => {
            let error = PageError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not complete the request.",
            );
            let tenant_name = crate::handlers::tenant_name(&state).await;
            let request_id = request_id.as_ref().and_then(|v| v.to_str().ok());
            error.render(&state, request_id, &tenant_name)
        }
    };
    let headers = answer.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer
}

/// Routes panics to the log as one structured line (the panic's message and place), in
/// place of the default hook's unstructured text on stderr.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a non-text payload".to_owned());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(panic = %message, location = %location, "panicked");
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_surface() {
        assert_eq!(surface("/oauth/token"), Surface::OAuth);
        assert_eq!(surface("/userinfo"), Surface::OAuth);
        assert_eq!(surface("/dbconnections/signup"), Surface::OAuth);
        assert_eq!(surface("/api/v2/users"), Surface::Management);
        assert_eq!(surface("/u/login"), Surface::Page);
        assert_eq!(surface("/authorize"), Surface::Page);
    }
}
