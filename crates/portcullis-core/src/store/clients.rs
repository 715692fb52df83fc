//! Applications, APIs (resource servers) and client grants, and tenant files applied whole.

use super::{Change, StoreError};
use crate::model::{Client, ClientGrant, ResourceServer, Timestamp};
use async_trait::async_trait;

/// Applications, APIs (resource servers) and client grants, and tenant files applied whole.
#[async_trait]
pub trait ClientStore: Send + Sync {
    async fn find_client(
        &self,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<Option<Client>, StoreError>;

    async fn list_clients(&self, tenant_id: &str) -> Result<Vec<Client>, StoreError>;

    async fn list_resource_servers(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<ResourceServer>, StoreError>;

    async fn find_resource_server(
        &self,
        tenant_id: &str,
        identifier: &str,
    ) -> Result<Option<ResourceServer>, StoreError>;

    async fn list_client_grants(&self, tenant_id: &str) -> Result<Vec<ClientGrant>, StoreError>;

    /// Deletes an API with its client grants and the role permissions on it.
    async fn delete_resource_server(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError>;

    /// Deletes an application with its client grants, refresh tokens and consents, and
    /// revokes its grants.
    async fn delete_client(
        &self,
        tenant_id: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    async fn delete_client_grant(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError>;

    /// Applies a tenant file's changes all together or not at all.
    async fn apply_changes(
        &self,
        tenant_id: &str,
        changes: &[Change],
        now: Timestamp,
    ) -> Result<(), StoreError>;
}
