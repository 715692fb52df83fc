//! Applications, APIs and client grants, and tenant files applied whole.

use crate::apply::apply_one;
use crate::rows::{self, backend_err};
use crate::sql::SqlStore;
use async_trait::async_trait;
use portcullis_core::model::{Client, ClientGrant, ResourceServer, Timestamp};
use portcullis_core::store::{Change, ClientStore, StoreError};

#[async_trait]
impl ClientStore for SqlStore {
    async fn find_client(
        &self,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<Option<Client>, StoreError> {
        sqlx::query("SELECT * FROM clients WHERE tenant_id = $1 AND client_id = $2")
            .bind(tenant_id)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_err)?
            .map(|r| rows::client(&r))
            .transpose()
    }

    async fn list_clients(&self, tenant_id: &str) -> Result<Vec<Client>, StoreError> {
        sqlx::query("SELECT * FROM clients WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?
            .iter()
            .map(rows::client)
            .collect()
    }

    async fn list_resource_servers(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<ResourceServer>, StoreError> {
        sqlx::query("SELECT * FROM resource_servers WHERE tenant_id = $1 ORDER BY identifier")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?
            .iter()
            .map(rows::resource_server)
            .collect()
    }

    async fn find_resource_server(
        &self,
        tenant_id: &str,
        identifier: &str,
    ) -> Result<Option<ResourceServer>, StoreError> {
        sqlx::query("SELECT * FROM resource_servers WHERE tenant_id = $1 AND identifier = $2")
            .bind(tenant_id)
            .bind(identifier)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_err)?
            .map(|r| rows::resource_server(&r))
            .transpose()
    }

    async fn list_client_grants(&self, tenant_id: &str) -> Result<Vec<ClientGrant>, StoreError> {
        sqlx::query("SELECT * FROM client_grants WHERE tenant_id = $1 ORDER BY client_id, audience")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?
            .iter()
            .map(rows::client_grant)
            .collect()
    }

    async fn delete_resource_server(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
        crate::cascade::delete_cascade(
            self.writer(),
            tenant_id,
            id,
            &[
                "DELETE FROM client_grants WHERE tenant_id = $1 AND audience = \
                 (SELECT identifier FROM resource_servers WHERE tenant_id = $1 AND id = $2)",
                "DELETE FROM role_permissions WHERE tenant_id = $1 AND resource_server_identifier = \
                 (SELECT identifier FROM resource_servers WHERE tenant_id = $1 AND id = $2)",
                "DELETE FROM user_permissions WHERE tenant_id = $1 AND resource_server_identifier = \
                 (SELECT identifier FROM resource_servers WHERE tenant_id = $1 AND id = $2)",
                "DELETE FROM resource_servers WHERE tenant_id = $1 AND id = $2",
            ],
        )
        .await
    }

    async fn delete_client(
        &self,
        tenant_id: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = crate::rows::begin_write(self.writer()).await?;
        // Its grants stay, revoked, so access tokens it was issued stop at /userinfo too.
        sqlx::query(
            "UPDATE grants SET revoked_at = $3 WHERE tenant_id = $1 AND client_id = $2 \
             AND revoked_at IS NULL",
        )
        .bind(tenant_id)
        .bind(client_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        let mut last = 0;
        for statement in [
            "DELETE FROM client_grants WHERE tenant_id = $1 AND client_id = $2",
            "DELETE FROM refresh_tokens WHERE tenant_id = $1 AND client_id = $2",
            "DELETE FROM consents WHERE tenant_id = $1 AND client_id = $2",
            "DELETE FROM clients WHERE tenant_id = $1 AND client_id = $2",
        ] {
            last = sqlx::query(statement)
                .bind(tenant_id)
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(backend_err)?
                .rows_affected();
        }
        tx.commit().await.map_err(backend_err)?;
        Ok(last > 0)
    }

    async fn delete_client_grant(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
        crate::cascade::delete_cascade(
            self.writer(),
            tenant_id,
            id,
            &["DELETE FROM client_grants WHERE tenant_id = $1 AND id = $2"],
        )
        .await
    }

    async fn apply_changes(
        &self,
        tenant_id: &str,
        changes: &[Change],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = crate::rows::begin_write(self.writer()).await?;
        for change in changes {
            apply_one(&mut tx, tenant_id, change, now)
                .await
                .map_err(backend_err)?;
        }
        tx.commit().await.map_err(backend_err)
    }
}
