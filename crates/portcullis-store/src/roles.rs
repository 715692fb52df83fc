//! Role writes and queries for the Management API.

use crate::rows::{self, backend_err};
use portcullis_core::model::{Permission, Role, Timestamp, User};
use portcullis_core::store::StoreError;
use sqlx::{AnyPool, Row};

pub(crate) async fn insert(pool: &AnyPool, role: &Role, now: Timestamp) -> Result<(), StoreError> {
    let mut tx = crate::rows::begin_write(pool).await?;
    sqlx::query("INSERT INTO roles (tenant_id, id, name, description, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&role.tenant_id)
        .bind(&role.id)
        .bind(&role.name)
        .bind(&role.description)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
    for p in &role.permissions {
        add_permission(&mut tx, &role.tenant_id, &role.id, p).await?;
    }
    tx.commit().await.map_err(backend_err)
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

pub(crate) async fn update(pool: &AnyPool, role: &Role) -> Result<(), StoreError> {
    sqlx::query("UPDATE roles SET name = $3, description = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(&role.tenant_id)
        .bind(&role.id)
        .bind(&role.name)
        .bind(&role.description)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(backend_err)
}

pub(crate) async fn delete(
    pool: &AnyPool,
    tenant_id: &str,
    role_id: &str,
) -> Result<bool, StoreError> {
    crate::cascade::delete_cascade(
        pool,
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

pub(crate) async fn change_permissions(
    pool: &AnyPool,
    tenant_id: &str,
    role_id: &str,
    permissions: &[Permission],
    add: bool,
) -> Result<(), StoreError> {
    let mut tx = crate::rows::begin_write(pool).await?;
    for p in permissions {
        if add {
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

pub(crate) async fn change_user_roles(
    pool: &AnyPool,
    tenant_id: &str,
    user_id: &str,
    role_ids: &[String],
    add: bool,
) -> Result<(), StoreError> {
    let mut tx = crate::rows::begin_write(pool).await?;
    let statement = if add {
        "INSERT INTO user_roles (tenant_id, user_id, role_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM user_roles WHERE tenant_id = $1 AND user_id = $2 AND role_id = $3"
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

pub(crate) async fn users(
    pool: &AnyPool,
    tenant_id: &str,
    role_id: &str,
    offset: i64,
    limit: i64,
) -> Result<(Vec<User>, i64), StoreError> {
    let users = sqlx::query(
        "SELECT u.* FROM users u JOIN user_roles ur ON ur.tenant_id = u.tenant_id \
         AND ur.user_id = u.user_id WHERE ur.tenant_id = $1 AND ur.role_id = $2 \
         ORDER BY u.user_id LIMIT $3 OFFSET $4",
    )
    .bind(tenant_id)
    .bind(role_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
    .map_err(backend_err)?
    .iter()
    .map(rows::user)
    .collect::<Result<Vec<_>, _>>()?;
    let total: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM user_roles WHERE tenant_id = $1 AND role_id = $2")
            .bind(tenant_id)
            .bind(role_id)
            .fetch_one(pool)
            .await
            .map_err(backend_err)?
            .try_get("n")
            .map_err(backend_err)?;
    Ok((users, total))
}

pub(crate) async fn user_permissions(
    pool: &AnyPool,
    tenant_id: &str,
    user_id: &str,
) -> Result<Vec<Permission>, StoreError> {
    sqlx::query(
        "SELECT resource_server_identifier, permission_name FROM user_permissions \
         WHERE tenant_id = $1 AND user_id = $2 ORDER BY resource_server_identifier, permission_name",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_all(pool)
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

pub(crate) async fn change_user_permissions(
    pool: &AnyPool,
    tenant_id: &str,
    user_id: &str,
    permissions: &[Permission],
    add: bool,
) -> Result<(), StoreError> {
    let statement = if add {
        "INSERT INTO user_permissions (tenant_id, user_id, resource_server_identifier, permission_name) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
    } else {
        "DELETE FROM user_permissions WHERE tenant_id = $1 AND user_id = $2 \
         AND resource_server_identifier = $3 AND permission_name = $4"
    };
    let mut tx = crate::rows::begin_write(pool).await?;
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
