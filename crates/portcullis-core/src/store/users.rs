//! Users of the database connection: profiles, searches, passwords.

use super::{Page, StoreError, UserAccess};
use crate::model::{Timestamp, User};
use async_trait::async_trait;

/// Users of the database connection: profiles, searches, passwords.
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn find_user(&self, tenant_id: &str, user_id: &str) -> Result<Option<User>, StoreError>;

    async fn find_user_by_email(
        &self,
        tenant_id: &str,
        connection: &str,
        email: &str,
    ) -> Result<Option<User>, StoreError>;

    /// A user with what a token needs of their authorization (`None` when the user is
    /// gone): their roles (each with its permissions, by name) and their direct permissions,
    /// as `list_user_roles` and `list_user_permissions` answer them.
    async fn user_with_access(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Option<UserAccess>, StoreError>;

    /// Adds a user; a taken email is a `Conflict`.
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;

    /// Adds many users in one transaction, many rows per statement (bulk imports); a taken
    /// email fails the whole batch.
    async fn insert_users(&self, users: &[User]) -> Result<(), StoreError>;

    /// Replaces a user's stored profile.
    async fn update_user(&self, user: &User) -> Result<(), StoreError>;

    /// Erases a user and everything that is theirs (sessions, grants, tokens, consents, role
    /// assignments); `false` if there was no such user.
    async fn delete_user(&self, tenant_id: &str, user_id: &str) -> Result<bool, StoreError>;

    /// A page of users matching a search, and how many match in all.
    async fn search_users(
        &self,
        tenant_id: &str,
        search: &crate::management::query::UserSearch,
    ) -> Result<Page<User>, StoreError>;

    async fn record_login(
        &self,
        tenant_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// The user's earlier password hashes, newest first, at most `limit`.
    async fn password_history(
        &self,
        tenant_id: &str,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// Sets a new password hash in one transaction: the old hash joins the history (which
    /// keeps `keep` entries), every session and refresh token of the user ends, brute-force
    /// blocks are released, the user's unused password-change and unblock links stop
    /// working, and the email is marked verified when `verify_email`.
    async fn change_password(
        &self,
        tenant_id: &str,
        user_id: &str,
        new_hash: &str,
        keep: usize,
        verify_email: bool,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    /// Marks the email verified if it is still `email_normalized`; `false` otherwise.
    async fn mark_email_verified(
        &self,
        tenant_id: &str,
        user_id: &str,
        email_normalized: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
}
