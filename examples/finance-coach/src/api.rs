//! The JSON API, for any client holding an access token for the coach's API: every handler
//! takes `Authenticated` (portcullis-verify checks the token) and requires a permission, and
//! answers with the caller's own data only.

use crate::AppState;
use crate::coach;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use portcullis_verify::{AuthError, Authenticated};
use serde_json::{Value, json};

/// An API failure: a token problem (401/403 with `WWW-Authenticate`) or a server error.
pub enum ApiError {
    Auth(AuthError),
    Internal(String),
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        Self::Auth(e)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Auth(e) => e.into_response(),
            Self::Internal(e) => {
                tracing::error!(error = %e, "API failure");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({"error": "server_error"})),
                )
                    .into_response()
            }
        }
    }
}

/// The first day of this month, as an ISO date.
fn month_start() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-01", d.year(), u8::from(d.month()))
}

/// `GET /api/transactions` (`read:transactions`): this month's transactions.
pub async fn list_transactions(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Json<Value>, ApiError> {
    claims.require_permission("read:transactions")?;
    let list = state.db.transactions(&claims.sub, &month_start()).await?;
    Ok(Json(json!({ "transactions": list })))
}

/// `GET /api/budgets` (`read:budgets`).
pub async fn list_budgets(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Json<Value>, ApiError> {
    claims.require_permission("read:budgets")?;
    let list = state.db.budgets(&claims.sub).await?;
    Ok(Json(json!({ "budgets": list })))
}

/// `GET /api/summary` (`read:transactions` and `read:budgets`): spending against budget,
/// with the coaching tips.
pub async fn summary(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Json<Value>, ApiError> {
    claims.require_permission("read:transactions")?;
    claims.require_permission("read:budgets")?;
    let transactions = state.db.transactions(&claims.sub, &month_start()).await?;
    let budgets = state.db.budgets(&claims.sub).await?;
    let summary = coach::summarize(&transactions, &budgets);
    Ok(Json(json!({ "sub": claims.sub, "summary": summary })))
}

/// `GET /api/admin/overview` (`read:all_users`): counts across every user.
pub async fn admin_overview(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Json<Value>, ApiError> {
    claims.require_permission("read:all_users")?;
    let (users, accounts, transactions) = state.db.overview().await?;
    Ok(Json(
        json!({"users": users, "accounts": accounts, "transactions": transactions}),
    ))
}

/// `GET /bff/summary`: the dashboard's own call. The browser holds only the session cookie;
/// the server calls the API with the session's access token, as any API client would.
pub async fn bff_summary(State(state): State<AppState>, jar: CookieJar) -> Response {
    let Some((_, session)) = crate::auth::current(&state, &jar).await else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "not_logged_in"})),
        )
            .into_response();
    };
    let url = format!("{}/api/summary", state.config.base_url);
    let answer = state
        .http
        .get(&url)
        .bearer_auth(&session.access_token)
        .send()
        .await;
    match answer {
        Ok(r) => {
            let status =
                StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, Json(body)).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "calling the API failed");
            (
                StatusCode::BAD_GATEWAY,
                Json(json!({"error": "api_unreachable"})),
            )
                .into_response()
        }
    }
}
