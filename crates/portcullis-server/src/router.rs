//! Every route and its layers, on one screen.

use crate::handlers::{
    accounts, authorize, dbconnections, discovery, logout, ops, token, userinfo,
};
use crate::state::AppState;
use crate::telemetry;
use axum::Router;
use axum::http::HeaderName;
use axum::routing::{get, post};
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

/// Largest request body accepted (forms and JSON are small).
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        // Discovery
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route("/.well-known/jwks.json", get(discovery::jwks))
        // Authorization and Universal Login
        .route(
            "/authorize",
            get(authorize::authorize).post(authorize::authorize_post),
        )
        .route(
            "/u/login",
            get(authorize::login_page).post(authorize::login),
        )
        .route(
            "/u/consent",
            get(authorize::consent_page).post(authorize::consent),
        )
        .route(
            "/u/signup",
            get(accounts::signup_page).post(accounts::signup_form),
        )
        .route(
            "/u/reset-password",
            get(accounts::reset_page).post(accounts::reset_form),
        )
        .route("/u/email-verification", get(accounts::verify_email))
        .route(
            "/u/unblock",
            get(accounts::unblock_page).post(accounts::unblock),
        )
        // Database connections (Auth0's Authentication API)
        .route("/dbconnections/signup", post(dbconnections::signup))
        .route(
            "/dbconnections/change_password",
            post(dbconnections::change_password),
        )
        .route("/u/assets/style.css", get(ops::style_css))
        // Tokens
        .route("/oauth/token", post(token::token))
        .route("/oauth/revoke", post(token::revoke))
        .route("/oauth/introspect", post(token::introspect))
        .route(
            "/userinfo",
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        // Logout
        .route("/v2/logout", get(logout::logout_v2))
        .route(
            "/oidc/logout",
            get(logout::end_session).post(logout::end_session),
        )
        // Management API (Auth0's /api/v2/): built from one endpoint table with its OpenAPI document
        .merge(crate::management_api::routes())
        // Operations
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::cors::cors,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::audit::management_calls,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::ratelimit::limit,
        ))
        // Credentials read once, for the rate limiter, the audit and the handlers.
        .layer(axum::middleware::from_fn(crate::identity::identify))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::audit::request_info,
        ))
        .with_state(state.clone());
    layered(routes, state)
}

/// The layers every response passes through, outermost last: panics caught and answered in
/// their surface's shape, security headers, the request id, the access log and metrics, the
/// timeout and the body limit. Public so tests can wrap routes of their own the same way.
pub fn layered(routes: Router, state: AppState) -> Router {
    let secure = state.secure_cookies;
    let x_request_id = HeaderName::from_static("x-request-id");
    routes
        .layer(crate::panics::catch_layer())
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::panics::in_surface_shape,
        ))
        .layer(axum::middleware::from_fn_with_state(
            secure,
            crate::headers::security_headers,
        ))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(
                    x_request_id.clone(),
                    MakeRequestUuid,
                ))
                .layer(telemetry::trace_layer())
                .layer(axum::middleware::from_fn(telemetry::record_metrics))
                .layer(PropagateRequestIdLayer::new(x_request_id))
                .layer(TimeoutLayer::with_status_code(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(30),
                ))
                .layer(RequestBodyLimitLayer::new(BODY_LIMIT)),
        )
}
