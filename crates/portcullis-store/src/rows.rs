//! Decoding rows into domain records.

use portcullis_core::model::{
    AppType, AuthenticatedAs, AuthorizationCode, Client, ClientGrant, Grant, LoginTransaction,
    RefreshToken, ResourceServer, Session, SigningKeyRecord, Tenant, TokenEndpointAuthMethod, User,
};
use portcullis_core::store::StoreError;
use portcullis_crypto::jose::SigningAlg;
use sqlx::Row;
use sqlx::any::AnyRow;

pub(crate) fn backend_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Conflict(db.constraint().unwrap_or("unique").to_owned());
    }
    StoreError::Backend(Box::new(e))
}

fn get<'r, T>(row: &'r AnyRow, col: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(col)
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn json<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T, StoreError> {
    let text: String = get(row, col)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn flag(row: &AnyRow, col: &str) -> Result<bool, StoreError> {
    Ok(get::<i64>(row, col)? != 0)
}

pub(crate) fn tenant(row: &AnyRow) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: get(row, "id")?,
        friendly_name: get(row, "friendly_name")?,
        session_lifetime_hours: get(row, "session_lifetime_hours")?,
        idle_session_lifetime_hours: get(row, "idle_session_lifetime_hours")?,
        roles_claim: get(row, "roles_claim")?,
        log_retention_days: get(row, "log_retention_days")?,
    })
}

fn alg(row: &AnyRow, col: &str) -> Result<SigningAlg, StoreError> {
    let s: String = get(row, col)?;
    SigningAlg::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("{col}: {s}")))
}

pub(crate) fn signing_key(row: &AnyRow) -> Result<SigningKeyRecord, StoreError> {
    Ok(SigningKeyRecord {
        tenant_id: get(row, "tenant_id")?,
        kid: get(row, "kid")?,
        alg: alg(row, "alg")?,
        private_key_sealed: get(row, "private_key_sealed")?,
        created_at: get(row, "created_at")?,
        active_from: get(row, "active_from")?,
        retired_at: get(row, "retired_at")?,
        expires_at: get(row, "expires_at")?,
    })
}

pub(crate) fn client(row: &AnyRow) -> Result<Client, StoreError> {
    let app_type: String = get(row, "app_type")?;
    let method: String = get(row, "token_endpoint_auth_method")?;
    Ok(Client {
        tenant_id: get(row, "tenant_id")?,
        client_id: get(row, "client_id")?,
        name: get(row, "name")?,
        app_type: AppType::parse(&app_type)
            .ok_or_else(|| StoreError::Corrupt(format!("app_type: {app_type}")))?,
        secret_sealed: get(row, "secret_sealed")?,
        token_endpoint_auth_method: TokenEndpointAuthMethod::parse(&method)
            .ok_or_else(|| StoreError::Corrupt(format!("auth method: {method}")))?,
        callbacks: json(row, "callbacks")?,
        allowed_logout_urls: json(row, "allowed_logout_urls")?,
        web_origins: json(row, "web_origins")?,
        grant_types: json(row, "grant_types")?,
        refresh_token: json(row, "refresh_token")?,
        is_first_party: flag(row, "is_first_party")?,
    })
}

pub(crate) fn resource_server(row: &AnyRow) -> Result<ResourceServer, StoreError> {
    Ok(ResourceServer {
        tenant_id: get(row, "tenant_id")?,
        id: get(row, "id")?,
        identifier: get(row, "identifier")?,
        name: get(row, "name")?,
        scopes: json(row, "scopes")?,
        enforce_policies: flag(row, "enforce_policies")?,
        token_dialect: get(row, "token_dialect")?,
        token_lifetime: get(row, "token_lifetime")?,
        signing_alg: alg(row, "signing_alg")?,
        allow_offline_access: flag(row, "allow_offline_access")?,
    })
}

pub(crate) fn client_grant(row: &AnyRow) -> Result<ClientGrant, StoreError> {
    Ok(ClientGrant {
        tenant_id: get(row, "tenant_id")?,
        id: get(row, "id")?,
        client_id: get(row, "client_id")?,
        audience: get(row, "audience")?,
        scope: json(row, "scope")?,
    })
}

pub(crate) fn user(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        tenant_id: get(row, "tenant_id")?,
        user_id: get(row, "user_id")?,
        connection: get(row, "connection")?,
        email: get(row, "email")?,
        email_verified: flag(row, "email_verified")?,
        name: get(row, "name")?,
        nickname: get(row, "nickname")?,
        picture: get(row, "picture")?,
        password_hash: get(row, "password_hash")?,
        user_metadata: json(row, "user_metadata")?,
        app_metadata: json(row, "app_metadata")?,
        blocked: flag(row, "blocked")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        last_login: get(row, "last_login")?,
        logins_count: get(row, "logins_count")?,
    })
}

pub(crate) fn session(row: &AnyRow) -> Result<Session, StoreError> {
    Ok(Session {
        tenant_id: get(row, "tenant_id")?,
        id: get(row, "id")?,
        user_id: get(row, "user_id")?,
        auth_time: get(row, "auth_time")?,
        created_at: get(row, "created_at")?,
        last_seen_at: get(row, "last_seen_at")?,
        expires_at: get(row, "expires_at")?,
        idle_expires_at: get(row, "idle_expires_at")?,
    })
}

/// An authorization code's row (`grant_id`, `request`, `expires_at`).
pub(crate) fn authorization_code(
    tenant_id: &str,
    row: &AnyRow,
    used_before: bool,
) -> Result<AuthorizationCode, StoreError> {
    let request: String = row.try_get("request").map_err(backend_err)?;
    Ok(AuthorizationCode {
        tenant_id: tenant_id.to_owned(),
        grant_id: row.try_get("grant_id").map_err(backend_err)?,
        grant: serde_json::from_str(&request)
            .map_err(|e| StoreError::Corrupt(format!("code request: {e}")))?,
        expires_at: row.try_get("expires_at").map_err(backend_err)?,
        used_before,
    })
}

pub(crate) fn login_transaction(row: &AnyRow) -> Result<LoginTransaction, StoreError> {
    let user_id: Option<String> = get(row, "user_id")?;
    let session_id: Option<String> = get(row, "session_id")?;
    Ok(LoginTransaction {
        authenticated: match (user_id, session_id) {
            (Some(user_id), Some(session_id)) => Some(AuthenticatedAs {
                user_id,
                session_id,
            }),
            _ => None,
        },
        tenant_id: get(row, "tenant_id")?,
        id: get(row, "id")?,
        csrf_hash: get(row, "csrf_hash")?,
        request: json(row, "request")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
    })
}

pub(crate) fn grant(row: &AnyRow) -> Result<Grant, StoreError> {
    Ok(Grant {
        tenant_id: get(row, "tenant_id")?,
        id: get(row, "id")?,
        client_id: get(row, "client_id")?,
        user_id: get(row, "user_id")?,
        session_id: get(row, "session_id")?,
        created_at: get(row, "created_at")?,
        revoked_at: get(row, "revoked_at")?,
    })
}

pub(crate) fn refresh_token(row: &AnyRow) -> Result<RefreshToken, StoreError> {
    Ok(RefreshToken {
        tenant_id: get(row, "tenant_id")?,
        token_hash: get(row, "token_hash")?,
        id: get(row, "id")?,
        grant_id: get(row, "grant_id")?,
        client_id: get(row, "client_id")?,
        user_id: get(row, "user_id")?,
        scope: json(row, "scope")?,
        audience: get(row, "audience")?,
        auth_time: get(row, "auth_time")?,
        created_at: get(row, "created_at")?,
        expires_at: get(row, "expires_at")?,
        idle_expires_at: get(row, "idle_expires_at")?,
        used_at: get(row, "used_at")?,
        revoked_at: get(row, "revoked_at")?,
    })
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("domain values serialize to JSON")
}

/// A statement being given its values.
pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// `($1, $2), ($3, $4)` for `rows` rows of `columns` values: the `VALUES` list of a
/// many-row `INSERT` (only placeholders; every value is bound in order). SQLite gets
/// anonymous `?` placeholders: sqlx binds a named one by looking its name up, and SQLite
/// finds each name by a linear scan, so binding hundreds of `$N` costs time quadratic in
/// their number (a sixth of the server's time under client credentials).
pub(crate) fn values_list(rows: usize, columns: usize, sqlite: bool) -> String {
    use std::fmt::Write as _;
    let mut sql = String::new();
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..columns {
            if col > 0 {
                sql.push_str(", ");
            }
            if sqlite {
                sql.push('?');
            } else {
                let _ = write!(sql, "${}", row * columns + col + 1);
            }
        }
        sql.push(')');
    }
    sql
}

/// A boolean as both backends store it.
pub(crate) fn b(v: bool) -> i64 {
    i64::from(v)
}

#[cfg(test)]
mod tests {
    use super::values_list;

    #[test]
    fn values_lists_number_postgres_placeholders_and_leave_sqlite_ones_anonymous() {
        assert_eq!(values_list(2, 2, false), "($1, $2), ($3, $4)");
        assert_eq!(values_list(2, 3, true), "(?, ?, ?), (?, ?, ?)");
    }
}
