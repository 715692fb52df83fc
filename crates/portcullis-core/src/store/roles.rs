//! Roles, their permissions, and the roles and permissions of users.

use super::{Edit, Page, StoreError};
use crate::model::{Permission, Role, Timestamp, User};
use async_trait::async_trait;

/// Roles, their permissions, and the roles and permissions of users.
#[async_trait]
pub trait RoleStore: Send + Sync {
    async fn list_roles(&self, tenant_id: &str) -> Result<Vec<Role>, StoreError>;

    async fn find_role(&self, tenant_id: &str, role_id: &str) -> Result<Option<Role>, StoreError>;

    /// Adds a role (its permissions too); a taken name is a `Conflict`.
    async fn insert_role(&self, role: &Role, now: Timestamp) -> Result<(), StoreError>;

    /// Renames or redescribes a role; a taken name is a `Conflict`.
    async fn update_role(&self, role: &Role) -> Result<(), StoreError>;

    /// Deletes a role with its permissions and assignments; `false` if there was none.
    async fn delete_role(&self, tenant_id: &str, role_id: &str) -> Result<bool, StoreError>;

    /// Adds (`add = true`) or removes permissions of a role, in one transaction.
    async fn change_role_permissions(
        &self,
        tenant_id: &str,
        role_id: &str,
        permissions: &[Permission],
        edit: Edit,
    ) -> Result<(), StoreError>;

    /// Assigns (`add = true`) or unassigns roles of a user, in one transaction.
    async fn change_user_roles(
        &self,
        tenant_id: &str,
        user_id: &str,
        role_ids: &[String],
        edit: Edit,
    ) -> Result<(), StoreError>;

    /// Permissions given to a user directly (not through roles).
    async fn list_user_permissions(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Vec<Permission>, StoreError>;

    /// Gives (`add = true`) or takes permissions from a user directly, in one transaction.
    async fn change_user_permissions(
        &self,
        tenant_id: &str,
        user_id: &str,
        permissions: &[Permission],
        edit: Edit,
    ) -> Result<(), StoreError>;

    /// A page of the users holding a role, and how many hold it.
    async fn list_role_users(
        &self,
        tenant_id: &str,
        role_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Page<User>, StoreError>;

    /// Role names and ids of a user.
    async fn list_user_roles(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Vec<Role>, StoreError>;
}
