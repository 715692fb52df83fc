//! The Management API (`/api/v2/`): who may call it, and the services behind its endpoints.
//!
//! Callers present an access token for `{issuer}api/v2/` from the client-credentials grant.
//! Every service method takes a [`Granted`] proof for its scope, which only
//! [`Caller::require`] can mint: an endpoint that forgets its scope check does not compile.

pub mod apps;
pub mod logs;
pub mod query;
pub mod roles;
pub mod security;
pub mod users;

use crate::oauth::resource::Bearer;
use std::marker::PhantomData;

/// A Management API scope, as a type.
pub trait Scope {
    const NAME: &'static str;
}

macro_rules! scopes {
    ($($ty:ident => $name:literal),* $(,)?) => {
        $(
            #[derive(Debug)]
            pub struct $ty;
            impl Scope for $ty {
                const NAME: &'static str = $name;
            }
        )*
        /// Every scope the Management API knows, for client grants and discovery.
        pub const ALL_SCOPES: &[&str] = &[$($name),*];
    };
}

scopes! {
    ReadUsers => "read:users",
    CreateUsers => "create:users",
    UpdateUsers => "update:users",
    DeleteUsers => "delete:users",
    ReadUsersAppMetadata => "read:users_app_metadata",
    UpdateUsersAppMetadata => "update:users_app_metadata",
    ReadRoles => "read:roles",
    CreateRoles => "create:roles",
    UpdateRoles => "update:roles",
    DeleteRoles => "delete:roles",
    ReadRoleMembers => "read:role_members",
    CreateRoleMembers => "create:role_members",
    DeleteRoleMembers => "delete:role_members",
    ReadClients => "read:clients",
    CreateClients => "create:clients",
    UpdateClients => "update:clients",
    DeleteClients => "delete:clients",
    ReadClientKeys => "read:client_keys",
    UpdateClientKeys => "update:client_keys",
    ReadResourceServers => "read:resource_servers",
    CreateResourceServers => "create:resource_servers",
    UpdateResourceServers => "update:resource_servers",
    DeleteResourceServers => "delete:resource_servers",
    ReadClientGrants => "read:client_grants",
    CreateClientGrants => "create:client_grants",
    UpdateClientGrants => "update:client_grants",
    DeleteClientGrants => "delete:client_grants",
    ReadLogs => "read:logs",
    ReadAttackProtection => "read:attack_protection",
    UpdateAttackProtection => "update:attack_protection",
    CreateUserTickets => "create:user_tickets",
}

/// Proof that the caller holds scope `S`. Only [`Caller::require`] makes one.
#[derive(Debug)]
pub struct Granted<S: Scope> {
    _scope: PhantomData<S>,
}

/// An authenticated Management API caller: the client behind the token and its scopes.
#[derive(Debug, Clone)]
pub struct Caller {
    pub client_id: String,
    pub scopes: Vec<String>,
}

impl Caller {
    /// The proof for scope `S`, or Auth0's 403 naming the scope that is missing.
    pub fn require<S: Scope>(&self) -> Result<Granted<S>, ManagementError> {
        if self.scopes.iter().any(|s| s == S::NAME) {
            Ok(Granted {
                _scope: PhantomData,
            })
        } else {
            Err(ManagementError::forbidden(S::NAME))
        }
    }

    /// Whether the caller also holds scope `S` (for optional parts of an answer).
    #[must_use]
    pub fn has<S: Scope>(&self) -> bool {
        self.scopes.iter().any(|s| s == S::NAME)
    }
}

/// The application behind a Management API token, from its verified claims: the `azp` of a
/// client-credentials token for `audience` (the Management API's). Any other token names no
/// application.
#[must_use]
pub fn token_client(claims: &serde_json::Value, audience: &str) -> Option<String> {
    let for_management = crate::oauth::resource::audiences(claims).contains(&audience);
    let machine =
        claims.get("gty").and_then(serde_json::Value::as_str) == Some("client-credentials");
    (for_management && machine)
        .then(|| claims.get("azp").and_then(serde_json::Value::as_str))
        .flatten()
        .map(str::to_owned)
}

impl crate::service::Portcullis {
    /// Authenticates a Management API call from its bearer token: one of our access tokens
    /// for `{issuer}api/v2/` from the client-credentials grant.
    pub async fn management_caller(&self, bearer: Bearer) -> Result<Caller, ManagementError> {
        let invalid = || ManagementError::unauthorized("Invalid token");
        let claims = match bearer {
            Bearer::Missing => {
                return Err(ManagementError::unauthorized("Missing authentication"));
            }
            Bearer::Invalid => return Err(invalid()),
            Bearer::Verified(claims) => claims,
        };
        let at = self
            .accept_access_token(claims)
            .await
            .map_err(ManagementError::internal)?
            .ok_or_else(invalid)?;
        let audience = self.settings.management_audience();
        if !at.audiences().contains(&audience.as_str()) {
            return Err(ManagementError::unauthorized("Bad audience"));
        }
        let client_id = token_client(&at.claims, &audience).ok_or_else(invalid)?;
        // A token is worth what its client's grant holds now, not what it held when the
        // token was issued: a deleted client or grant stops its tokens, and a narrowed grant
        // narrows them (at once here, within the cache's second on other replicas).
        if self.cached_client(&client_id).await?.is_none() {
            return Err(invalid());
        }
        let grants = self.cached_client_grants().await?;
        let Some(grant) = grants
            .iter()
            .find(|g| g.client_id == client_id && g.audience == audience)
        else {
            return Err(invalid());
        };
        let scopes = at
            .claims
            .get("scope")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty() && grant.scope.iter().any(|held| held == s))
            .map(str::to_owned)
            .collect();
        Ok(Caller { client_id, scopes })
    }
}

/// Which part of a listing to answer: at most `limit` items from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub limit: i64,
}

impl Window {
    /// This window of a whole list, with the list's length as the total.
    #[must_use]
    pub fn page<T>(self, items: Vec<T>) -> crate::store::Page<T> {
        let total = i64::try_from(items.len()).unwrap_or(i64::MAX);
        let items = items
            .into_iter()
            .skip(usize::try_from(self.start).unwrap_or(usize::MAX))
            .take(usize::try_from(self.limit).unwrap_or(0))
            .collect();
        crate::store::Page { items, total }
    }
}

/// What kind of failure a Management API error is. The HTTP edge picks the status from it
/// and answers in Auth0's shape: `{statusCode, error, message, errorCode}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    TooManyRequests,
    Internal,
}

/// A Management API error: its kind, Auth0's `errorCode` and a message safe to show the
/// caller; an internal one carries what went wrong for the log.
#[derive(Debug, thiserror::Error)]
#[error("{error_code}: {message}")]
pub struct ManagementError {
    pub kind: Failure,
    pub message: String,
    pub error_code: String,
    /// What failed inside (internal errors only), logged once at the edge.
    #[source]
    pub source: Option<crate::error::Internal>,
}

impl ManagementError {
    pub fn new(kind: Failure, error_code: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            error_code: error_code.to_owned(),
            source: None,
        }
    }

    #[must_use]
    pub fn unauthorized(message: &str) -> Self {
        Self::new(Failure::Unauthorized, "invalid_token", message)
    }

    #[must_use]
    pub fn forbidden(scope: &str) -> Self {
        Self::new(
            Failure::Forbidden,
            "insufficient_scope",
            format!("Insufficient scope, expected any of: {scope}"),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Failure::BadRequest, "invalid_body", message)
    }

    pub fn invalid_query(message: impl Into<String>) -> Self {
        Self::new(Failure::BadRequest, "invalid_query_string", message)
    }

    #[must_use]
    pub fn not_found(what: &str) -> Self {
        Self::new(
            Failure::NotFound,
            if what == "user" {
                "inexistent_user"
            } else {
                "inexistent_role"
            },
            format!("The {what} does not exist."),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(Failure::Conflict, "auth0_idp_error", message)
    }

    /// An internal failure: the caller sees `Internal error`, the log sees `source`.
    pub fn internal(source: impl Into<crate::error::BoxError>) -> Self {
        Self {
            source: Some(crate::error::Internal::with(
                "a Management API call failed",
                source,
            )),
            ..Self::new(Failure::Internal, "internal_error", "Internal error")
        }
    }
}

impl From<crate::store::StoreError> for ManagementError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Conflict(_) => Self::conflict("The user already exists."),
            other => Self::internal(other),
        }
    }
}
