//! `/api/v2/`: roles, their permissions and their members, with their wire formats.

use super::paging::PageParams;
use super::{ApiResult, Scope, body, edit_of, edited, query};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use portcullis_core::management::roles::{PermissionView, RoleFields};
use portcullis_core::management::{
    CreateRoleMembers, CreateRoles, DeleteRoles, ReadRoleMembers, ReadRoles, UpdateRoles,
};
use portcullis_core::model::{Permission, Role, User};
use serde::Deserialize;
use serde_json::{Value, json};

/// A role as the Management API shows it.
pub fn role_json(role: &Role) -> Value {
    json!({ "id": role.id, "name": role.name, "description": role.description })
}

/// A permission as Auth0 lists it; `with_sources` adds where a user holds it from.
pub fn permission_json(view: &PermissionView, with_sources: bool) -> Value {
    let mut v = json!({
        "permission_name": view.permission.permission_name,
        "description": view.description,
        "resource_server_name": view.resource_server_name,
        "resource_server_identifier": view.permission.resource_server_identifier,
    });
    if with_sources {
        v["sources"] = match &view.source {
            Some(role) => {
                json!([{ "source_id": role.id, "source_name": role.name, "source_type": "ROLE" }])
            }
            None => json!([{ "source_id": "", "source_name": "", "source_type": "DIRECT" }]),
        };
    }
    v
}

/// A role's member as `GET /api/v2/roles/{id}/users` lists it.
fn member_json(u: &User) -> Value {
    json!({ "user_id": u.user_id, "email": u.email, "name": u.name, "picture": u.picture })
}

/// The body of `POST` and `PATCH /api/v2/roles`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    pub name: Option<String>,
    pub description: Option<String>,
}

impl From<RoleInput> for RoleFields {
    fn from(input: RoleInput) -> Self {
        Self {
            name: input.name,
            description: input.description,
        }
    }
}

/// The body that adds or removes permissions (of a role or a user).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionsInput {
    pub permissions: Vec<Permission>,
}

/// The body that assigns or removes a user's roles.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolesInput {
    pub roles: Vec<String>,
}

/// The body that assigns a role to users.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsersInput {
    pub users: Vec<String>,
}

/// `GET /api/v2/roles`.
pub async fn list_roles(
    State(state): State<AppState>,
    Scope(granted): Scope<ReadRoles>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params: PageParams = query(q.as_deref())?;
    let window = params.window()?;
    let page = state
        .core
        .roles()
        .list_roles_api(granted, params.name_filter.as_deref(), window)
        .await?;
    Ok(Json(params.answer(&page, "roles", window, role_json)))
}

/// `POST /api/v2/roles`.
pub async fn create_role(
    State(state): State<AppState>,
    Scope(granted): Scope<CreateRoles>,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let input = body::<RoleInput>(&bytes)?;
    let role = state
        .core
        .roles()
        .create_role(granted, input.into())
        .await?;
    Ok(Json(role_json(&role)))
}

/// `GET /api/v2/roles/{id}`.
pub async fn get_role(
    State(state): State<AppState>,
    Scope(granted): Scope<ReadRoles>,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(Json(role_json(
        &state.core.roles().get_role(granted, &id).await?,
    )))
}

/// `PATCH /api/v2/roles/{id}`.
pub async fn update_role(
    State(state): State<AppState>,
    Scope(granted): Scope<UpdateRoles>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let input = body::<RoleInput>(&bytes)?;
    let role = state
        .core
        .roles()
        .update_role_api(granted, &id, input.into())
        .await?;
    Ok(Json(role_json(&role)))
}

/// `DELETE /api/v2/roles/{id}`.
pub async fn delete_role(
    State(state): State<AppState>,
    Scope(granted): Scope<DeleteRoles>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.core.roles().delete_role_api(granted, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v2/roles/{id}/permissions`.
pub async fn list_role_permissions(
    State(state): State<AppState>,
    Scope(granted): Scope<ReadRoles>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params: PageParams = query(q.as_deref())?;
    let window = params.window()?;
    let page = state
        .core
        .roles()
        .role_permissions(granted, &id, window)
        .await?;
    Ok(Json(params.answer(&page, "permissions", window, |p| {
        permission_json(p, false)
    })))
}

/// `POST` (add) or `DELETE` (remove) `/api/v2/roles/{id}/permissions`.
pub async fn edit_role_permissions(
    State(state): State<AppState>,
    Scope(granted): Scope<UpdateRoles>,
    Path(id): Path<String>,
    method: Method,
    bytes: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let edit = edit_of(&method);
    let input = body::<PermissionsInput>(&bytes)?;
    state
        .core
        .roles()
        .change_role_permissions_api(granted, &id, &input.permissions, edit)
        .await?;
    Ok(edited(edit))
}

/// `GET /api/v2/roles/{id}/users`.
pub async fn list_role_users(
    State(state): State<AppState>,
    Scope(granted): Scope<ReadRoleMembers>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params: PageParams = query(q.as_deref())?;
    let window = params.window()?;
    let page = state.core.roles().role_users(granted, &id, window).await?;
    Ok(Json(params.answer(&page, "users", window, member_json)))
}

/// `POST /api/v2/roles/{id}/users`.
pub async fn assign_role_users(
    State(state): State<AppState>,
    Scope(granted): Scope<CreateRoleMembers>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    state
        .core
        .roles()
        .assign_role_users(granted, &id, &body::<UsersInput>(&bytes)?.users)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
