//! Roles, their permissions, and who holds them, through the Management API.

use super::{
    CreateRoleMembers, CreateRoles, DeleteRoleMembers, DeleteRoles, Granted, ManagementError,
    ReadRoleMembers, ReadRoles, ReadUsers, UpdateRoles, Window,
};
use crate::clock::Clock;
use crate::model::{Permission, Role, User};
use crate::service::Portcullis;
use crate::store::{ClientStore, Edit, Page, RoleStore, UserStore};

/// A permission as the Management API lists it: with its API's name and the scope's
/// description, and where the user holds it from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PermissionView {
    pub permission: Permission,
    /// The scope's description on its API (`""` when it has none).
    pub description: String,
    /// The API's name (`""` when the API is gone).
    pub resource_server_name: String,
    /// The role it comes through; `None` when it was given directly.
    pub source: Option<Role>,
}

/// A role's name and description as a caller gives them (`None`: unchanged, or empty on
/// creation).
#[derive(Clone, Debug, Default)]
pub struct RoleFields {
    pub name: Option<String>,
    pub description: Option<String>,
}

fn check_name(name: &str) -> Result<String, ManagementError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 50 {
        return Err(ManagementError::bad_request(
            "Payload validation error: the role name must be 1 to 50 characters",
        ));
    }
    Ok(name.to_owned())
}

/// Roles, their permissions and who holds them: the role store, with the user store (a
/// member must exist) and the client store (a permission must be an API's scope), and the
/// clock.
pub struct Roles<'a> {
    roles: &'a dyn RoleStore,
    users: &'a dyn UserStore,
    apis: &'a dyn ClientStore,
    clock: &'a dyn Clock,
    tenant_id: &'a str,
}

impl Portcullis {
    /// The roles service.
    #[must_use]
    pub fn roles(&self) -> Roles<'_> {
        Roles {
            roles: self.store.as_ref(),
            users: self.store.as_ref(),
            apis: self.store.as_ref(),
            clock: self.clock.as_ref(),
            tenant_id: self.tenant_id(),
        }
    }
}

impl Roles<'_> {
    async fn role_or_404(&self, role_id: &str) -> Result<Role, ManagementError> {
        self.roles
            .find_role(self.tenant_id, role_id)
            .await?
            .ok_or_else(|| ManagementError::not_found("role"))
    }

    /// `GET /api/v2/roles`.
    pub async fn list_roles_api(
        &self,
        _: Granted<ReadRoles>,
        name_filter: Option<&str>,
        window: Window,
    ) -> Result<Page<Role>, ManagementError> {
        let filter = name_filter.unwrap_or_default().to_lowercase();
        let roles: Vec<Role> = self
            .roles
            .list_roles(self.tenant_id)
            .await?
            .into_iter()
            .filter(|r| r.name.to_lowercase().contains(&filter))
            .collect();
        Ok(window.page(roles))
    }

    /// `POST /api/v2/roles`.
    pub async fn create_role(
        &self,
        _: Granted<CreateRoles>,
        input: RoleFields,
    ) -> Result<Role, ManagementError> {
        let name = check_name(input.name.as_deref().unwrap_or_default())?;
        let role = Role {
            tenant_id: self.tenant_id.to_owned(),
            id: format!("rol_{}", portcullis_crypto::token::random_alphanumeric(16)),
            name,
            description: input.description.unwrap_or_default(),
            permissions: Vec::new(),
        };
        self.roles
            .insert_role(&role, self.clock.now())
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Conflict(_) => {
                    ManagementError::conflict("A role with this name already exists")
                }
                other => other.into(),
            })?;
        Ok(role)
    }

    /// `GET /api/v2/roles/{id}`.
    pub async fn get_role(
        &self,
        _: Granted<ReadRoles>,
        role_id: &str,
    ) -> Result<Role, ManagementError> {
        self.role_or_404(role_id).await
    }

    /// `PATCH /api/v2/roles/{id}`.
    pub async fn update_role_api(
        &self,
        _: Granted<UpdateRoles>,
        role_id: &str,
        input: RoleFields,
    ) -> Result<Role, ManagementError> {
        let mut role = self.role_or_404(role_id).await?;
        if let Some(name) = &input.name {
            role.name = check_name(name)?;
        }
        if let Some(d) = input.description {
            role.description = d;
        }
        self.roles.update_role(&role).await.map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => {
                ManagementError::conflict("A role with this name already exists")
            }
            other => other.into(),
        })?;
        Ok(role)
    }

    /// `DELETE /api/v2/roles/{id}`.
    pub async fn delete_role_api(
        &self,
        _: Granted<DeleteRoles>,
        role_id: &str,
    ) -> Result<(), ManagementError> {
        if !self.roles.delete_role(self.tenant_id, role_id).await? {
            return Err(ManagementError::not_found("role"));
        }
        Ok(())
    }

    /// The permissions with their API's name and description, as Auth0 lists them.
    async fn permission_views(
        &self,
        permissions: Vec<(Permission, Option<Role>)>,
    ) -> Result<Vec<PermissionView>, ManagementError> {
        let apis = self.apis.list_resource_servers(self.tenant_id).await?;
        Ok(permissions
            .into_iter()
            .map(|(permission, source)| {
                let api = apis
                    .iter()
                    .find(|a| a.identifier == permission.resource_server_identifier);
                PermissionView {
                    description: api
                        .and_then(|a| {
                            a.scopes
                                .iter()
                                .find(|s| s.value == permission.permission_name)
                        })
                        .map(|s| s.description.clone())
                        .unwrap_or_default(),
                    resource_server_name: api.map(|a| a.name.clone()).unwrap_or_default(),
                    permission,
                    source,
                }
            })
            .collect())
    }

    /// `GET /api/v2/roles/{id}/permissions`.
    pub async fn role_permissions(
        &self,
        _: Granted<ReadRoles>,
        role_id: &str,
        window: Window,
    ) -> Result<Page<PermissionView>, ManagementError> {
        let role = self.role_or_404(role_id).await?;
        let items = role.permissions.into_iter().map(|p| (p, None)).collect();
        Ok(window.page(self.permission_views(items).await?))
    }

    /// `POST` (add) or `DELETE` (remove) `/api/v2/roles/{id}/permissions`. Every permission
    /// must be a scope of an existing API; nothing changes otherwise.
    pub async fn change_role_permissions_api(
        &self,
        _: Granted<UpdateRoles>,
        role_id: &str,
        permissions: &[Permission],
        edit: Edit,
    ) -> Result<(), ManagementError> {
        self.role_or_404(role_id).await?;
        if permissions.is_empty() {
            return Err(ManagementError::bad_request(
                "Payload validation error: permissions must not be empty",
            ));
        }
        if edit == Edit::Add {
            self.check_permissions_exist(permissions).await?;
        }
        self.roles
            .change_role_permissions(self.tenant_id, role_id, permissions, edit)
            .await?;
        Ok(())
    }

    /// `GET /api/v2/roles/{id}/users`.
    pub async fn role_users(
        &self,
        _: Granted<ReadRoleMembers>,
        role_id: &str,
        window: Window,
    ) -> Result<Page<User>, ManagementError> {
        self.role_or_404(role_id).await?;
        Ok(self
            .roles
            .list_role_users(self.tenant_id, role_id, window.start, window.limit)
            .await?)
    }

    /// `POST /api/v2/roles/{id}/users`: assigns the role to users.
    pub async fn assign_role_users(
        &self,
        _: Granted<CreateRoleMembers>,
        role_id: &str,
        user_ids: &[String],
    ) -> Result<(), ManagementError> {
        self.role_or_404(role_id).await?;
        for user_id in user_ids {
            if self
                .users
                .find_user(self.tenant_id, user_id)
                .await?
                .is_none()
            {
                return Err(ManagementError::not_found("user"));
            }
        }
        for user_id in user_ids {
            self.roles
                .change_user_roles(self.tenant_id, user_id, &[role_id.to_owned()], Edit::Add)
                .await?;
        }
        Ok(())
    }

    /// `GET /api/v2/users/{id}/roles`.
    pub async fn user_roles(
        &self,
        _: Granted<ReadUsers>,
        _: Granted<ReadRoles>,
        user_id: &str,
        window: Window,
    ) -> Result<Page<Role>, ManagementError> {
        self.users
            .find_user(self.tenant_id, user_id)
            .await?
            .ok_or_else(|| ManagementError::not_found("user"))?;
        let roles = self.roles.list_user_roles(self.tenant_id, user_id).await?;
        Ok(window.page(roles))
    }

    async fn check_user_and_roles(
        &self,
        user_id: &str,
        role_ids: &[String],
    ) -> Result<(), ManagementError> {
        self.users
            .find_user(self.tenant_id, user_id)
            .await?
            .ok_or_else(|| ManagementError::not_found("user"))?;
        if role_ids.is_empty() {
            return Err(ManagementError::bad_request(
                "Payload validation error: roles must not be empty",
            ));
        }
        for id in role_ids {
            self.role_or_404(id).await?;
        }
        Ok(())
    }

    /// `POST /api/v2/users/{id}/roles`.
    pub async fn assign_user_roles(
        &self,
        _: Granted<CreateRoleMembers>,
        user_id: &str,
        role_ids: &[String],
    ) -> Result<(), ManagementError> {
        self.check_user_and_roles(user_id, role_ids).await?;
        self.roles
            .change_user_roles(self.tenant_id, user_id, role_ids, Edit::Add)
            .await?;
        Ok(())
    }

    /// `DELETE /api/v2/users/{id}/roles`.
    pub async fn remove_user_roles(
        &self,
        _: Granted<DeleteRoleMembers>,
        user_id: &str,
        role_ids: &[String],
    ) -> Result<(), ManagementError> {
        self.check_user_and_roles(user_id, role_ids).await?;
        self.roles
            .change_user_roles(self.tenant_id, user_id, role_ids, Edit::Remove)
            .await?;
        Ok(())
    }

    /// `GET /api/v2/users/{id}/permissions`: what the user holds through roles.
    pub async fn user_permissions(
        &self,
        _: Granted<ReadUsers>,
        user_id: &str,
        window: Window,
    ) -> Result<Page<PermissionView>, ManagementError> {
        self.users
            .find_user(self.tenant_id, user_id)
            .await?
            .ok_or_else(|| ManagementError::not_found("user"))?;
        let roles = self.roles.list_user_roles(self.tenant_id, user_id).await?;
        let direct = self
            .roles
            .list_user_permissions(self.tenant_id, user_id)
            .await?;
        let items = direct
            .into_iter()
            .map(|p| (p, None))
            .chain(roles.iter().flat_map(|r| {
                r.permissions
                    .iter()
                    .cloned()
                    .map(move |p| (p, Some(r.clone())))
            }))
            .collect();
        Ok(window.page(self.permission_views(items).await?))
    }

    /// Every permission must be a scope of an existing API.
    async fn check_permissions_exist(
        &self,
        permissions: &[Permission],
    ) -> Result<(), ManagementError> {
        let apis = self.apis.list_resource_servers(self.tenant_id).await?;
        for p in permissions {
            let known = apis.iter().any(|a| {
                a.identifier == p.resource_server_identifier
                    && a.scopes.iter().any(|s| s.value == p.permission_name)
            });
            if !known {
                return Err(ManagementError::bad_request(format!(
                    "Permission {} is not defined on the resource server {}",
                    p.permission_name, p.resource_server_identifier
                )));
            }
        }
        Ok(())
    }

    /// `POST` (add) or `DELETE` (remove) `/api/v2/users/{id}/permissions`: permissions given
    /// to the user directly. Nothing changes if one is not a scope of an existing API.
    pub async fn change_user_permissions_api(
        &self,
        _: Granted<super::UpdateUsers>,
        user_id: &str,
        permissions: &[Permission],
        edit: Edit,
    ) -> Result<(), ManagementError> {
        self.users
            .find_user(self.tenant_id, user_id)
            .await?
            .ok_or_else(|| ManagementError::not_found("user"))?;
        if permissions.is_empty() {
            return Err(ManagementError::bad_request(
                "Payload validation error: permissions must not be empty",
            ));
        }
        if edit == Edit::Add {
            self.check_permissions_exist(permissions).await?;
        }
        self.roles
            .change_user_permissions(self.tenant_id, user_id, permissions, edit)
            .await?;
        Ok(())
    }
}

impl Roles<'_> {
    /// The id of the role named `role`, or with id `role` (the command line's way to name
    /// a role).
    pub async fn role_id(&self, role: &str) -> Result<Option<String>, crate::store::StoreError> {
        Ok(self
            .roles
            .list_roles(self.tenant_id)
            .await?
            .into_iter()
            .find(|r| r.id == role || r.name == role)
            .map(|r| r.id))
    }
}
