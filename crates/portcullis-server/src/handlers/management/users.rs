//! `/api/v2/`: Users, and their roles and permissions.

use super::paging::PageParams;
use super::roles::{PermissionsInput, RolesInput, permission_json, role_json};
use super::{ApiCaller, ApiResult, Scope, body, edit_of, edited, query};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use portcullis_core::management::users::{CreateUser, UpdateUser, UserQuery};
use portcullis_core::management::{
    CreateRoleMembers, CreateUsers, DeleteRoleMembers, DeleteUsers, ReadRoles, ReadUsers,
    UpdateUsers,
};
use portcullis_core::model::{Timestamp, User};
use portcullis_core::store::Page;
use serde_json::{Value, json};

/// Unix seconds as Auth0's ISO 8601 timestamps.
fn iso(ts: Timestamp) -> Value {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].000Z"
            ))
            .ok()
        })
        .map_or(Value::Null, Value::String)
}

/// The user object as Auth0's Management API returns it.
pub fn user_json(user: &User) -> Value {
    let id_part = user
        .user_id
        .split_once('|')
        .map_or(user.user_id.as_str(), |(_, id)| id);
    let mut out = json!({
        "user_id": user.user_id,
        "email": user.email,
        "email_verified": user.email_verified,
        "name": user.name,
        "nickname": user.nickname,
        "picture": user.picture,
        "identities": [{
            "connection": user.connection,
            "user_id": id_part,
            "provider": "auth0",
            "isSocial": false,
        }],
        "created_at": iso(user.created_at),
        "updated_at": iso(user.updated_at),
        "logins_count": user.logins_count,
        "blocked": user.blocked,
        "user_metadata": user.user_metadata,
        "app_metadata": user.app_metadata,
    });
    if let Some(last) = user.last_login {
        out["last_login"] = iso(last);
    }
    out
}

/// `GET /api/v2/users` parameters.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
pub struct ListUsersParams {
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    pub include_totals: Option<bool>,
    pub q: Option<String>,
    pub sort: Option<String>,
    pub fields: Option<String>,
    pub include_fields: Option<bool>,
    pub search_engine: Option<String>,
    pub connection: Option<String>,
}

/// Keeps only the requested fields of a user object (`fields`, `include_fields`).
fn select_fields(user: Value, fields: Option<&str>, include: bool) -> Value {
    let Some(fields) = fields.filter(|f| !f.is_empty()) else {
        return user;
    };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    let Value::Object(map) = user else {
        return user;
    };
    Value::Object(
        map.into_iter()
            .filter(|(k, _)| wanted.contains(&k.as_str()) == include)
            .collect(),
    )
}

/// `GET /api/v2/users`.
pub async fn list_users(
    State(state): State<AppState>,
    Scope(granted): Scope<ReadUsers>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params: ListUsersParams = query(q.as_deref())?;
    let search = UserQuery {
        q: params.q.as_deref(),
        sort: params.sort.as_deref(),
        connection: params.connection.as_deref(),
    };
    let page = state
        .core
        .list_users(granted, search, params.page, params.per_page)
        .await?;
    Ok(Json(users_answer(&page, &params)))
}

/// A page of users in the form `params` asked for: the fields chosen, and Auth0's totals
/// object (with `length`) or a bare array.
pub fn users_answer(page: &Page<User>, params: &ListUsersParams) -> Value {
    let include = params.include_fields.unwrap_or(true);
    let users: Vec<Value> = page
        .items
        .iter()
        .map(|u| select_fields(user_json(u), params.fields.as_deref(), include))
        .collect();
    if params.include_totals.unwrap_or(false) {
        let per_page = params.per_page.unwrap_or(50);
        let start = params.page.unwrap_or(0) * per_page;
        json!({ "start": start, "limit": per_page, "length": users.len(), "total": page.total, "users": users })
    } else {
        Value::Array(users)
    }
}

/// `POST /api/v2/users`.
pub async fn create_user(
    State(state): State<AppState>,
    Scope(granted): Scope<CreateUsers>,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: CreateUser = body(&bytes)?;
    Ok((
        StatusCode::CREATED,
        Json(user_json(&state.core.create_user(granted, input).await?)),
    ))
}

/// `GET /api/v2/users/{id}`.
pub async fn get_user(
    State(state): State<AppState>,
    Scope(granted): Scope<ReadUsers>,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(Json(user_json(&state.core.get_user(granted, &id).await?)))
}

/// `PATCH /api/v2/users/{id}`.
pub async fn update_user(
    State(state): State<AppState>,
    Scope(granted): Scope<UpdateUsers>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let patch: UpdateUser = body(&bytes)?;
    Ok(Json(user_json(
        &state.core.update_user(granted, &id, patch).await?,
    )))
}

/// `DELETE /api/v2/users/{id}`.
pub async fn delete_user(
    State(state): State<AppState>,
    Scope(granted): Scope<DeleteUsers>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
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
    Scope(granted): Scope<ReadUsers>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params: ByEmail = query(q.as_deref())?;
    let email = params.email.unwrap_or_default();
    let found = state.core.users_by_email(granted, &email).await?;
    Ok(Json(Value::Array(found.iter().map(user_json).collect())))
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
    let page = state
        .core
        .roles()
        .user_roles(users, roles, &id, window)
        .await?;
    Ok(Json(params.answer(&page, "roles", window, role_json)))
}

/// `POST /api/v2/users/{id}/roles`.
pub async fn assign_user_roles(
    State(state): State<AppState>,
    Scope(granted): Scope<CreateRoleMembers>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    state
        .core
        .roles()
        .assign_user_roles(granted, &id, &body::<RolesInput>(&bytes)?.roles)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v2/users/{id}/roles`.
pub async fn remove_user_roles(
    State(state): State<AppState>,
    Scope(granted): Scope<DeleteRoleMembers>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    state
        .core
        .roles()
        .remove_user_roles(granted, &id, &body::<RolesInput>(&bytes)?.roles)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v2/users/{id}/permissions`.
pub async fn list_user_permissions(
    State(state): State<AppState>,
    Scope(granted): Scope<ReadUsers>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params: PageParams = query(q.as_deref())?;
    let window = params.window()?;
    let page = state
        .core
        .roles()
        .user_permissions(granted, &id, window)
        .await?;
    Ok(Json(params.answer(&page, "permissions", window, |p| {
        permission_json(p, true)
    })))
}

/// `POST` (add) or `DELETE` (remove) `/api/v2/users/{id}/permissions`: permissions given
/// to the user directly.
pub async fn edit_user_permissions(
    State(state): State<AppState>,
    Scope(granted): Scope<UpdateUsers>,
    Path(id): Path<String>,
    method: Method,
    bytes: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let edit = edit_of(&method);
    let input = body::<PermissionsInput>(&bytes)?;
    state
        .core
        .roles()
        .change_user_permissions_api(granted, &id, &input.permissions, edit)
        .await?;
    Ok(edited(edit))
}

#[cfg(test)]
mod tests {
    use super::select_fields;
    use serde_json::json;

    #[test]
    fn fields_select_or_exclude() {
        let user = json!({"email": "e", "name": "n", "user_id": "u"});
        assert_eq!(
            select_fields(user.clone(), Some("email,user_id"), true),
            json!({"email": "e", "user_id": "u"})
        );
        assert_eq!(
            select_fields(user, Some("email"), false),
            json!({"name": "n", "user_id": "u"})
        );
    }
}
