//! `/api/v2/`: Users, and their roles and permissions.

use super::paging::PageParams;
use super::roles::{PermissionsInput, RolesInput, permission_json, role_json};
use super::{ApiCaller, ApiResult, body, query};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use portcullis_core::management::users::{CreateUser, ListUsersParams, UpdateUser};
use portcullis_core::management::{
    CreateRoleMembers, CreateUsers, DeleteRoleMembers, DeleteUsers, ReadRoles, ReadUsers,
    UpdateUsers,
};
use portcullis_core::store::Edit;
use serde_json::Value;

/// `GET /api/v2/users`.
pub async fn list_users(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let granted = caller.require::<ReadUsers>()?;
    let params: ListUsersParams = query(q.as_deref())?;
    Ok(Json(state.core.list_users(granted, &params).await?))
}

/// `POST /api/v2/users`.
pub async fn create_user(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let granted = caller.require::<CreateUsers>()?;
    let input: CreateUser = body(&bytes)?;
    Ok((
        StatusCode::CREATED,
        Json(state.core.create_user(granted, input).await?),
    ))
}

/// `GET /api/v2/users/{id}`.
pub async fn get_user(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let granted = caller.require::<ReadUsers>()?;
    Ok(Json(state.core.get_user(granted, &id).await?))
}

/// `PATCH /api/v2/users/{id}`.
pub async fn update_user(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let granted = caller.require::<UpdateUsers>()?;
    let patch: UpdateUser = body(&bytes)?;
    Ok(Json(state.core.update_user(granted, &id, patch).await?))
}

/// `DELETE /api/v2/users/{id}`.
pub async fn delete_user(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let granted = caller.require::<DeleteUsers>()?;
    state.core.delete_user(granted, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
pub struct ByEmail {
    pub email: Option<String>,
    pub fields: Option<String>,
    pub include_fields: Option<bool>,
}

/// `GET /api/v2/users-by-email?email=`.
pub async fn users_by_email(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let granted = caller.require::<ReadUsers>()?;
    let params: ByEmail = query(q.as_deref())?;
    let email = params.email.unwrap_or_default();
    Ok(Json(state.core.users_by_email(granted, &email).await?))
}

/// `GET /api/v2/users/{id}/roles`.
pub async fn list_user_roles(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let (users, roles) = (
        caller.require::<ReadUsers>()?,
        caller.require::<ReadRoles>()?,
    );
    let params: PageParams = query(q.as_deref())?;
    let window = params.window()?;
    let page = state.core.user_roles(users, roles, &id, window).await?;
    Ok(Json(params.answer(&page, "roles", window, role_json)))
}

/// `POST /api/v2/users/{id}/roles`.
pub async fn assign_user_roles(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let granted = caller.require::<CreateRoleMembers>()?;
    state
        .core
        .assign_user_roles(granted, &id, &body::<RolesInput>(&bytes)?.roles)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v2/users/{id}/roles`.
pub async fn remove_user_roles(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let granted = caller.require::<DeleteRoleMembers>()?;
    state
        .core
        .remove_user_roles(granted, &id, &body::<RolesInput>(&bytes)?.roles)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v2/users/{id}/permissions`.
pub async fn list_user_permissions(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let granted = caller.require::<ReadUsers>()?;
    let params: PageParams = query(q.as_deref())?;
    let window = params.window()?;
    let page = state.core.user_permissions(granted, &id, window).await?;
    Ok(Json(params.answer(&page, "permissions", window, |p| {
        permission_json(p, true)
    })))
}

/// `POST /api/v2/users/{id}/permissions`.
pub async fn add_user_permissions(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let granted = caller.require::<UpdateUsers>()?;
    state
        .core
        .change_user_permissions_api(
            granted,
            &id,
            &body::<PermissionsInput>(&bytes)?.permissions,
            Edit::Add,
        )
        .await?;
    Ok(StatusCode::CREATED)
}

/// `DELETE /api/v2/users/{id}/permissions`.
pub async fn remove_user_permissions(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let granted = caller.require::<UpdateUsers>()?;
    state
        .core
        .change_user_permissions_api(
            granted,
            &id,
            &body::<PermissionsInput>(&bytes)?.permissions,
            Edit::Remove,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
