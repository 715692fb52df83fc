//! Grants and what hangs off them: authorization codes, refresh-token families and recorded access tokens.

use super::{AccessRecord, RefreshTokenContext, StoreError};
use crate::model::{AuthorizationCode, CodeGrant, Grant, RefreshToken, Timestamp};
use async_trait::async_trait;

/// Grants and what hangs off them: authorization codes, refresh-token families and recorded access tokens.
#[async_trait]
pub trait GrantStore: Send + Sync {
    async fn create_grant(&self, grant: &Grant) -> Result<(), StoreError>;

    async fn find_grant(&self, tenant_id: &str, id: &str) -> Result<Option<Grant>, StoreError>;

    /// Revokes a grant and every refresh token hanging off it.
    async fn revoke_grant(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    async fn create_authorization_code(
        &self,
        tenant_id: &str,
        code_hash: &str,
        grant_id: &str,
        grant: &CodeGrant,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// Spends a code issued to `client_id`. `Some` with `used_before = true` means it had
    /// been spent already; another client's code is `None` and stays unspent.
    async fn consume_authorization_code(
        &self,
        tenant_id: &str,
        code_hash: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Option<AuthorizationCode>, StoreError>;

    /// A code issued to `client_id`, read without spending it (`used_before` says whether it
    /// was spent).
    async fn find_authorization_code(
        &self,
        tenant_id: &str,
        code_hash: &str,
        client_id: &str,
    ) -> Result<Option<AuthorizationCode>, StoreError>;

    async fn create_refresh_token(&self, token: &RefreshToken) -> Result<(), StoreError>;

    /// A refresh token and its grant (`None` when the grant is gone), in one read.
    async fn find_refresh_token_and_grant(
        &self,
        tenant_id: &str,
        token_hash: &str,
    ) -> Result<Option<(RefreshToken, Option<Grant>)>, StoreError>;

    /// A refresh token with its grant and its user's access (as `user_with_access`), read
    /// together for the refresh-token grant: one trip to the database's pool, not two.
    async fn find_refresh_token_context(
        &self,
        tenant_id: &str,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenContext>, StoreError>;

    async fn find_refresh_token(
        &self,
        tenant_id: &str,
        token_hash: &str,
    ) -> Result<Option<RefreshToken>, StoreError>;

    /// Marks `old_hash` used, stores `new` and records the access token issued beside it
    /// (as [`Store::record_access_token`]) in one transaction; `false` when `old_hash` had
    /// already been used (unless `allow_reuse_since` is set and it was used after that time).
    async fn rotate_refresh_token(
        &self,
        tenant_id: &str,
        old_hash: &str,
        new: &RefreshToken,
        access: &AccessRecord,
        now: Timestamp,
        allow_reuse_since: Option<Timestamp>,
    ) -> Result<bool, StoreError>;

    /// Slides a non-rotating token's idle expiry.
    async fn touch_refresh_token(
        &self,
        tenant_id: &str,
        token_hash: &str,
        idle_expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError>;

    async fn record_access_token(
        &self,
        tenant_id: &str,
        jti: &str,
        grant_id: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;

    /// The grant a recorded access token was issued under (`None` for unrecorded tokens,
    /// such as machine tokens).
    async fn find_access_token_grant(
        &self,
        tenant_id: &str,
        jti: &str,
    ) -> Result<Option<Grant>, StoreError>;
}
