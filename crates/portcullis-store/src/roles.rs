//! Roles, their permissions, and users' roles and permissions.

use crate::rows::{self, backend_err};
use crate::sql::SqlStore;
use async_trait::async_trait;
use portcullis_core::model::{Permission, Role, Timestamp, User};
use portcullis_core::store::{Edit, Page, RoleStore, StoreError};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;

#[async_trait]
impl RoleStore for SqlStore {
    async fn list_roles(&self, tenant_id: &str) -> Result<Vec<Role>, StoreError> {
        let mut perms = self.role_permissions(tenant_id).await?;
        let rows = sqlx::query("SELECT * FROM roles WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?;
        Self::roles_from_rows(&rows, &mut perms)
    }

    async fn find_role(&self, tenant_id: &str, role_id: &str) -> Result<Option<Role>, StoreError> {
        let rows = sqlx::query("SELECT * FROM roles WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(role_id)
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut perms = self.role_permissions(tenant_id).await?;
        Ok(Self::roles_from_rows(&rows, &mut perms)?.pop())
    }

    async fn insert_role(&self, role: &Role, now: Timestamp) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        upsert(&mut tx, &role.tenant_id, role, now).await?;
        replace_permissions(&mut tx, &role.tenant_id, role).await?;
        tx.commit().await.map_err(backend_err)
    }

    async fn update_role(&self, role: &Role) -> Result<(), StoreError> {
        sqlx::query("UPDATE roles SET name = $3, description = $4 WHERE tenant_id = $1 AND id = $2")
            .bind(&role.tenant_id)
            .bind(&role.id)
            .bind(&role.name)
            .bind(&role.description)
            .execute(self.writer())
            .await
            .map(|_| ())
            .map_err(backend_err)
    }

    async fn delete_role(&self, tenant_id: &str, role_id: &str) -> Result<bool, StoreError> {
        crate::cascade::delete_cascade(
            self,
            tenant_id,
            role_id,
            &[
                "DELETE FROM role_permissions WHERE tenant_id = $1 AND role_id = $2",
                "DELETE FROM user_roles WHERE tenant_id = $1 AND role_id = $2",
                "DELETE FROM roles WHERE tenant_id = $1 AND id = $2",
            ],
        )
        .await
    }

    async fn change_role_permissions(
        &self,
        tenant_id: &str,
        role_id: &str,
        permissions: &[Permission],
        edit: Edit,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for p in permissions {
            if edit == Edit::Add {
                add_permission(&mut tx, tenant_id, role_id, p).await?;
            } else {
                sqlx::query(
                    "DELETE FROM role_permissions WHERE tenant_id = $1 AND role_id = $2 \
                     AND resource_server_identifier = $3 AND permission_name = $4",
                )
                .bind(tenant_id)
                .bind(role_id)
                .bind(&p.resource_server_identifier)
                .bind(&p.permission_name)
                .execute(&mut *tx)
                .await
                .map_err(backend_err)?;
            }
        }
        tx.commit().await.map_err(backend_err)
    }

    async fn change_user_roles(
        &self,
        tenant_id: &str,
        user_id: &str,
        role_ids: &[String],
        edit: Edit,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let statement = match edit {
            Edit::Add => ADD_USER_ROLE,
            Edit::Remove => {
                "DELETE FROM user_roles WHERE tenant_id = $1 AND user_id = $2 AND role_id = $3"
            }
        };
        for role_id in role_ids {
            sqlx::query(statement)
                .bind(tenant_id)
                .bind(user_id)
                .bind(role_id)
                .execute(&mut *tx)
                .await
                .map_err(backend_err)?;
        }
        tx.commit().await.map_err(backend_err)
    }

    async fn list_user_permissions(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Vec<Permission>, StoreError> {
        sqlx::query(
            "SELECT resource_server_identifier, permission_name FROM user_permissions \
             WHERE tenant_id = $1 AND user_id = $2 ORDER BY resource_server_identifier, permission_name",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend_err)?
        .iter()
        .map(|r| {
            Ok(Permission {
                resource_server_identifier: r.try_get("resource_server_identifier").map_err(backend_err)?,
                permission_name: r.try_get("permission_name").map_err(backend_err)?,
            })
        })
        .collect()
    }

    async fn change_user_permissions(
        &self,
        tenant_id: &str,
        user_id: &str,
        permissions: &[Permission],
        edit: Edit,
    ) -> Result<(), StoreError> {
        let statement = if edit == Edit::Add {
            "INSERT INTO user_permissions (tenant_id, user_id, resource_server_identifier, permission_name) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM user_permissions WHERE tenant_id = $1 AND user_id = $2 \
             AND resource_server_identifier = $3 AND permission_name = $4"
        };
        let mut tx = self.begin_write().await?;
        for p in permissions {
            sqlx::query(statement)
                .bind(tenant_id)
                .bind(user_id)
                .bind(&p.resource_server_identifier)
                .bind(&p.permission_name)
                .execute(&mut *tx)
                .await
                .map_err(backend_err)?;
        }
        tx.commit().await.map_err(backend_err)
    }

    async fn list_role_users(
        &self,
        tenant_id: &str,
        role_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Page<User>, StoreError> {
        let users = sqlx::query(
            "SELECT u.* FROM users u JOIN user_roles ur ON ur.tenant_id = u.tenant_id \
             AND ur.user_id = u.user_id WHERE ur.tenant_id = $1 AND ur.role_id = $2 \
             ORDER BY u.user_id LIMIT $3 OFFSET $4",
        )
        .bind(tenant_id)
        .bind(role_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
        .map_err(backend_err)?
        .iter()
        .map(rows::user)
        .collect::<Result<Vec<_>, _>>()?;
        let total: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM user_roles WHERE tenant_id = $1 AND role_id = $2",
        )
        .bind(tenant_id)
        .bind(role_id)
        .fetch_one(&self.pool)
        .await
        .map_err(backend_err)?
        .try_get("n")
        .map_err(backend_err)?;
        Ok(Page {
            items: users,
            total,
        })
    }

    async fn list_user_roles(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Vec<Role>, StoreError> {
        Ok(read_user_access(&self.pool, tenant_id, user_id).await?.0)
    }
}

async fn add_permission(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
    role_id: &str,
    p: &Permission,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO role_permissions (tenant_id, role_id, resource_server_identifier, permission_name) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id)
    .bind(role_id)
    .bind(&p.resource_server_identifier)
    .bind(&p.permission_name)
    .execute(conn)
    .await
    .map(|_| ())
    .map_err(backend_err)
}

/// Gives a user a role (nothing if they have it).
const ADD_USER_ROLE: &str = "INSERT INTO user_roles (tenant_id, user_id, role_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";

/// A user's roles (each with its permissions) and direct permissions, in one statement.
pub(crate) async fn read_user_access<'e, E>(
    executor: E,
    tenant_id: &str,
    user_id: &str,
) -> Result<(Vec<Role>, Vec<Permission>), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    // Three parts in one statement: `a` the roles, `b` their permissions, `c` the
    // direct permissions; unused columns are empty strings so both backends agree on
    // the types.
    let rows = sqlx::query(
        "SELECT 'a' AS part, r.id AS role_id, r.name AS role_name, \
         r.description AS role_description, '' AS rs, '' AS perm \
         FROM roles r JOIN user_roles ur ON ur.tenant_id = r.tenant_id AND ur.role_id = r.id \
         WHERE ur.tenant_id = $1 AND ur.user_id = $2 \
         UNION ALL \
         SELECT 'b', rp.role_id, '', '', rp.resource_server_identifier, rp.permission_name \
         FROM role_permissions rp JOIN user_roles ur \
         ON ur.tenant_id = rp.tenant_id AND ur.role_id = rp.role_id \
         WHERE ur.tenant_id = $1 AND ur.user_id = $2 \
         UNION ALL \
         SELECT 'c', '', '', '', up.resource_server_identifier, up.permission_name \
         FROM user_permissions up WHERE up.tenant_id = $1 AND up.user_id = $2 \
         ORDER BY part, role_name, role_id, rs, perm",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_all(executor)
    .await
    .map_err(backend_err)?;
    let mut roles = Vec::new();
    let mut role_perms: BTreeMap<String, Vec<Permission>> = BTreeMap::new();
    let mut direct = Vec::new();
    for row in &rows {
        let part: String = row.try_get("part").map_err(backend_err)?;
        let permission = || -> Result<Permission, StoreError> {
            Ok(Permission {
                resource_server_identifier: row.try_get("rs").map_err(backend_err)?,
                permission_name: row.try_get("perm").map_err(backend_err)?,
            })
        };
        match part.as_str() {
            "a" => roles.push(Role {
                tenant_id: tenant_id.to_owned(),
                id: row.try_get("role_id").map_err(backend_err)?,
                name: row.try_get("role_name").map_err(backend_err)?,
                description: row.try_get("role_description").map_err(backend_err)?,
                permissions: Vec::new(),
            }),
            "b" => role_perms
                .entry(row.try_get("role_id").map_err(backend_err)?)
                .or_default()
                .push(permission()?),
            _ => direct.push(permission()?),
        }
    }
    for role in &mut roles {
        role.permissions = role_perms.remove(&role.id).unwrap_or_default();
    }
    Ok((roles, direct))
}

impl SqlStore {
    pub(crate) async fn role_permissions(
        &self,
        tenant_id: &str,
    ) -> Result<BTreeMap<String, Vec<portcullis_core::model::Permission>>, StoreError> {
        let rows = sqlx::query(
            "SELECT role_id, resource_server_identifier, permission_name FROM role_permissions \
             WHERE tenant_id = $1 ORDER BY role_id, resource_server_identifier, permission_name",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend_err)?;
        let mut map: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for row in rows {
            let role_id: String = row.try_get("role_id").map_err(backend_err)?;
            map.entry(role_id)
                .or_default()
                .push(portcullis_core::model::Permission {
                    resource_server_identifier: row
                        .try_get("resource_server_identifier")
                        .map_err(backend_err)?,
                    permission_name: row.try_get("permission_name").map_err(backend_err)?,
                });
        }
        Ok(map)
    }

    pub(crate) fn roles_from_rows(
        rows: &[AnyRow],
        perms: &mut BTreeMap<String, Vec<portcullis_core::model::Permission>>,
    ) -> Result<Vec<Role>, StoreError> {
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id").map_err(backend_err)?;
                Ok(Role {
                    tenant_id: row.try_get("tenant_id").map_err(backend_err)?,
                    permissions: perms.remove(&id).unwrap_or_default(),
                    id,
                    name: row.try_get("name").map_err(backend_err)?,
                    description: row.try_get("description").map_err(backend_err)?,
                })
            })
            .collect()
    }
}

/// Creates a role or replaces its name and description.
pub(crate) async fn upsert(
    conn: &mut AnyConnection,
    tenant_id: &str,
    r: &Role,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO roles (tenant_id, id, name, description, created_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name, \
             description = excluded.description",
    )
    .bind(tenant_id)
    .bind(&r.id)
    .bind(&r.name)
    .bind(&r.description)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(backend_err)?;
    Ok(())
}

/// Replaces the whole permission set of a role with `r.permissions`.
pub(crate) async fn replace_permissions(
    conn: &mut AnyConnection,
    tenant_id: &str,
    r: &Role,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM role_permissions WHERE tenant_id = $1 AND role_id = $2")
        .bind(tenant_id)
        .bind(&r.id)
        .execute(&mut *conn)
        .await
        .map_err(backend_err)?;
    for p in &r.permissions {
        add_permission(conn, tenant_id, &r.id, p).await?;
    }
    Ok(())
}

/// Replaces the whole role set of a user.
pub(crate) async fn replace_user_roles(
    conn: &mut AnyConnection,
    tenant_id: &str,
    u: &User,
    role_ids: &[String],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM user_roles WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant_id)
        .bind(&u.user_id)
        .execute(&mut *conn)
        .await
        .map_err(backend_err)?;
    for role_id in role_ids {
        sqlx::query(ADD_USER_ROLE)
            .bind(tenant_id)
            .bind(&u.user_id)
            .bind(role_id)
            .execute(&mut *conn)
            .await
            .map_err(backend_err)?;
    }
    Ok(())
}
