//! Roles, their permissions, and who holds them, through the Management API.

use super::{
    CreateRoleMembers, CreateRoles, DeleteRoleMembers, DeleteRoles, Granted, ManagementError,
    ReadRoleMembers, ReadRoles, ReadUsers, UpdateRoles,
};
use crate::model::{Permission, Role};
use crate::service::Portcullis;
use crate::store::{Edit, Page};
use serde::Deserialize;
use serde_json::{Value, json};

#[must_use]
pub fn role_json(role: &Role) -> Value {
    json!({ "id": role.id, "name": role.name, "description": role.description })
}

/// Paging parameters of the lists: Auth0's `page`/`per_page`/`include_totals`, and its
/// checkpoint form `take`/`from` where an endpoint offers it.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct PageParams {
    pub page: Option<i64>,
    pub per_page: Option<i64>,
    pub include_totals: Option<bool>,
    pub name_filter: Option<String>,
    pub take: Option<i64>,
    pub from: Option<String>,
}

impl PageParams {
    /// The offset and size of the page asked for.
    pub fn window(&self) -> Result<(i64, i64), ManagementError> {
        if let Some(take) = self.take {
            if !(1..=100).contains(&take) {
                return Err(ManagementError::invalid_query("take must be 1 to 100"));
            }
            let from = match self.from.as_deref() {
                None | Some("") => 0,
                Some(f) => f.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    ManagementError::invalid_query("from is not a checkpoint this server issued")
                })?,
            };
            return Ok((from, take));
        }
        let per_page = self.per_page.unwrap_or(50);
        let page = self.page.unwrap_or(0);
        if !(1..=100).contains(&per_page) || page < 0 {
            return Err(ManagementError::invalid_query(
                "per_page must be 1 to 100 and page 0 or more",
            ));
        }
        let start = page
            .checked_mul(per_page)
            .ok_or_else(|| ManagementError::invalid_query("page is too large"))?;
        Ok((start, per_page))
    }

    /// The answer in the form the caller asked for: a bare array, Auth0's totals object, or
    /// a checkpoint page with `next`.
    #[must_use]
    pub fn answer(
        &self,
        items: Vec<Value>,
        key: &str,
        start: i64,
        limit: i64,
        total: i64,
    ) -> Value {
        if self.take.is_some() {
            let next = start.saturating_add(i64::try_from(items.len()).unwrap_or(0));
            let mut v = json!({ key: items });
            if next < total {
                v["next"] = Value::String(next.to_string());
            }
            return v;
        }
        if self.include_totals.unwrap_or(false) {
            json!({ "start": start, "limit": limit, "total": total, key: items })
        } else {
            Value::Array(items)
        }
    }

    /// Pages through a list held in memory.
    pub fn slice<'a, T>(&self, items: &'a [T]) -> Result<(i64, i64, Vec<&'a T>), ManagementError> {
        let (start, limit) = self.window()?;
        let page = items
            .iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(0))
            .collect();
        Ok((start, limit, page))
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInput {
    pub name: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionsInput {
    pub permissions: Vec<Permission>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolesInput {
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UsersInput {
    pub users: Vec<String>,
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

impl Portcullis {
    async fn role_or_404(&self, role_id: &str) -> Result<Role, ManagementError> {
        self.store
            .find_role(self.tenant_id(), role_id)
            .await?
            .ok_or_else(|| ManagementError::not_found("role"))
    }

    /// `GET /api/v2/roles`.
    pub async fn list_roles_api(
        &self,
        _: Granted<ReadRoles>,
        params: &PageParams,
    ) -> Result<Value, ManagementError> {
        let filter = params
            .name_filter
            .as_deref()
            .unwrap_or_default()
            .to_lowercase();
        let roles: Vec<Role> = self
            .store
            .list_roles(self.tenant_id())
            .await?
            .into_iter()
            .filter(|r| r.name.to_lowercase().contains(&filter))
            .collect();
        let (start, limit, page) = params.slice(&roles)?;
        let items = page.into_iter().map(role_json).collect();
        Ok(params.answer(
            items,
            "roles",
            start,
            limit,
            i64::try_from(roles.len()).unwrap_or(i64::MAX),
        ))
    }

    /// `POST /api/v2/roles`.
    pub async fn create_role(
        &self,
        _: Granted<CreateRoles>,
        input: RoleInput,
    ) -> Result<Value, ManagementError> {
        let name = check_name(input.name.as_deref().unwrap_or_default())?;
        let role = Role {
            tenant_id: self.tenant_id().to_owned(),
            id: format!("rol_{}", portcullis_crypto::token::random_alphanumeric(16)),
            name,
            description: input.description.unwrap_or_default(),
            permissions: Vec::new(),
        };
        self.store
            .insert_role(&role, self.now())
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Conflict(_) => {
                    ManagementError::conflict("A role with this name already exists")
                }
                other => other.into(),
            })?;
        Ok(role_json(&role))
    }

    /// `GET /api/v2/roles/{id}`.
    pub async fn get_role(
        &self,
        _: Granted<ReadRoles>,
        role_id: &str,
    ) -> Result<Value, ManagementError> {
        Ok(role_json(&self.role_or_404(role_id).await?))
    }

    /// `PATCH /api/v2/roles/{id}`.
    pub async fn update_role_api(
        &self,
        _: Granted<UpdateRoles>,
        role_id: &str,
        input: RoleInput,
    ) -> Result<Value, ManagementError> {
        let mut role = self.role_or_404(role_id).await?;
        if let Some(name) = &input.name {
            role.name = check_name(name)?;
        }
        if let Some(d) = input.description {
            role.description = d;
        }
        self.store.update_role(&role).await.map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => {
                ManagementError::conflict("A role with this name already exists")
            }
            other => other.into(),
        })?;
        Ok(role_json(&role))
    }

    /// `DELETE /api/v2/roles/{id}`.
    pub async fn delete_role_api(
        &self,
        _: Granted<DeleteRoles>,
        role_id: &str,
    ) -> Result<(), ManagementError> {
        if !self.store.delete_role(self.tenant_id(), role_id).await? {
            return Err(ManagementError::not_found("role"));
        }
        Ok(())
    }

    /// The permissions with their API's name, as Auth0 lists them.
    async fn permissions_json(
        &self,
        permissions: &[(Permission, Option<&Role>)],
        with_sources: bool,
    ) -> Result<Vec<Value>, ManagementError> {
        let apis = self.store.list_resource_servers(self.tenant_id()).await?;
        Ok(permissions
            .iter()
            .map(|(p, source)| {
                let api = apis.iter().find(|a| a.identifier == p.resource_server_identifier);
                let description = api
                    .and_then(|a| a.scopes.iter().find(|s| s.value == p.permission_name))
                    .map(|s| s.description.clone())
                    .unwrap_or_default();
                let mut v = json!({
                    "permission_name": p.permission_name,
                    "description": description,
                    "resource_server_name": api.map(|a| a.name.clone()).unwrap_or_default(),
                    "resource_server_identifier": p.resource_server_identifier,
                });
                if with_sources {
                    v["sources"] = match source {
                    Some(role) => json!([{ "source_id": role.id, "source_name": role.name, "source_type": "ROLE" }]),
                    None => json!([{ "source_id": "", "source_name": "", "source_type": "DIRECT" }]),
                    };
                }
                v
            })
            .collect())
    }

    /// `GET /api/v2/roles/{id}/permissions`.
    pub async fn role_permissions(
        &self,
        _: Granted<ReadRoles>,
        role_id: &str,
        params: &PageParams,
    ) -> Result<Value, ManagementError> {
        let role = self.role_or_404(role_id).await?;
        let items: Vec<(Permission, Option<&Role>)> = role
            .permissions
            .iter()
            .cloned()
            .map(|p| (p, None))
            .collect();
        let all = self.permissions_json(&items, false).await?;
        let (start, limit, page) = params.slice(&all)?;
        let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
        Ok(params.answer(
            page.into_iter().cloned().collect(),
            "permissions",
            start,
            limit,
            total,
        ))
    }

    /// `POST` (add) or `DELETE` (remove) `/api/v2/roles/{id}/permissions`. Every permission
    /// must be a scope of an existing API; nothing changes otherwise.
    pub async fn change_role_permissions_api(
        &self,
        _: Granted<UpdateRoles>,
        role_id: &str,
        input: PermissionsInput,
        edit: Edit,
    ) -> Result<(), ManagementError> {
        self.role_or_404(role_id).await?;
        if input.permissions.is_empty() {
            return Err(ManagementError::bad_request(
                "Payload validation error: permissions must not be empty",
            ));
        }
        if edit == Edit::Add {
            self.check_permissions_exist(&input.permissions).await?;
        }
        self.store
            .change_role_permissions(self.tenant_id(), role_id, &input.permissions, edit)
            .await?;
        Ok(())
    }

    /// `GET /api/v2/roles/{id}/users`.
    pub async fn role_users(
        &self,
        _: Granted<ReadRoleMembers>,
        role_id: &str,
        params: &PageParams,
    ) -> Result<Value, ManagementError> {
        self.role_or_404(role_id).await?;
        let (start, limit) = params.window()?;
        let Page {
            items: users,
            total,
        } = self
            .store
            .list_role_users(self.tenant_id(), role_id, start, limit)
            .await?;
        let items = users
            .iter()
            .map(|u| json!({ "user_id": u.user_id, "email": u.email, "name": u.name, "picture": u.picture }))
            .collect();
        Ok(params.answer(items, "users", start, limit, total))
    }

    /// `POST /api/v2/roles/{id}/users`: assigns the role to users.
    pub async fn assign_role_users(
        &self,
        _: Granted<CreateRoleMembers>,
        role_id: &str,
        input: UsersInput,
    ) -> Result<(), ManagementError> {
        self.role_or_404(role_id).await?;
        for user_id in &input.users {
            if self
                .store
                .find_user(self.tenant_id(), user_id)
                .await?
                .is_none()
            {
                return Err(ManagementError::not_found("user"));
            }
        }
        for user_id in &input.users {
            self.store
                .change_user_roles(self.tenant_id(), user_id, &[role_id.to_owned()], Edit::Add)
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
        params: &PageParams,
    ) -> Result<Value, ManagementError> {
        self.store
            .find_user(self.tenant_id(), user_id)
            .await?
            .ok_or_else(|| ManagementError::not_found("user"))?;
        let roles = self
            .store
            .list_user_roles(self.tenant_id(), user_id)
            .await?;
        let (start, limit, page) = params.slice(&roles)?;
        let items = page.into_iter().map(role_json).collect();
        Ok(params.answer(
            items,
            "roles",
            start,
            limit,
            i64::try_from(roles.len()).unwrap_or(i64::MAX),
        ))
    }

    async fn check_user_and_roles(
        &self,
        user_id: &str,
        role_ids: &[String],
    ) -> Result<(), ManagementError> {
        self.store
            .find_user(self.tenant_id(), user_id)
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
        input: RolesInput,
    ) -> Result<(), ManagementError> {
        self.check_user_and_roles(user_id, &input.roles).await?;
        self.store
            .change_user_roles(self.tenant_id(), user_id, &input.roles, Edit::Add)
            .await?;
        Ok(())
    }

    /// `DELETE /api/v2/users/{id}/roles`.
    pub async fn remove_user_roles(
        &self,
        _: Granted<DeleteRoleMembers>,
        user_id: &str,
        input: RolesInput,
    ) -> Result<(), ManagementError> {
        self.check_user_and_roles(user_id, &input.roles).await?;
        self.store
            .change_user_roles(self.tenant_id(), user_id, &input.roles, Edit::Remove)
            .await?;
        Ok(())
    }

    /// `GET /api/v2/users/{id}/permissions`: what the user holds through roles.
    pub async fn user_permissions(
        &self,
        _: Granted<ReadUsers>,
        user_id: &str,
        params: &PageParams,
    ) -> Result<Value, ManagementError> {
        self.store
            .find_user(self.tenant_id(), user_id)
            .await?
            .ok_or_else(|| ManagementError::not_found("user"))?;
        let roles = self
            .store
            .list_user_roles(self.tenant_id(), user_id)
            .await?;
        let direct = self
            .store
            .list_user_permissions(self.tenant_id(), user_id)
            .await?;
        let items: Vec<(Permission, Option<&Role>)> = direct
            .into_iter()
            .map(|p| (p, None))
            .chain(
                roles
                    .iter()
                    .flat_map(|r| r.permissions.iter().cloned().map(move |p| (p, Some(r)))),
            )
            .collect();
        let all = self.permissions_json(&items, true).await?;
        let (start, limit, page) = params.slice(&all)?;
        Ok(params.answer(
            page.into_iter().cloned().collect(),
            "permissions",
            start,
            limit,
            i64::try_from(all.len()).unwrap_or(i64::MAX),
        ))
    }

    /// Every permission must be a scope of an existing API.
    async fn check_permissions_exist(
        &self,
        permissions: &[Permission],
    ) -> Result<(), ManagementError> {
        let apis = self.store.list_resource_servers(self.tenant_id()).await?;
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
        input: PermissionsInput,
        edit: Edit,
    ) -> Result<(), ManagementError> {
        self.store
            .find_user(self.tenant_id(), user_id)
            .await?
            .ok_or_else(|| ManagementError::not_found("user"))?;
        if input.permissions.is_empty() {
            return Err(ManagementError::bad_request(
                "Payload validation error: permissions must not be empty",
            ));
        }
        if edit == Edit::Add {
            self.check_permissions_exist(&input.permissions).await?;
        }
        self.store
            .change_user_permissions(self.tenant_id(), user_id, &input.permissions, edit)
            .await?;
        Ok(())
    }
}

impl Portcullis {
    /// The id of the role named `role`, or with id `role` (the command line's way to name
    /// a role).
    pub async fn role_id(&self, role: &str) -> Result<Option<String>, crate::store::StoreError> {
        Ok(self
            .store
            .list_roles(self.tenant_id())
            .await?
            .into_iter()
            .find(|r| r.id == role || r.name == role)
            .map(|r| r.id))
    }
}
