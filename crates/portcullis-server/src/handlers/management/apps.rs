//! `/api/v2/`: Applications, APIs (resource servers) and client grants.

use super::paging::PageParams;
use super::{ApiCaller, ApiResult, Scope, body, query};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use portcullis_core::management::apps::ApplicationView;
use portcullis_core::management::{
    CreateClientGrants, CreateClients, CreateResourceServers, DeleteClientGrants, DeleteClients,
    DeleteResourceServers, ReadClientGrants, ReadClientKeys, ReadClients, ReadResourceServers,
    UpdateClientGrants, UpdateClientKeys, UpdateClients, UpdateResourceServers,
};
use portcullis_core::model::{ClientGrant, ResourceServer};
use serde_json::{Value, json};

type Object = serde_json::Map<String, Value>;

/// An API as Auth0 shows it.
pub fn resource_server_json(rs: &ResourceServer) -> Value {
    json!({
        "id": rs.id,
        "name": rs.name,
        "identifier": rs.identifier,
        "scopes": rs.scopes,
        "signing_alg": rs.signing_alg.as_str(),
        "token_lifetime": rs.token_lifetime,
        "enforce_policies": rs.enforce_policies,
        "token_dialect": rs.token_dialect,
        "allow_offline_access": rs.allow_offline_access,
    })
}

/// The application as Auth0 shows it; the secret only when the service opened it for a
/// caller with `read:client_keys` (or a new or rotated one).
pub fn client_json(view: &ApplicationView) -> Value {
    let client = &view.client;
    let mut v = json!({
        "client_id": client.client_id,
        "name": client.name,
        "app_type": client.app_type.as_str(),
        "callbacks": client.callbacks,
        "allowed_logout_urls": client.allowed_logout_urls,
        "web_origins": client.web_origins,
        "grant_types": client.grant_types,
        "token_endpoint_auth_method": client.token_endpoint_auth_method.as_str(),
        "refresh_token": client.refresh_token,
        "is_first_party": client.is_first_party,
    });
    if let Some(s) = &view.secret {
        v["client_secret"] = Value::String(s.clone());
    }
    v
}

/// A client grant as Auth0 shows it.
pub fn client_grant_json(g: &ClientGrant) -> Value {
    json!({ "id": g.id, "client_id": g.client_id, "audience": g.audience, "scope": g.scope })
}

/// The body of `POST /api/v2/client-grants`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewClientGrant {
    pub client_id: String,
    pub audience: String,
    pub scope: Vec<String>,
}

/// The body of `PATCH /api/v2/client-grants/{id}`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientGrantPatch {
    pub scope: Vec<String>,
}

/// Query parameters of `GET /api/v2/client-grants`.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
pub struct ClientGrantQuery {
    pub audience: Option<String>,
    pub client_id: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    pub include_totals: Option<bool>,
}

/// `GET /api/v2/resource-servers`.
pub async fn list_resource_servers(
    State(state): State<AppState>,
    Scope(granted): Scope<ReadResourceServers>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params: PageParams = query(q.as_deref())?;
    let window = params.window()?;
    let page = state
        .core
        .applications()
        .list_resource_servers_api(granted, window)
        .await?;
    Ok(Json(params.answer(
        &page,
        "resource_servers",
        window,
        resource_server_json,
    )))
}

/// `POST /api/v2/resource-servers`.
pub async fn create_resource_server(
    State(state): State<AppState>,
    Scope(granted): Scope<CreateResourceServers>,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: Value = body(&bytes)?;
    Ok((
        StatusCode::CREATED,
        Json(resource_server_json(
            &state
                .core
                .applications()
                .create_resource_server(granted, input)
                .await?,
        )),
    ))
}

/// `GET /api/v2/resource-servers/{id}`.
pub async fn get_resource_server(
    State(state): State<AppState>,
    Scope(granted): Scope<ReadResourceServers>,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(Json(resource_server_json(
        &state
            .core
            .applications()
            .get_resource_server(granted, &id)
            .await?,
    )))
}

/// `PATCH /api/v2/resource-servers/{id}`.
pub async fn update_resource_server(
    State(state): State<AppState>,
    Scope(granted): Scope<UpdateResourceServers>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let patch: Object = body(&bytes)?;
    let api = state
        .core
        .applications()
        .update_resource_server(granted, &id, patch)
        .await?;
    Ok(Json(resource_server_json(&api)))
}

/// `DELETE /api/v2/resource-servers/{id}`.
pub async fn delete_resource_server(
    State(state): State<AppState>,
    Scope(granted): Scope<DeleteResourceServers>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .core
        .applications()
        .delete_resource_server(granted, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v2/clients`: secrets only for callers with `read:client_keys`.
pub async fn list_clients(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let granted = caller.require::<ReadClients>()?;
    let params: PageParams = query(q.as_deref())?;
    let window = params.window()?;
    let page = state
        .core
        .applications()
        .list_clients_api(granted, caller.has::<ReadClientKeys>(), window)
        .await?;
    Ok(Json(params.answer(&page, "clients", window, client_json)))
}

/// `POST /api/v2/clients`.
pub async fn create_client(
    State(state): State<AppState>,
    Scope(granted): Scope<CreateClients>,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: Value = body(&bytes)?;
    Ok((
        StatusCode::CREATED,
        Json(client_json(
            &state
                .core
                .applications()
                .create_client(granted, input)
                .await?,
        )),
    ))
}

/// `GET /api/v2/clients/{id}`.
pub async fn get_client(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let granted = caller.require::<ReadClients>()?;
    let view = state
        .core
        .applications()
        .get_client(granted, caller.has::<ReadClientKeys>(), &id)
        .await?;
    Ok(Json(client_json(&view)))
}

/// `PATCH /api/v2/clients/{id}`.
pub async fn update_client(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let granted = caller.require::<UpdateClients>()?;
    let patch: Object = body(&bytes)?;
    if patch.contains_key("client_secret") {
        caller.require::<UpdateClientKeys>()?;
    }
    let view = state
        .core
        .applications()
        .update_client(granted, caller.has::<ReadClientKeys>(), &id, patch)
        .await?;
    Ok(Json(client_json(&view)))
}

/// `POST /api/v2/clients/{id}/rotate-secret`.
pub async fn rotate_client_secret(
    State(state): State<AppState>,
    Scope(granted): Scope<UpdateClientKeys>,
    Path(id): Path<String>,
) -> ApiResult {
    Ok(Json(client_json(
        &state
            .core
            .applications()
            .rotate_client_secret(granted, &id)
            .await?,
    )))
}

/// `DELETE /api/v2/clients/{id}`.
pub async fn delete_client(
    State(state): State<AppState>,
    Scope(granted): Scope<DeleteClients>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .core
        .applications()
        .delete_client(granted, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v2/client-grants`.
pub async fn list_client_grants(
    State(state): State<AppState>,
    Scope(granted): Scope<ReadClientGrants>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let params: ClientGrantQuery = query(q.as_deref())?;
    let paging = PageParams {
        page: params.page,
        per_page: params.per_page,
        include_totals: params.include_totals,
        ..PageParams::default()
    };
    let window = paging.window()?;
    let page = state
        .core
        .applications()
        .list_client_grants_api(
            granted,
            params.audience.as_deref(),
            params.client_id.as_deref(),
            window,
        )
        .await?;
    Ok(Json(paging.answer(
        &page,
        "client_grants",
        window,
        client_grant_json,
    )))
}

/// `POST /api/v2/client-grants`.
pub async fn create_client_grant(
    State(state): State<AppState>,
    Scope(granted): Scope<CreateClientGrants>,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let input: NewClientGrant = body(&bytes)?;
    let grant = state
        .core
        .applications()
        .create_client_grant(granted, &input.client_id, input.audience, input.scope)
        .await?;
    Ok((StatusCode::CREATED, Json(client_grant_json(&grant))))
}

/// `PATCH /api/v2/client-grants/{id}`.
pub async fn update_client_grant(
    State(state): State<AppState>,
    Scope(granted): Scope<UpdateClientGrants>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let patch: ClientGrantPatch = body(&bytes)?;
    let grant = state
        .core
        .applications()
        .update_client_grant(granted, &id, patch.scope)
        .await?;
    Ok(Json(client_grant_json(&grant)))
}

/// `DELETE /api/v2/client-grants/{id}`.
pub async fn delete_client_grant(
    State(state): State<AppState>,
    Scope(granted): Scope<DeleteClientGrants>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .core
        .applications()
        .delete_client_grant(granted, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
