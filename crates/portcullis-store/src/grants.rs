//! Grants, authorization codes, refresh-token families and recorded access tokens.

use crate::rows::{self, backend_err, to_json};
use crate::sql::Backend;
use crate::sql::SqlStore;
use crate::users::read_user_with_access;
use async_trait::async_trait;
use portcullis_core::model::{AuthorizationCode, CodeGrant, Grant, RefreshToken, Timestamp};
use portcullis_core::store::{AccessRecord, GrantStore, RefreshTokenContext, StoreError};
use sqlx::Row;
use std::sync::LazyLock;

#[async_trait]
impl GrantStore for SqlStore {
    async fn create_grant(&self, g: &Grant) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO grants (tenant_id, id, client_id, user_id, session_id, created_at, \
             revoked_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(&g.tenant_id)
        .bind(&g.id)
        .bind(&g.client_id)
        .bind(&g.user_id)
        .bind(g.session_id.as_deref())
        .bind(g.created_at)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn find_grant(&self, tenant_id: &str, id: &str) -> Result<Option<Grant>, StoreError> {
        sqlx::query("SELECT * FROM grants WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_err)?
            .map(|r| rows::grant(&r))
            .transpose()
    }

    async fn revoke_grant(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE grants SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 \
             AND revoked_at IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND grant_id = $2 \
             AND revoked_at IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)
    }

    async fn create_authorization_code(
        &self,
        tenant_id: &str,
        code_hash: &str,
        grant_id: &str,
        grant: &CodeGrant,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO authorization_codes (tenant_id, code_hash, grant_id, client_id, \
             request, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(tenant_id)
        .bind(code_hash)
        .bind(grant_id)
        .bind(&grant.request.client_id)
        .bind(to_json(grant))
        .bind(now)
        .bind(expires_at)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn consume_authorization_code(
        &self,
        tenant_id: &str,
        code_hash: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Option<AuthorizationCode>, StoreError> {
        let fresh = sqlx::query(
            "UPDATE authorization_codes SET used_at = $3 \
             WHERE tenant_id = $1 AND code_hash = $2 AND client_id = $4 AND used_at IS NULL \
             RETURNING grant_id, request, expires_at",
        )
        .bind(tenant_id)
        .bind(code_hash)
        .bind(now)
        .bind(client_id)
        .fetch_optional(self.writer())
        .await
        .map_err(backend_err)?;
        match fresh {
            Some(row) => rows::authorization_code(tenant_id, &row, false).map(Some),
            None => Ok(self
                .find_authorization_code(tenant_id, code_hash, client_id)
                .await?
                .map(|code| AuthorizationCode {
                    used_before: true,
                    ..code
                })),
        }
    }

    async fn find_authorization_code(
        &self,
        tenant_id: &str,
        code_hash: &str,
        client_id: &str,
    ) -> Result<Option<AuthorizationCode>, StoreError> {
        let row = sqlx::query(
            "SELECT grant_id, request, expires_at, used_at FROM authorization_codes \
             WHERE tenant_id = $1 AND code_hash = $2 AND client_id = $3",
        )
        .bind(tenant_id)
        .bind(code_hash)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let used_at: Option<i64> = row.try_get("used_at").map_err(backend_err)?;
        rows::authorization_code(tenant_id, &row, used_at.is_some()).map(Some)
    }

    async fn create_refresh_token(&self, t: &RefreshToken) -> Result<(), StoreError> {
        insert_refresh_token(self.writer(), t).await
    }

    async fn find_refresh_token_and_grant(
        &self,
        tenant_id: &str,
        token_hash: &str,
    ) -> Result<Option<(RefreshToken, Option<Grant>)>, StoreError> {
        read_refresh_token_and_grant(&self.pool, tenant_id, token_hash).await
    }

    async fn find_refresh_token_context(
        &self,
        tenant_id: &str,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenContext>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend_err)?;
        let Some((token, grant)) =
            read_refresh_token_and_grant(&mut *conn, tenant_id, token_hash).await?
        else {
            return Ok(None);
        };
        let user = read_user_with_access(&mut conn, tenant_id, &token.user_id).await?;
        Ok(Some(RefreshTokenContext { token, grant, user }))
    }

    async fn find_refresh_token(
        &self,
        tenant_id: &str,
        token_hash: &str,
    ) -> Result<Option<RefreshToken>, StoreError> {
        sqlx::query("SELECT * FROM refresh_tokens WHERE tenant_id = $1 AND token_hash = $2")
            .bind(tenant_id)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_err)?
            .map(|r| rows::refresh_token(&r))
            .transpose()
    }

    async fn rotate_refresh_token(
        &self,
        tenant_id: &str,
        old_hash: &str,
        new: &RefreshToken,
        access: &AccessRecord,
        now: Timestamp,
        allow_reuse_since: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        // One round trip: the new token and the access record are written only when the old
        // token was spent, by the same statement on PostgreSQL and by one script on SQLite
        // that opens and commits its own transaction (`changes()` is what the statement
        // before it wrote). On SQLite every round trip is a hand-off to the connection's
        // thread, so `BEGIN` and `COMMIT` travel with the statements.
        const SPEND: &str = "UPDATE refresh_tokens SET used_at = COALESCE(used_at, $3) \
             WHERE tenant_id = $1 AND token_hash = $2 AND revoked_at IS NULL \
             AND (used_at IS NULL OR used_at >= $4)";
        const STORE: &str = "INSERT INTO refresh_tokens (tenant_id, token_hash, id, grant_id, \
             client_id, user_id, scope, audience, auth_time, created_at, expires_at, \
             idle_expires_at, used_at, revoked_at) \
             SELECT $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, NULL, NULL";
        const RECORD: &str = "INSERT INTO access_tokens (tenant_id, jti, grant_id, expires_at) SELECT $1, $17, $18, $19";
        static SQLITE: LazyLock<String> = LazyLock::new(|| {
            format!(
                "BEGIN IMMEDIATE; {SPEND}; {STORE} WHERE changes() = 1; \
                 {RECORD} WHERE changes() = 1; SELECT changes() AS rotated; COMMIT"
            )
        });
        static POSTGRES: LazyLock<String> = LazyLock::new(|| {
            format!(
                "WITH spent AS ({SPEND} RETURNING 1), \
                 fresh AS ({STORE} WHERE EXISTS (SELECT 1 FROM spent) RETURNING 1) \
                 {RECORD} WHERE EXISTS (SELECT 1 FROM fresh)"
            )
        });
        fn bind<'q>(
            sql: &'q str,
            tenant_id: &'q str,
            old_hash: &'q str,
            new: &'q RefreshToken,
            access: &'q AccessRecord,
            now: Timestamp,
            allow_reuse_since: Option<Timestamp>,
        ) -> rows::AnyQuery<'q> {
            let query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant_id)
                .bind(old_hash)
                .bind(now)
                .bind(allow_reuse_since.unwrap_or(i64::MAX));
            bind_refresh_token(query, new)
                .bind(&access.jti)
                .bind(&access.grant_id)
                .bind(access.expires_at)
        }
        if self.backend == Backend::Postgres {
            let query = bind(
                POSTGRES.as_str(),
                tenant_id,
                old_hash,
                new,
                access,
                now,
                allow_reuse_since,
            );
            let done = query.execute(self.writer()).await.map_err(backend_err)?;
            return Ok(done.rows_affected() == 1);
        }
        // The script runs in a task of its own: were this request dropped part-way, the
        // connection's thread would stop at the next statement and leave the transaction
        // open on a pooled connection. The task runs it to the end.
        let writer = self.writer().clone();
        let (tenant_id, old_hash) = (tenant_id.to_owned(), old_hash.to_owned());
        let (new, access) = (new.clone(), access.clone());
        let written = tokio::spawn(async move {
            let mut conn = writer.acquire().await?;
            let query = bind(
                SQLITE.as_str(),
                &tenant_id,
                &old_hash,
                &new,
                &access,
                now,
                allow_reuse_since,
            );
            match query.fetch_all(&mut *conn).await {
                Ok(rows) => match rows.first() {
                    Some(row) => row.try_get::<i64, _>("rotated"),
                    None => Err(sqlx::Error::RowNotFound),
                },
                Err(e) => {
                    // A statement failed after `BEGIN`: undo what the script wrote. This
                    // fails harmlessly when `BEGIN` itself was what failed.
                    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                    Err(e)
                }
            }
        })
        .await
        .map_err(|e| StoreError::Backend(Box::new(e)))?
        .map_err(backend_err)?;
        // Each insert runs only when the statement before it wrote its row, so the access
        // record (the last) was written exactly when the old token was spent.
        Ok(written == 1)
    }

    async fn touch_refresh_token(
        &self,
        tenant_id: &str,
        token_hash: &str,
        idle_expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE refresh_tokens SET idle_expires_at = $3 \
             WHERE tenant_id = $1 AND token_hash = $2",
        )
        .bind(tenant_id)
        .bind(token_hash)
        .bind(idle_expires_at)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn record_access_token(
        &self,
        tenant_id: &str,
        jti: &str,
        grant_id: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let record = AccessRecord {
            jti: jti.to_owned(),
            grant_id: grant_id.to_owned(),
            expires_at,
        };
        insert_access_record(self.writer(), tenant_id, &record).await
    }

    async fn find_access_token_grant(
        &self,
        tenant_id: &str,
        jti: &str,
    ) -> Result<Option<Grant>, StoreError> {
        sqlx::query(
            "SELECT g.* FROM access_tokens a JOIN grants g \
             ON g.tenant_id = a.tenant_id AND g.id = a.grant_id \
             WHERE a.tenant_id = $1 AND a.jti = $2",
        )
        .bind(tenant_id)
        .bind(jti)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?
        .map(|r| rows::grant(&r))
        .transpose()
    }
}

pub(crate) async fn insert_refresh_token<'e, E>(
    executor: E,
    t: &RefreshToken,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    bind_refresh_token(
        sqlx::query(
            "INSERT INTO refresh_tokens (tenant_id, token_hash, id, grant_id, client_id, \
             user_id, scope, audience, auth_time, created_at, expires_at, idle_expires_at, \
             used_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, NULL)",
        ),
        t,
    )
    .execute(executor)
    .await
    .map(|_| ())
    .map_err(backend_err)
}

pub(crate) async fn insert_access_record<'e, E>(
    executor: E,
    tenant_id: &str,
    record: &AccessRecord,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO access_tokens (tenant_id, jti, grant_id, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant_id)
    .bind(&record.jti)
    .bind(&record.grant_id)
    .bind(record.expires_at)
    .execute(executor)
    .await
    .map(|_| ())
    .map_err(backend_err)
}

/// A refresh token and its grant (`None` when the grant is gone), in one statement.
pub(crate) async fn read_refresh_token_and_grant<'e, E>(
    executor: E,
    tenant_id: &str,
    token_hash: &str,
) -> Result<Option<(RefreshToken, Option<Grant>)>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let Some(row) = sqlx::query(
        "SELECT rt.*, g.id AS g_id, g.client_id AS g_client_id, g.user_id AS g_user_id, \
         g.session_id AS g_session_id, g.created_at AS g_created_at, \
         g.revoked_at AS g_revoked_at \
         FROM refresh_tokens rt LEFT JOIN grants g \
         ON g.tenant_id = rt.tenant_id AND g.id = rt.grant_id \
         WHERE rt.tenant_id = $1 AND rt.token_hash = $2",
    )
    .bind(tenant_id)
    .bind(token_hash)
    .fetch_optional(executor)
    .await
    .map_err(backend_err)?
    else {
        return Ok(None);
    };
    let token = rows::refresh_token(&row)?;
    let grant_id: Option<String> = row.try_get("g_id").map_err(backend_err)?;
    let grant = match grant_id {
        None => None,
        Some(id) => Some(Grant {
            tenant_id: token.tenant_id.clone(),
            id,
            client_id: row.try_get("g_client_id").map_err(backend_err)?,
            user_id: row.try_get("g_user_id").map_err(backend_err)?,
            session_id: row.try_get("g_session_id").map_err(backend_err)?,
            created_at: row.try_get("g_created_at").map_err(backend_err)?,
            revoked_at: row.try_get("g_revoked_at").map_err(backend_err)?,
        }),
    };
    Ok(Some((token, grant)))
}

/// Binds a new refresh token's twelve stored values, in the column order of
/// `INSERT INTO refresh_tokens` (tenant, hash, id, grant, client, user, scope, audience,
/// auth time, creation, expiry, idle expiry).
pub(crate) fn bind_refresh_token<'q>(
    query: rows::AnyQuery<'q>,
    t: &'q RefreshToken,
) -> rows::AnyQuery<'q> {
    query
        .bind(&t.tenant_id)
        .bind(&t.token_hash)
        .bind(&t.id)
        .bind(&t.grant_id)
        .bind(&t.client_id)
        .bind(&t.user_id)
        .bind(to_json(&t.scope))
        .bind(t.audience.as_deref())
        .bind(t.auth_time)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.idle_expires_at)
}
