//! The Management API (`/api/v2/`): thin handlers over `portcullis_core::management`, one
//! file per area. Errors use Auth0's shape: `{statusCode, error, message, errorCode}`.

mod apps;
mod logs;
mod paging;
mod roles;
mod security;
mod users;

pub use apps::*;
pub use logs::*;
pub use paging::PageParams;
pub use roles::*;
pub use security::*;
pub use users::*;

use crate::identity::ClientIdentity;
use crate::state::AppState;
use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::management::{Caller, Failure, ManagementError};
use portcullis_core::store::Edit;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A Management API error as a response.
#[derive(Debug)]
pub struct ApiError(pub ManagementError);

impl From<ManagementError> for ApiError {
    fn from(e: ManagementError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = match e.kind {
            Failure::BadRequest => StatusCode::BAD_REQUEST,
            Failure::Unauthorized => StatusCode::UNAUTHORIZED,
            Failure::Forbidden => StatusCode::FORBIDDEN,
            Failure::NotFound => StatusCode::NOT_FOUND,
            Failure::Conflict => StatusCode::CONFLICT,
            Failure::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Failure::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if let Some(internal) = &e.source {
            tracing::error!(error = %internal.chain(), "internal error on the Management API");
        }
        let body = json!({
            "statusCode": status.as_u16(),
            "error": status.canonical_reason().unwrap_or("Internal Server Error"),
            "message": e.message,
            "errorCode": e.error_code,
        });
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED
            && let Ok(v) =
                HeaderValue::from_str("Bearer realm=\"portcullis\", error=\"invalid_token\"")
        {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

pub(crate) type ApiResult<T = Json<Value>> = Result<T, ApiError>;

/// The authenticated caller, from the request's verified bearer token.
pub struct ApiCaller(pub Caller);

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Ok(identity) = ClientIdentity::from_request_parts(parts, state).await;
        let bearer = identity.bearer(&state.core);
        Ok(Self(state.core.management_caller(bearer).await?))
    }
}

/// The caller's proof of scope `S`, or the 401 or 403 that refuses the call: a handler
/// names its scope in its signature.
pub struct Scope<S: portcullis_core::management::Scope>(
    pub portcullis_core::management::Granted<S>,
);

impl<S: portcullis_core::management::Scope> FromRequestParts<AppState> for Scope<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ApiCaller(caller) = ApiCaller::from_request_parts(parts, state).await?;
        Ok(Self(caller.require::<S>()?))
    }
}

/// What a `POST` or `DELETE` to a membership path does: adds or removes.
pub(crate) fn edit_of(method: &axum::http::Method) -> Edit {
    if method == axum::http::Method::POST {
        Edit::Add
    } else {
        Edit::Remove
    }
}

/// The answer to a membership change: 201 for an addition, 204 for a removal (Auth0's).
pub(crate) fn edited(edit: Edit) -> StatusCode {
    match edit {
        Edit::Add => StatusCode::CREATED,
        Edit::Remove => StatusCode::NO_CONTENT,
    }
}

/// Parses a JSON body, answering Auth0's payload validation error.
pub(crate) fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let detail = e.to_string();
        let detail = detail.split(" at line ").next().unwrap_or_default();
        ApiError(ManagementError::bad_request(format!(
            "Payload validation error: {detail}"
        )))
    })
}

pub(crate) fn query<T: DeserializeOwned + Default>(raw: Option<&str>) -> Result<T, ApiError> {
    match raw {
        None | Some("") => Ok(T::default()),
        Some(q) => serde_urlencoded::from_str(q).map_err(|e| {
            ApiError(ManagementError::invalid_query(format!(
                "Query validation error: {e}"
            )))
        }),
    }
}

/// Unknown paths under `/api/v2/` answer in the API's error shape.
pub async fn not_found() -> ApiError {
    ApiError(ManagementError::new(
        Failure::NotFound,
        "not_found",
        "Not Found",
    ))
}
