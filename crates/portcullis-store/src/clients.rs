//! Applications, APIs and client grants, and tenant files applied whole.

use crate::apply::apply_one;
use crate::rows::{self, b, backend_err, to_json};
use crate::sql::SqlStore;
use async_trait::async_trait;
use portcullis_core::model::{Client, ClientGrant, ResourceServer, Timestamp};
use portcullis_core::store::{Change, ClientStore, StoreError};
use sqlx::AnyConnection;

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
            self,
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
        let mut tx = self.begin_write().await?;
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
            self,
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
        let mut tx = self.begin_write().await?;
        for change in changes {
            apply_one(&mut tx, tenant_id, change, now).await?;
        }
        tx.commit().await.map_err(backend_err)
    }
}

/// Creates or replaces an application.
pub(crate) async fn upsert_client(
    conn: &mut AnyConnection,
    tenant_id: &str,
    c: &Client,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO clients (tenant_id, client_id, name, app_type, secret_sealed, \
             token_endpoint_auth_method, callbacks, allowed_logout_urls, web_origins, \
             grant_types, refresh_token, is_first_party, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) \
             ON CONFLICT (tenant_id, client_id) DO UPDATE SET name = excluded.name, \
             app_type = excluded.app_type, secret_sealed = excluded.secret_sealed, \
             token_endpoint_auth_method = excluded.token_endpoint_auth_method, \
             callbacks = excluded.callbacks, allowed_logout_urls = excluded.allowed_logout_urls, \
             web_origins = excluded.web_origins, grant_types = excluded.grant_types, \
             refresh_token = excluded.refresh_token, is_first_party = excluded.is_first_party, \
             updated_at = excluded.updated_at",
    )
    .bind(tenant_id)
    .bind(&c.client_id)
    .bind(&c.name)
    .bind(c.app_type.as_str())
    .bind(c.secret_sealed.as_deref())
    .bind(c.token_endpoint_auth_method.as_str())
    .bind(to_json(&c.callbacks))
    .bind(to_json(&c.allowed_logout_urls))
    .bind(to_json(&c.web_origins))
    .bind(to_json(&c.grant_types))
    .bind(to_json(&c.refresh_token))
    .bind(b(c.is_first_party))
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(backend_err)?;
    Ok(())
}

/// Creates or replaces an API.
pub(crate) async fn upsert_resource_server(
    conn: &mut AnyConnection,
    tenant_id: &str,
    r: &ResourceServer,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO resource_servers (tenant_id, id, identifier, name, scopes, \
             enforce_policies, token_dialect, token_lifetime, signing_alg, \
             allow_offline_access, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
             ON CONFLICT (tenant_id, id) DO UPDATE SET identifier = excluded.identifier, \
             name = excluded.name, scopes = excluded.scopes, \
             enforce_policies = excluded.enforce_policies, \
             token_dialect = excluded.token_dialect, token_lifetime = excluded.token_lifetime, \
             signing_alg = excluded.signing_alg, \
             allow_offline_access = excluded.allow_offline_access, \
             updated_at = excluded.updated_at",
    )
    .bind(tenant_id)
    .bind(&r.id)
    .bind(&r.identifier)
    .bind(&r.name)
    .bind(to_json(&r.scopes))
    .bind(b(r.enforce_policies))
    .bind(&r.token_dialect)
    .bind(r.token_lifetime)
    .bind(r.signing_alg.as_str())
    .bind(b(r.allow_offline_access))
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(backend_err)?;
    Ok(())
}

/// Creates a client grant or replaces its scopes.
pub(crate) async fn upsert_client_grant(
    conn: &mut AnyConnection,
    tenant_id: &str,
    g: &ClientGrant,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO client_grants (tenant_id, id, client_id, audience, scope, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (tenant_id, id) DO UPDATE SET scope = excluded.scope",
    )
    .bind(tenant_id)
    .bind(&g.id)
    .bind(&g.client_id)
    .bind(&g.audience)
    .bind(to_json(&g.scope))
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(backend_err)?;
    Ok(())
}
