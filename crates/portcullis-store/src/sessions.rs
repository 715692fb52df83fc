//! SSO sessions.

use crate::rows::{self, backend_err};
use crate::sql::SqlStore;
use async_trait::async_trait;
use portcullis_core::model::{Session, Timestamp};
use portcullis_core::store::{SessionStore, StoreError};

#[async_trait]
impl SessionStore for SqlStore {
    async fn find_session(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        sqlx::query(
            "SELECT * FROM sessions WHERE tenant_id = $1 AND id = $2 \
             AND revoked_at IS NULL AND expires_at > $3 AND idle_expires_at > $3",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?
        .map(|r| rows::session(&r))
        .transpose()
    }

    async fn create_session(&self, s: &Session, secret_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (tenant_id, id, secret_hash, user_id, auth_time, created_at, \
             last_seen_at, expires_at, idle_expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
        )
        .bind(&s.tenant_id)
        .bind(&s.id)
        .bind(secret_hash)
        .bind(&s.user_id)
        .bind(s.auth_time)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .bind(s.idle_expires_at)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn find_session_by_secret(
        &self,
        tenant_id: &str,
        secret_hash: &str,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        sqlx::query(
            "SELECT * FROM sessions WHERE tenant_id = $1 AND secret_hash = $2 \
             AND revoked_at IS NULL AND expires_at > $3 AND idle_expires_at > $3",
        )
        .bind(tenant_id)
        .bind(secret_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?
        .map(|r| rows::session(&r))
        .transpose()
    }

    async fn touch_session(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET last_seen_at = $3, idle_expires_at = $4 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .bind(idle_expires_at)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn revoke_session(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 \
             AND revoked_at IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn end_user_sessions(
        &self,
        tenant_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for statement in [
            "UPDATE sessions SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
            "UPDATE grants SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
            "UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
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
}
