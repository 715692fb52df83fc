//! `/.well-known/openid-configuration` and `/.well-known/jwks.json`.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub async fn openid_configuration(State(state): State<AppState>) -> Json<Value> {
    let s = state.core.settings();
    Json(json!({
        "issuer": s.issuer,
        "authorization_endpoint": s.url("authorize"),
        "token_endpoint": s.url("oauth/token"),
        "userinfo_endpoint": s.url("userinfo"),
        "jwks_uri": s.url(".well-known/jwks.json"),
        "revocation_endpoint": s.url("oauth/revoke"),
        "introspection_endpoint": s.url("oauth/introspect"),
        "end_session_endpoint": s.url("oidc/logout"),
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "aud", "auth_time", "email", "email_verified", "exp", "iat", "iss", "name",
            "nickname", "nonce", "picture", "sid", "sub", "updated_at"
        ],
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": false,
    }))
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.core.jwks()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}
