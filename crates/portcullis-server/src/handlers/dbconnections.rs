//! `/dbconnections/signup` and `/dbconnections/change_password`: Auth0's Authentication API
//! for database users, as JSON with Auth0's error shapes.

use super::no_store;
use crate::client_ip::ClientIp;
use crate::ratelimit::ClientBudget;
use crate::state::AppState;
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::accounts::{AccountError, SignupRequest};
use portcullis_core::model::DATABASE_CONNECTION;
use serde_json::{Value, json};

/// Auth0's answer to a reset request, whether or not the email has an account.
pub const RESET_SENT: &str = "We've just sent you an email to reset your password.";

/// Reads a JSON or form body into a JSON object.
fn body_fields(headers: &HeaderMap, body: &str) -> Option<Value> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return serde_json::from_str::<Value>(body)
            .ok()
            .filter(Value::is_object);
    }
    let map: serde_json::Map<String, Value> = url::form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    Some(Value::Object(map))
}

fn text(fields: &Value, name: &str) -> Option<String> {
    fields.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// An Authentication API error in Auth0's shape.
fn auth_error(status: StatusCode, name: &str, code: &str, description: Value) -> Response {
    let mut body = json!({
        "name": name,
        "code": code,
        "description": description,
        "statusCode": status.as_u16(),
    });
    if let Value::String(message) = &body["description"] {
        body["message"] = Value::String(message.clone());
    }
    no_store((status, axum::Json(body)).into_response())
}

fn account_error(error: AccountError) -> Response {
    match error {
        AccountError::Invalid(m) => auth_error(
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            "invalid_body",
            Value::String(m),
        ),
        AccountError::Exists => auth_error(
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            "invalid_signup",
            Value::String("Invalid sign up".to_owned()),
        ),
        AccountError::SignupDisabled => auth_error(
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            "operation_not_supported",
            Value::String("public signup is disabled".to_owned()),
        ),
        AccountError::Password(rejection) => {
            let mut body = json!({
                "name": rejection.name(),
                "message": rejection.message(),
                "code": rejection.code(),
                "description": rejection.description(),
                "statusCode": 400,
            });
            if let Value::Object(rules) = rejection.description()
                && let Some(list) = rules.get("rules").and_then(Value::as_array)
            {
                body["policy"] = Value::String(policy_text(list));
            }
            no_store((StatusCode::BAD_REQUEST, axum::Json(body)).into_response())
        }
        AccountError::Throttled { retry_after } => {
            let mut response = auth_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyAttemptsError",
                "too_many_attempts",
                Value::String(
                    "We have detected suspicious behaviour from your IP address. Try again later."
                        .to_owned(),
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
            response
        }
        AccountError::UnknownClient => auth_error(
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            "invalid_client",
            Value::String("Unknown client.".to_owned()),
        ),
        AccountError::Ticket => auth_error(
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            "invalid_ticket",
            Value::String("The link is invalid, has expired or was already used.".to_owned()),
        ),
        AccountError::Internal(e) => {
            tracing::error!(error = %portcullis_core::error::report(&e), "internal error on the accounts surface");
            auth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "server_error",
                Value::String("Something went wrong.".to_owned()),
            )
        }
    }
}

/// Auth0's `policy` text: the rules as a bulleted list.
fn policy_text(rules: &[Value]) -> String {
    let mut lines = Vec::new();
    for rule in rules {
        let mut message = rule["message"].as_str().unwrap_or_default().to_owned();
        if let Some(args) = rule["format"].as_array() {
            for arg in args {
                let value = arg.as_str().map_or_else(|| arg.to_string(), str::to_owned);
                if let Some(at) = message.find("%d").or_else(|| message.find("%s")) {
                    message.replace_range(at..at + 2, &value);
                }
            }
        }
        lines.push(format!("* {message}"));
        for item in rule["items"].as_array().into_iter().flatten() {
            lines.push(format!(
                " * {}",
                item["message"].as_str().unwrap_or_default()
            ));
        }
    }
    lines.join("\n")
}

fn check_connection(fields: &Value) -> Option<Response> {
    match text(fields, "connection") {
        Some(c) if c == DATABASE_CONNECTION => None,
        Some(_) => Some(auth_error(
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            "invalid_connection",
            Value::String(
                "The connection does not exist or is not a database connection.".to_owned(),
            ),
        )),
        None => Some(auth_error(
            StatusCode::BAD_REQUEST,
            "BadRequestError",
            "invalid_body",
            Value::String("Missing required property: connection".to_owned()),
        )),
    }
}

/// `POST /dbconnections/signup`.
pub async fn signup(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Some(fields) = body_fields(&headers, &body) else {
        return account_error(AccountError::Invalid(
            "The body must be a JSON object.".to_owned(),
        ));
    };
    if let Some(response) = check_connection(&fields) {
        return response;
    }
    let Some(client_id) = text(&fields, "client_id") else {
        return account_error(AccountError::Invalid(
            "Missing required property: client_id".to_owned(),
        ));
    };
    let request = SignupRequest {
        client_id,
        email: text(&fields, "email").unwrap_or_default(),
        password: text(&fields, "password").unwrap_or_default(),
        name: text(&fields, "name"),
        nickname: text(&fields, "nickname"),
        picture: text(&fields, "picture"),
        user_metadata: fields.get("user_metadata").cloned(),
        ip: ip.0.clone(),
    };
    let budget = ClientBudget::dbconnections(&state, &ip);
    let response = match state.core.signup(request, &budget).await {
        Ok(user) => {
            let id = user
                .user_id
                .strip_prefix("auth0|")
                .unwrap_or(&user.user_id)
                .to_owned();
            no_store(
                axum::Json(json!({
                    "_id": id,
                    "email_verified": user.email_verified,
                    "email": user.email,
                    "name": user.name,
                    "nickname": user.nickname,
                    "picture": user.picture,
                    "user_metadata": user.user_metadata,
                }))
                .into_response(),
            )
        }
        Err(e) => account_error(e),
    };
    budget.mark(response)
}

/// `POST /dbconnections/change_password`: the same answer whether or not the email exists.
pub async fn change_password(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let Some(fields) = body_fields(&headers, &body) else {
        return account_error(AccountError::Invalid(
            "The body must be a JSON object.".to_owned(),
        ));
    };
    if let Some(response) = check_connection(&fields) {
        return response;
    }
    let email = text(&fields, "email").unwrap_or_default();
    let budget = ClientBudget::dbconnections(&state, &ip);
    let response = match state
        .core
        .request_password_reset(text(&fields, "client_id"), &email, &ip.0, &budget)
        .await
    {
        Ok(()) => no_store(axum::Json(Value::String(RESET_SENT.to_owned())).into_response()),
        Err(e) => account_error(e),
    };
    budget.mark(response)
}
