//! Middleware feeding the audit trail: the request's IP and user agent for every event,
//! and a `sapi`/`fapi` event for every Management API change.

use crate::identity::ClientIdentity;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use portcullis_core::audit::{REQUEST, RequestInfo};

/// Runs the request with its details in the task-local the services read, and puts the
/// client IP in the request's extensions. The IP is the socket's peer unless the peer is a
/// trusted proxy (see `crate::client_ip`).
pub async fn request_info(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let ip = crate::client_ip::client_ip(&request, &state.trusted_proxies);
    request.extensions_mut().insert(crate::client_ip::ClientIp(
        ip.map_or_else(|| "unknown".to_owned(), crate::client_ip::ip_key),
    ));
    let info = RequestInfo {
        ip: ip.map(|ip| ip.to_string()),
        user_agent: request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    REQUEST.scope(info, next.run(request)).await
}

/// Records each Management API call that changes something, with the acting client.
pub async fn management_calls(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let changes = path.starts_with("/api/v2/")
        && matches!(
            method,
            Method::POST | Method::PATCH | Method::PUT | Method::DELETE
        );
    if !changes {
        return next.run(request).await;
    }
    // The acting application: the `azp` of the verified bearer token, whatever its audience.
    let client_id = request
        .extensions()
        .get::<ClientIdentity>()
        .and_then(|identity| identity.claims(&state.core))
        .and_then(|claims| {
            claims
                .get("azp")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        });
    let response = next.run(request).await;
    state
        .core
        .audit_management_call(
            client_id.as_deref(),
            method.as_str(),
            &path,
            response.status().as_u16(),
        )
        .await;
    response
}
