//! The tenant, its signing keys and its settings documents.

use super::StoreError;
use crate::model::{SigningKeyRecord, Tenant, Timestamp};
use async_trait::async_trait;

/// The tenant, its signing keys and its settings documents.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    async fn ensure_tenant(&self, tenant: &Tenant, now: Timestamp) -> Result<(), StoreError>;

    async fn find_tenant(&self, tenant_id: &str) -> Result<Option<Tenant>, StoreError>;

    async fn list_signing_keys(&self, tenant_id: &str)
    -> Result<Vec<SigningKeyRecord>, StoreError>;

    /// Adds `key` and marks every other live key of its algorithm as retired from
    /// `key.active_from`, expiring at `old_keys_expire_at`.
    async fn add_signing_key(
        &self,
        key: &SigningKeyRecord,
        old_keys_expire_at: Timestamp,
    ) -> Result<(), StoreError>;

    async fn find_setting(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError>;

    async fn save_setting(
        &self,
        tenant_id: &str,
        name: &str,
        value: &serde_json::Value,
        now: Timestamp,
    ) -> Result<(), StoreError>;
}
