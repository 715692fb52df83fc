//! The tenant, its signing keys and its settings documents.

use crate::rows::{self, backend_err, to_json};
use crate::sql::SqlStore;
use async_trait::async_trait;
use portcullis_core::model::{SigningKeyRecord, Tenant, Timestamp};
use portcullis_core::store::{SettingsStore, StoreError};
use sqlx::{AnyConnection, Row};

pub(crate) async fn save_setting<'e, E>(
    executor: E,
    tenant_id: &str,
    name: &str,
    value: &serde_json::Value,
    now: Timestamp,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO tenant_settings (tenant_id, name, value, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET value = $3, updated_at = $4",
    )
    .bind(tenant_id)
    .bind(name)
    .bind(to_json(value))
    .bind(now)
    .execute(executor)
    .await
    .map(|_| ())
    .map_err(backend_err)
}

#[async_trait]
impl SettingsStore for SqlStore {
    async fn ensure_tenant(&self, t: &Tenant, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenants (id, friendly_name, session_lifetime_hours, \
             idle_session_lifetime_hours, roles_claim, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&t.id)
        .bind(&t.friendly_name)
        .bind(t.session_lifetime_hours)
        .bind(t.idle_session_lifetime_hours)
        .bind(t.roles_claim.as_deref())
        .bind(now)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn find_tenant(&self, tenant_id: &str) -> Result<Option<Tenant>, StoreError> {
        sqlx::query("SELECT * FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_err)?
            .map(|r| rows::tenant(&r))
            .transpose()
    }

    async fn list_signing_keys(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        sqlx::query("SELECT * FROM signing_keys WHERE tenant_id = $1 ORDER BY active_from, kid")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?
            .iter()
            .map(rows::signing_key)
            .collect()
    }

    async fn add_signing_key(
        &self,
        key: &SigningKeyRecord,
        old_keys_expire_at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $3, expires_at = $4 \
             WHERE tenant_id = $1 AND alg = $2 AND retired_at IS NULL",
        )
        .bind(&key.tenant_id)
        .bind(key.alg.as_str())
        .bind(key.active_from)
        .bind(old_keys_expire_at)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        sqlx::query(
            "INSERT INTO signing_keys (tenant_id, kid, alg, private_key_sealed, created_at, \
             active_from, retired_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)",
        )
        .bind(&key.tenant_id)
        .bind(&key.kid)
        .bind(key.alg.as_str())
        .bind(&key.private_key_sealed)
        .bind(key.created_at)
        .bind(key.active_from)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)
    }

    async fn find_setting(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let row =
            sqlx::query("SELECT value FROM tenant_settings WHERE tenant_id = $1 AND name = $2")
                .bind(tenant_id)
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend_err)?;
        row.map(|r| {
            let text: String = r.try_get("value").map_err(backend_err)?;
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("setting {name}: {e}")))
        })
        .transpose()
    }

    async fn save_setting(
        &self,
        tenant_id: &str,
        name: &str,
        value: &serde_json::Value,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        crate::settings::save_setting(self.writer(), tenant_id, name, value, now).await
    }
}

/// Replaces the tenant's settings from a tenant file.
pub(crate) async fn update_tenant(
    conn: &mut AnyConnection,
    tenant_id: &str,
    t: &Tenant,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tenants SET friendly_name = $2, session_lifetime_hours = $3, \
             idle_session_lifetime_hours = $4, roles_claim = $5, updated_at = $6, \
             log_retention_days = $7 WHERE id = $1",
    )
    .bind(tenant_id)
    .bind(&t.friendly_name)
    .bind(t.session_lifetime_hours)
    .bind(t.idle_session_lifetime_hours)
    .bind(t.roles_claim.as_deref())
    .bind(now)
    .bind(t.log_retention_days)
    .execute(&mut *conn)
    .await
    .map_err(backend_err)?;
    Ok(())
}
