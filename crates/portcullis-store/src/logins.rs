//! Answered login transactions and consents.

use crate::rows::{self, backend_err, to_json};
use crate::sql::SqlStore;
use async_trait::async_trait;
use portcullis_core::model::{LoginTransaction, Timestamp};
use portcullis_core::store::{LoginStore, StoreError};
use sqlx::Row;

#[async_trait]
impl LoginStore for SqlStore {
    async fn insert_login_transaction(
        &self,
        t: &LoginTransaction,
        completed_at: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        let (user_id, session_id) = match &t.authenticated {
            Some(who) => (Some(who.user_id.as_str()), Some(who.session_id.as_str())),
            None => (None, None),
        };
        let done = sqlx::query(
            "INSERT INTO login_transactions (tenant_id, id, csrf_hash, request, user_id, \
             session_id, created_at, expires_at, completed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, id) DO NOTHING",
        )
        .bind(&t.tenant_id)
        .bind(&t.id)
        .bind(&t.csrf_hash)
        .bind(to_json(&t.request))
        .bind(user_id)
        .bind(session_id)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(completed_at)
        .execute(self.writer())
        .await
        .map_err(backend_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn find_login_transaction(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<LoginTransaction>, StoreError> {
        sqlx::query(
            "SELECT * FROM login_transactions WHERE tenant_id = $1 AND id = $2 \
             AND expires_at > $3 AND completed_at IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?
        .map(|r| rows::login_transaction(&r))
        .transpose()
    }

    async fn login_transaction_recorded(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM login_transactions WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend_err)?
                .is_some(),
        )
    }

    async fn consume_login_transaction(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE login_transactions SET completed_at = $3 \
             WHERE tenant_id = $1 AND id = $2 AND completed_at IS NULL AND expires_at > $3",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(backend_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn find_consent(
        &self,
        tenant_id: &str,
        user_id: &str,
        client_id: &str,
        audience: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let row = sqlx::query(
            "SELECT scopes FROM consents WHERE tenant_id = $1 AND user_id = $2 \
             AND client_id = $3 AND audience = $4",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(client_id)
        .bind(audience)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?;
        match row {
            Some(row) => {
                let text: String = row.try_get("scopes").map_err(backend_err)?;
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt(format!("consent scopes: {e}")))
            }
            None => Ok(None),
        }
    }

    async fn save_consent(
        &self,
        tenant_id: &str,
        user_id: &str,
        client_id: &str,
        audience: &str,
        scopes: &[String],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO consents (tenant_id, user_id, client_id, audience, scopes, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (tenant_id, user_id, client_id, audience) \
             DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(client_id)
        .bind(audience)
        .bind(to_json(&scopes))
        .bind(now)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }
}
