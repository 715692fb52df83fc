//! The Management API (`/api/v2/`): thin handlers over `portcullis_core::management`.
//! Errors use Auth0's shape: `{statusCode, error, message, errorCode}`.

use crate::identity::ClientIdentity;
use crate::state::AppState;
use axum::Json;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portcullis_core::management::apps::{ClientGrantPatch, ClientGrantQuery, NewClientGrant};
use portcullis_core::management::roles::{
    PageParams, PermissionsInput, RoleInput, RolesInput, UsersInput,
};
use portcullis_core::management::security::{
    BlocksQuery, EmailVerificationTicket, PasswordChangeTicket, ProtectionPart,
};
use portcullis_core::management::users::{CreateUser, ListUsersParams, UpdateUser};
use portcullis_core::management::{
    Caller, CreateClientGrants, CreateClients, CreateResourceServers, CreateRoleMembers,
    CreateRoles, CreateUserTickets, CreateUsers, DeleteClientGrants, DeleteClients,
    DeleteResourceServers, DeleteRoleMembers, DeleteRoles, DeleteUsers, Failure, ManagementError,
    ReadAttackProtection, ReadClientGrants, ReadClientKeys, ReadClients, ReadResourceServers,
    ReadRoleMembers, ReadRoles, ReadUsers, UpdateAttackProtection, UpdateClientGrants,
    UpdateClientKeys, UpdateClients, UpdateResourceServers, UpdateRoles, UpdateUsers,
};
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

type ApiResult<T = Json<Value>> = Result<T, ApiError>;

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

/// Parses a JSON body, answering Auth0's payload validation error.
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let detail = e.to_string();
        let detail = detail.split(" at line ").next().unwrap_or_default();
        ApiError(ManagementError::bad_request(format!(
            "Payload validation error: {detail}"
        )))
    })
}

fn query<T: DeserializeOwned + Default>(raw: Option<&str>) -> Result<T, ApiError> {
    match raw {
        None | Some("") => Ok(T::default()),
        Some(q) => serde_urlencoded::from_str(q).map_err(|e| {
            ApiError(ManagementError::invalid_query(format!(
                "Query validation error: {e}"
            )))
        }),
    }
}

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
    Ok(Json(
        state.core.user_roles(users, roles, &id, &params).await?,
    ))
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
        .assign_user_roles(granted, &id, body::<RolesInput>(&bytes)?)
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
        .remove_user_roles(granted, &id, body::<RolesInput>(&bytes)?)
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
    Ok(Json(
        state.core.user_permissions(granted, &id, &params).await?,
    ))
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
        .change_user_permissions_api(granted, &id, body::<PermissionsInput>(&bytes)?, Edit::Add)
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
            body::<PermissionsInput>(&bytes)?,
            Edit::Remove,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v2/roles`.
pub async fn list_roles(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let granted = caller.require::<ReadRoles>()?;
    let params: PageParams = query(q.as_deref())?;
    Ok(Json(state.core.list_roles_api(granted, &params).await?))
}

/// `POST /api/v2/roles`.
pub async fn create_role(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let granted = caller.require::<CreateRoles>()?;
    Ok(Json(
        state
            .core
            .create_role(granted, body::<RoleInput>(&bytes)?)
            .await?,
    ))
}

/// `GET /api/v2/roles/{id}`.
pub async fn get_role(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let granted = caller.require::<ReadRoles>()?;
    Ok(Json(state.core.get_role(granted, &id).await?))
}

/// `PATCH /api/v2/roles/{id}`.
pub async fn update_role(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let granted = caller.require::<UpdateRoles>()?;
    Ok(Json(
        state
            .core
            .update_role_api(granted, &id, body::<RoleInput>(&bytes)?)
            .await?,
    ))
}

/// `DELETE /api/v2/roles/{id}`.
pub async fn delete_role(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let granted = caller.require::<DeleteRoles>()?;
    state.core.delete_role_api(granted, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v2/roles/{id}/permissions`.
pub async fn list_role_permissions(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let granted = caller.require::<ReadRoles>()?;
    let params: PageParams = query(q.as_deref())?;
    Ok(Json(
        state.core.role_permissions(granted, &id, &params).await?,
    ))
}

/// `POST /api/v2/roles/{id}/permissions`.
pub async fn add_role_permissions(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let granted = caller.require::<UpdateRoles>()?;
    state
        .core
        .change_role_permissions_api(granted, &id, body::<PermissionsInput>(&bytes)?, Edit::Add)
        .await?;
    Ok(StatusCode::CREATED)
}

/// `DELETE /api/v2/roles/{id}/permissions`.
pub async fn remove_role_permissions(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let granted = caller.require::<UpdateRoles>()?;
    state
        .core
        .change_role_permissions_api(
            granted,
            &id,
            body::<PermissionsInput>(&bytes)?,
            Edit::Remove,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v2/roles/{id}/users`.
pub async fn list_role_users(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let granted = caller.require::<ReadRoleMembers>()?;
    let params: PageParams = query(q.as_deref())?;
    Ok(Json(state.core.role_users(granted, &id, &params).await?))
}

/// `POST /api/v2/roles/{id}/users`.
pub async fn assign_role_users(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let granted = caller.require::<CreateRoleMembers>()?;
    state
        .core
        .assign_role_users(granted, &id, body::<UsersInput>(&bytes)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

type Object = serde_json::Map<String, Value>;

/// `GET /api/v2/resource-servers`.
pub async fn list_resource_servers(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let granted = caller.require::<ReadResourceServers>()?;
    let params: PageParams = query(q.as_deref())?;
    Ok(Json(
        state
            .core
            .list_resource_servers_api(granted, &params)
            .await?,
    ))
}

/// `POST /api/v2/resource-servers`.
pub async fn create_resource_server(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let granted = caller.require::<CreateResourceServers>()?;
    let input: Value = body(&bytes)?;
    Ok((
        StatusCode::CREATED,
        Json(state.core.create_resource_server(granted, input).await?),
    ))
}

/// `GET /api/v2/resource-servers/{id}`.
pub async fn get_resource_server(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let granted = caller.require::<ReadResourceServers>()?;
    Ok(Json(state.core.get_resource_server(granted, &id).await?))
}

/// `PATCH /api/v2/resource-servers/{id}`.
pub async fn update_resource_server(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let granted = caller.require::<UpdateResourceServers>()?;
    let patch: Object = body(&bytes)?;
    Ok(Json(
        state
            .core
            .update_resource_server(granted, &id, patch)
            .await?,
    ))
}

/// `DELETE /api/v2/resource-servers/{id}`.
pub async fn delete_resource_server(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let granted = caller.require::<DeleteResourceServers>()?;
    state.core.delete_resource_server(granted, &id).await?;
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
    Ok(Json(
        state
            .core
            .list_clients_api(granted, caller.has::<ReadClientKeys>(), &params)
            .await?,
    ))
}

/// `POST /api/v2/clients`.
pub async fn create_client(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let granted = caller.require::<CreateClients>()?;
    let input: Value = body(&bytes)?;
    Ok((
        StatusCode::CREATED,
        Json(state.core.create_client(granted, input).await?),
    ))
}

/// `GET /api/v2/clients/{id}`.
pub async fn get_client(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let granted = caller.require::<ReadClients>()?;
    Ok(Json(
        state
            .core
            .get_client(granted, caller.has::<ReadClientKeys>(), &id)
            .await?,
    ))
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
    Ok(Json(
        state
            .core
            .update_client(granted, caller.has::<ReadClientKeys>(), &id, patch)
            .await?,
    ))
}

/// `POST /api/v2/clients/{id}/rotate-secret`.
pub async fn rotate_client_secret(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let granted = caller.require::<UpdateClientKeys>()?;
    Ok(Json(state.core.rotate_client_secret(granted, &id).await?))
}

/// `DELETE /api/v2/clients/{id}`.
pub async fn delete_client(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let granted = caller.require::<DeleteClients>()?;
    state.core.delete_client(granted, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v2/client-grants`.
pub async fn list_client_grants(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let granted = caller.require::<ReadClientGrants>()?;
    let params: ClientGrantQuery = query(q.as_deref())?;
    Ok(Json(
        state.core.list_client_grants_api(granted, &params).await?,
    ))
}

/// `POST /api/v2/client-grants`.
pub async fn create_client_grant(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    bytes: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let granted = caller.require::<CreateClientGrants>()?;
    let input: NewClientGrant = body(&bytes)?;
    Ok((
        StatusCode::CREATED,
        Json(state.core.create_client_grant(granted, input).await?),
    ))
}

/// `PATCH /api/v2/client-grants/{id}`.
pub async fn update_client_grant(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> ApiResult {
    let granted = caller.require::<UpdateClientGrants>()?;
    let patch: ClientGrantPatch = body(&bytes)?;
    Ok(Json(
        state.core.update_client_grant(granted, &id, patch).await?,
    ))
}

/// `DELETE /api/v2/client-grants/{id}`.
pub async fn delete_client_grant(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let granted = caller.require::<DeleteClientGrants>()?;
    state.core.delete_client_grant(granted, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v2/logs`.
pub async fn list_logs(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let granted = caller.require::<portcullis_core::management::ReadLogs>()?;
    let params: portcullis_core::management::logs::LogParams = query(q.as_deref())?;
    Ok(Json(state.core.list_logs(granted, &params).await?))
}

/// `GET /api/v2/logs/{id}`.
pub async fn get_log(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let granted = caller.require::<portcullis_core::management::ReadLogs>()?;
    Ok(Json(state.core.get_log(granted, &id).await?))
}

/// Unknown paths under `/api/v2/` answer in the API's error shape.
pub async fn not_found() -> ApiError {
    ApiError(ManagementError::new(
        Failure::NotFound,
        "not_found",
        "Not Found",
    ))
}

/// `GET /api/v2/attack-protection/brute-force-protection` and its siblings.
async fn get_protection(state: AppState, caller: Caller, part: ProtectionPart) -> ApiResult {
    let granted = caller.require::<ReadAttackProtection>()?;
    Ok(Json(state.core.get_attack_protection(granted, part).await?))
}

async fn patch_protection(
    state: AppState,
    caller: Caller,
    part: ProtectionPart,
    bytes: &[u8],
) -> ApiResult {
    let granted = caller.require::<UpdateAttackProtection>()?;
    let patch: Value = body(bytes)?;
    Ok(Json(
        state
            .core
            .patch_attack_protection(granted, part, patch)
            .await?,
    ))
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

/// `GET /api/v2/user-blocks/{id}`.
pub async fn get_user_blocks(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let granted = caller.require::<ReadUsers>()?;
    Ok(Json(
        state.core.get_user_blocks(granted, Some(&id), None).await?,
    ))
}

/// `DELETE /api/v2/user-blocks/{id}`.
pub async fn delete_user_blocks(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let granted = caller.require::<UpdateUsers>()?;
    state
        .core
        .delete_user_blocks(granted, Some(&id), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v2/user-blocks?identifier=`.
pub async fn get_user_blocks_by_identifier(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let granted = caller.require::<ReadUsers>()?;
    let q: BlocksQuery = query(raw.as_deref())?;
    Ok(Json(
        state
            .core
            .get_user_blocks(granted, None, q.identifier.as_deref())
            .await?,
    ))
}

/// `DELETE /api/v2/user-blocks?identifier=`.
pub async fn delete_user_blocks_by_identifier(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let granted = caller.require::<UpdateUsers>()?;
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
    ApiCaller(caller): ApiCaller,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let granted = caller.require::<CreateUserTickets>()?;
    let input: EmailVerificationTicket = body(&bytes)?;
    Ok((
        StatusCode::CREATED,
        Json(state.core.email_verification_ticket(granted, input).await?),
    ))
}

/// `POST /api/v2/tickets/password-change`.
pub async fn password_change_ticket(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let granted = caller.require::<CreateUserTickets>()?;
    let input: PasswordChangeTicket = body(&bytes)?;
    Ok((
        StatusCode::CREATED,
        Json(state.core.password_change_ticket(granted, input).await?),
    ))
}
