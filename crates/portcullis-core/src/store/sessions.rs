//! SSO sessions, found by their cookie secret's hash.

use super::StoreError;
use crate::model::{Session, Timestamp};
use async_trait::async_trait;

/// SSO sessions, found by their cookie secret's hash.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Finds a live session by its public id.
    async fn find_session(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError>;

    async fn create_session(&self, session: &Session, secret_hash: &str) -> Result<(), StoreError>;

    /// A live session by its cookie secret's hash (not revoked, not expired at `now`).
    async fn find_session_by_secret(
        &self,
        tenant_id: &str,
        secret_hash: &str,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError>;

    async fn touch_session(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    async fn revoke_session(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Revokes every session and grant (so every refresh token) of a user.
    async fn end_user_sessions(
        &self,
        tenant_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;
}
