//! `/userinfo` (OpenID Connect Core §5.3).

use crate::errors::OAuthHttpError;
use crate::identity::ClientIdentity;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::oauth::resource::Bearer;

fn unauthorized(error: Option<&str>) -> Response {
    let challenge = match error {
        Some(e) => format!("Bearer realm=\"portcullis\", error=\"{e}\""),
        None => "Bearer realm=\"portcullis\"".to_owned(),
    };
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({
            "error": error.unwrap_or("invalid_request"),
            "error_description": "A valid access token for /userinfo is required",
        })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// `GET` or `POST /userinfo` with a bearer token.
pub async fn userinfo(State(state): State<AppState>, identity: ClientIdentity) -> Response {
    let bearer = identity.bearer(&state.core);
    if bearer == Bearer::Missing {
        return unauthorized(None);
    }
    match state.core.userinfo(bearer).await {
        Ok(Some(claims)) => {
            let mut response = Json(claims).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Ok(None) => unauthorized(Some("invalid_token")),
        Err(error) => OAuthHttpError::from(error).into_response(),
    }
}
