//! Password history and password changes, and email verification.

use crate::rows::backend_err;
use crate::sql::SqlStore;
use portcullis_core::model::Timestamp;
use portcullis_core::store::StoreError;
use sqlx::{AnyPool, Row};

pub(crate) async fn password_history(
    pool: &AnyPool,
    tenant_id: &str,
    user_id: &str,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    sqlx::query(
        "SELECT password_hash FROM password_history WHERE tenant_id = $1 AND user_id = $2 \
         ORDER BY id DESC LIMIT $3",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(backend_err)?
    .iter()
    .map(|r| r.try_get("password_hash").map_err(backend_err))
    .collect()
}

pub(crate) async fn change_password(
    store: &SqlStore,
    tenant_id: &str,
    user_id: &str,
    new_hash: &str,
    keep: usize,
    verify_email: bool,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut tx = store.begin_write().await?;
    let old: Option<Option<String>> =
        sqlx::query("SELECT password_hash FROM users WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend_err)?
            .map(|r| r.try_get("password_hash").map_err(backend_err))
            .transpose()?;
    let Some(old) = old else {
        return Err(StoreError::Conflict("no such user".to_owned()));
    };
    if let Some(old) = old.filter(|_| keep > 0) {
        let id = format!(
            "{now:012}{}",
            portcullis_crypto::token::random_alphanumeric(8)
        );
        sqlx::query(
            "INSERT INTO password_history (tenant_id, user_id, id, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(id)
        .bind(old)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
    }
    sqlx::query(
        "DELETE FROM password_history WHERE tenant_id = $1 AND user_id = $2 AND id NOT IN \
         (SELECT id FROM password_history WHERE tenant_id = $1 AND user_id = $2 \
         ORDER BY id DESC LIMIT $3)",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(i64::try_from(keep).unwrap_or(i64::MAX))
    .execute(&mut *tx)
    .await
    .map_err(backend_err)?;
    sqlx::query(
        "UPDATE users SET password_hash = $3, updated_at = $4, \
         email_verified = CASE WHEN $5 = 1 THEN 1 ELSE email_verified END \
         WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(new_hash)
    .bind(now)
    .bind(i64::from(verify_email))
    .execute(&mut *tx)
    .await
    .map_err(backend_err)?;
    for statement in [
        "UPDATE sessions SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
        "UPDATE grants SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
        "UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
        "DELETE FROM login_failures WHERE tenant_id = $1 AND user_id = $2 AND $3 = $3",
        "UPDATE tickets SET used_at = $3 WHERE tenant_id = $1 AND user_id = $2 \
         AND kind IN ('password_change', 'unblock') AND used_at IS NULL",
    ] {
        sqlx::query(statement)
            .bind(tenant_id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
    }
    tx.commit().await.map_err(backend_err)
}

pub(crate) async fn mark_email_verified(
    pool: &AnyPool,
    tenant_id: &str,
    user_id: &str,
    email_normalized: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let result = sqlx::query(
        "UPDATE users SET email_verified = 1, updated_at = $4 WHERE tenant_id = $1 \
         AND user_id = $2 AND email_normalized = $3",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(email_normalized)
    .bind(now)
    .execute(pool)
    .await
    .map_err(backend_err)?;
    Ok(result.rows_affected() == 1)
}
