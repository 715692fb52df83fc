//! Users of the database connection.

use crate::roles::read_user_access;
use crate::rows::{self, backend_err, to_json};
use crate::sql::{Backend, SqlStore};
use async_trait::async_trait;
use portcullis_core::model::{Timestamp, User, normalize_email};
use portcullis_core::store::{Page, StoreError, UserAccess, UserStore};
use sqlx::{AnyConnection, Row};

#[async_trait]
impl UserStore for SqlStore {
    async fn find_user(&self, tenant_id: &str, user_id: &str) -> Result<Option<User>, StoreError> {
        sqlx::query("SELECT * FROM users WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_err)?
            .map(|r| rows::user(&r))
            .transpose()
    }

    async fn find_user_by_email(
        &self,
        tenant_id: &str,
        connection: &str,
        email: &str,
    ) -> Result<Option<User>, StoreError> {
        sqlx::query(
            "SELECT * FROM users WHERE tenant_id = $1 AND connection = $2 AND email_normalized = $3",
        )
        .bind(tenant_id)
        .bind(connection)
        .bind(portcullis_core::model::normalize_email(email))
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?
        .map(|r| rows::user(&r))
        .transpose()
    }

    async fn user_with_access(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Option<UserAccess>, StoreError> {
        // One connection for both reads: one hand-off to the pool instead of two.
        let mut conn = self.pool.acquire().await.map_err(backend_err)?;
        read_user_with_access(&mut conn, tenant_id, user_id).await
    }

    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        insert_rows(self.writer(), std::slice::from_ref(user), self.is_sqlite()).await
    }

    async fn insert_users(&self, users: &[User]) -> Result<(), StoreError> {
        let sqlite = self.is_sqlite();
        let mut tx = self.begin_write().await?;
        for chunk in users.chunks(ROWS_PER_INSERT) {
            insert_rows(&mut *tx, chunk, sqlite).await?;
        }
        tx.commit().await.map_err(backend_err)
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE users SET email = $3, email_normalized = $4, email_verified = $5, name = $6, \
             nickname = $7, picture = $8, password_hash = $9, user_metadata = $10, \
             app_metadata = $11, blocked = $12, updated_at = $13 \
             WHERE tenant_id = $1 AND user_id = $2",
        );
        bind_profile(query.bind(&user.tenant_id).bind(&user.user_id), user)
            .bind(user.updated_at)
            .execute(self.writer())
            .await
            .map(|_| ())
            .map_err(backend_err)
    }

    async fn delete_user(&self, tenant_id: &str, user_id: &str) -> Result<bool, StoreError> {
        crate::cascade::delete_cascade(
            self,
            tenant_id,
            user_id,
            &[
                "DELETE FROM access_tokens WHERE tenant_id = $1 AND grant_id IN \
                 (SELECT id FROM grants WHERE tenant_id = $1 AND user_id = $2)",
                "DELETE FROM authorization_codes WHERE tenant_id = $1 AND grant_id IN \
                 (SELECT id FROM grants WHERE tenant_id = $1 AND user_id = $2)",
                "DELETE FROM refresh_tokens WHERE tenant_id = $1 AND user_id = $2",
                "DELETE FROM grants WHERE tenant_id = $1 AND user_id = $2",
                // A login transaction's id stays recorded, finished, until it expires, so the
                // sealed login page it came from stays spent; what named the user goes.
                "UPDATE login_transactions SET user_id = NULL, session_id = NULL, request = '{}', \
                 completed_at = COALESCE(completed_at, created_at) \
                 WHERE tenant_id = $1 AND user_id = $2",
                "DELETE FROM sessions WHERE tenant_id = $1 AND user_id = $2",
                "DELETE FROM consents WHERE tenant_id = $1 AND user_id = $2",
                "DELETE FROM user_roles WHERE tenant_id = $1 AND user_id = $2",
                "DELETE FROM user_permissions WHERE tenant_id = $1 AND user_id = $2",
                "DELETE FROM users WHERE tenant_id = $1 AND user_id = $2",
            ],
        )
        .await
    }

    async fn search_users(
        &self,
        tenant_id: &str,
        search: &portcullis_core::management::query::UserSearch,
    ) -> Result<Page<User>, StoreError> {
        let dialect = match self.backend {
            Backend::Sqlite => crate::user_search::Dialect::Sqlite,
            Backend::Postgres => crate::user_search::Dialect::Postgres,
        };
        crate::user_search::search(&self.pool, dialect, tenant_id, search).await
    }

    async fn record_login(
        &self,
        tenant_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET last_login = $3, logins_count = logins_count + 1 \
             WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(now)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn password_history(
        &self,
        tenant_id: &str,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        sqlx::query(
            "SELECT password_hash FROM password_history WHERE tenant_id = $1 AND user_id = $2 \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(backend_err)?
        .iter()
        .map(|r| r.try_get("password_hash").map_err(backend_err))
        .collect()
    }

    async fn change_password(
        &self,
        tenant_id: &str,
        user_id: &str,
        new_hash: &str,
        keep: usize,
        verify_email: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let old: Option<Option<String>> =
            sqlx::query("SELECT password_hash FROM users WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend_err)?
                .map(|r| r.try_get("password_hash").map_err(backend_err))
                .transpose()?;
        let Some(old) = old else {
            return Err(StoreError::Conflict("no such user".to_owned()));
        };
        if let Some(old) = old.filter(|_| keep > 0) {
            let id = format!(
                "{now:012}{}",
                portcullis_crypto::token::random_alphanumeric(8)
            );
            sqlx::query(
                "INSERT INTO password_history (tenant_id, user_id, id, password_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(tenant_id)
            .bind(user_id)
            .bind(id)
            .bind(old)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        }
        sqlx::query(
            "DELETE FROM password_history WHERE tenant_id = $1 AND user_id = $2 AND id NOT IN \
             (SELECT id FROM password_history WHERE tenant_id = $1 AND user_id = $2 \
             ORDER BY id DESC LIMIT $3)",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(i64::try_from(keep).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        sqlx::query(
            "UPDATE users SET password_hash = $3, updated_at = $4, \
             email_verified = CASE WHEN $5 = 1 THEN 1 ELSE email_verified END \
             WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(new_hash)
        .bind(now)
        .bind(i64::from(verify_email))
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        for statement in [
            "UPDATE sessions SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
            "UPDATE grants SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
            "UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL",
            "DELETE FROM login_failures WHERE tenant_id = $1 AND user_id = $2 AND $3 = $3",
            "UPDATE tickets SET used_at = $3 WHERE tenant_id = $1 AND user_id = $2 \
             AND kind IN ('password_change', 'unblock') AND used_at IS NULL",
        ] {
            sqlx::query(statement)
                .bind(tenant_id)
                .bind(user_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(backend_err)?;
        }
        tx.commit().await.map_err(backend_err)
    }

    async fn mark_email_verified(
        &self,
        tenant_id: &str,
        user_id: &str,
        email_normalized: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE users SET email_verified = 1, updated_at = $4 WHERE tenant_id = $1 \
             AND user_id = $2 AND email_normalized = $3",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(email_normalized)
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(backend_err)?;
        Ok(result.rows_affected() == 1)
    }
}

/// Rows per `INSERT` of a bulk import (17 parameters each, under both backends' limits).
const ROWS_PER_INSERT: usize = 64;

/// One `INSERT` of every user of `chunk`.
async fn insert_rows<'e, E>(executor: E, chunk: &[User], sqlite: bool) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = format!(
        "INSERT INTO users (tenant_id, user_id, connection, email, email_normalized, \
         email_verified, name, nickname, picture, password_hash, user_metadata, app_metadata, \
         blocked, created_at, updated_at, last_login, logins_count) VALUES {}",
        crate::rows::values_list(chunk.len(), 17, sqlite)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for u in chunk {
        query = bind_profile(
            query
                .bind(&u.tenant_id)
                .bind(&u.user_id)
                .bind(&u.connection),
            u,
        )
        .bind(u.created_at)
        .bind(u.updated_at)
        .bind(u.last_login)
        .bind(u.logins_count);
    }
    query
        .execute(executor)
        .await
        .map(|_| ())
        .map_err(backend_err)
}

/// Binds the ten columns a user's profile fills, in this order: `email`,
/// `email_normalized`, `email_verified`, `name`, `nickname`, `picture`, `password_hash`,
/// `user_metadata`, `app_metadata`, `blocked`. Inserts, updates and the tenant file's
/// upserts all write them.
pub(crate) fn bind_profile<'q>(
    query: crate::rows::AnyQuery<'q>,
    u: &'q User,
) -> crate::rows::AnyQuery<'q> {
    query
        .bind(&u.email)
        .bind(normalize_email(&u.email))
        .bind(i64::from(u.email_verified))
        .bind(&u.name)
        .bind(&u.nickname)
        .bind(&u.picture)
        .bind(u.password_hash.as_deref())
        .bind(to_json(&u.user_metadata))
        .bind(to_json(&u.app_metadata))
        .bind(i64::from(u.blocked))
}

/// A user and their access, read on one connection (`None` when the user is gone).
pub(crate) async fn read_user_with_access(
    conn: &mut AnyConnection,
    tenant_id: &str,
    user_id: &str,
) -> Result<Option<UserAccess>, StoreError> {
    let Some(user) = sqlx::query("SELECT * FROM users WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend_err)?
        .map(|r| rows::user(&r))
        .transpose()?
    else {
        return Ok(None);
    };
    let (roles, direct) = read_user_access(&mut *conn, tenant_id, user_id).await?;
    Ok(Some((user, roles, direct)))
}

/// Creates a user or replaces their profile (a tenant file's users).
pub(crate) async fn upsert(
    conn: &mut AnyConnection,
    tenant_id: &str,
    u: &User,
    now: Timestamp,
) -> Result<(), StoreError> {
    let query = sqlx::query(
        "INSERT INTO users (tenant_id, user_id, connection, email, email_normalized, \
             email_verified, name, nickname, picture, password_hash, user_metadata, \
             app_metadata, blocked, created_at, updated_at, last_login, logins_count) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, NULL, 0) \
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET email = excluded.email, \
             email_normalized = excluded.email_normalized, \
             email_verified = excluded.email_verified, name = excluded.name, \
             nickname = excluded.nickname, picture = excluded.picture, \
             password_hash = excluded.password_hash, user_metadata = excluded.user_metadata, \
             app_metadata = excluded.app_metadata, blocked = excluded.blocked, \
             updated_at = excluded.updated_at",
    );
    crate::users::bind_profile(
        query.bind(tenant_id).bind(&u.user_id).bind(&u.connection),
        u,
    )
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(backend_err)?;
    Ok(())
}
