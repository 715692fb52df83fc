//! `/api/v2/`: Attack protection, user blocks and tickets.

use super::{ApiCaller, ApiError, ApiResult, Scope, body, query};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use portcullis_core::management::ManagementError;
use portcullis_core::management::security::{
    BlocksQuery, EmailVerificationTicket, PasswordChangeTicket, ProtectionPart,
};
use portcullis_core::management::{
    Caller, CreateUserTickets, ReadAttackProtection, ReadUsers, UpdateAttackProtection, UpdateUsers,
};
use portcullis_core::model::{DATABASE_CONNECTION, LoginBlock, User};
use portcullis_core::protection::AttackProtection;
use serde_json::{Value, json};

/// `GET /api/v2/attack-protection/brute-force-protection` and its siblings.
/// One part of the attack protection document, as its endpoint shows it.
fn part_json(all: &AttackProtection, part: ProtectionPart) -> Result<Value, ApiError> {
    let all = serde_json::to_value(all).map_err(|e| ApiError(ManagementError::internal(e)))?;
    Ok(all[part.key()].clone())
}

async fn get_protection(state: AppState, caller: Caller, part: ProtectionPart) -> ApiResult {
    let granted = caller.require::<ReadAttackProtection>()?;
    let all = state.core.get_attack_protection(granted).await?;
    Ok(Json(part_json(&all, part)?))
}

async fn patch_protection(
    state: AppState,
    caller: Caller,
    part: ProtectionPart,
    bytes: &[u8],
) -> ApiResult {
    let granted = caller.require::<UpdateAttackProtection>()?;
    let patch: Value = body(bytes)?;
    let all = state
        .core
        .patch_attack_protection(granted, part, patch)
        .await?;
    Ok(Json(part_json(&all, part)?))
}

pub async fn get_brute_force(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> ApiResult {
    get_protection(state, caller, ProtectionPart::BruteForce).await
}

pub async fn patch_brute_force(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    bytes: axum::body::Bytes,
) -> ApiResult {
    patch_protection(state, caller, ProtectionPart::BruteForce, &bytes).await
}

pub async fn get_suspicious_ip(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> ApiResult {
    get_protection(state, caller, ProtectionPart::SuspiciousIp).await
}

pub async fn patch_suspicious_ip(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    bytes: axum::body::Bytes,
) -> ApiResult {
    patch_protection(state, caller, ProtectionPart::SuspiciousIp, &bytes).await
}

pub async fn get_breached(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
) -> ApiResult {
    get_protection(state, caller, ProtectionPart::BreachedPassword).await
}

pub async fn patch_breached(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    bytes: axum::body::Bytes,
) -> ApiResult {
    patch_protection(state, caller, ProtectionPart::BreachedPassword, &bytes).await
}

/// A user's brute-force blocks as Auth0 lists them.
pub fn blocks_json(user: &User, blocks: &[LoginBlock]) -> Value {
    let blocked_for: Vec<Value> = blocks
        .iter()
        .map(|b| json!({"identifier": user.email, "ip": b.ip, "connection": DATABASE_CONNECTION}))
        .collect();
    json!({ "blocked_for": blocked_for })
}

/// `GET /api/v2/user-blocks/{id}`.
pub async fn get_user_blocks(
    State(state): State<AppState>,
    Scope(granted): Scope<ReadUsers>,
    Path(id): Path<String>,
) -> ApiResult {
    let (user, blocks) = state.core.get_user_blocks(granted, Some(&id), None).await?;
    Ok(Json(blocks_json(&user, &blocks)))
}

/// `DELETE /api/v2/user-blocks/{id}`.
pub async fn delete_user_blocks(
    State(state): State<AppState>,
    Scope(granted): Scope<UpdateUsers>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .core
        .delete_user_blocks(granted, Some(&id), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v2/user-blocks?identifier=`.
pub async fn get_user_blocks_by_identifier(
    State(state): State<AppState>,
    Scope(granted): Scope<ReadUsers>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q: BlocksQuery = query(raw.as_deref())?;
    let (user, blocks) = state
        .core
        .get_user_blocks(granted, None, q.identifier.as_deref())
        .await?;
    Ok(Json(blocks_json(&user, &blocks)))
}

/// `DELETE /api/v2/user-blocks?identifier=`.
pub async fn delete_user_blocks_by_identifier(
    State(state): State<AppState>,
    Scope(granted): Scope<UpdateUsers>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let q: BlocksQuery = query(raw.as_deref())?;
    state
        .core
        .delete_user_blocks(granted, None, q.identifier.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v2/tickets/email-verification`.
pub async fn email_verification_ticket(
    State(state): State<AppState>,
    Scope(granted): Scope<CreateUserTickets>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input: EmailVerificationTicket = body(&bytes)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "ticket": state.core.email_verification_ticket(granted, input).await? })),
    ))
}

/// `POST /api/v2/tickets/password-change`.
pub async fn password_change_ticket(
    State(state): State<AppState>,
    Scope(granted): Scope<CreateUserTickets>,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input: PasswordChangeTicket = body(&bytes)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "ticket": state.core.password_change_ticket(granted, input).await? })),
    ))
}
