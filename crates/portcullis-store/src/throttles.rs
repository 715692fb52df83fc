//! Rate-limit buckets (GCRA, in unix milliseconds) and brute-force counters.

use crate::rows::backend_err;
use crate::sql::SqlStore;
use async_trait::async_trait;
use portcullis_core::model::{LoginBlock, LoginFailures, Timestamp};
use portcullis_core::store::{StoreError, ThrottleHit, ThrottleStore};
use sqlx::{AnyPool, Row};

pub(crate) async fn throttle_peek(
    pool: &AnyPool,
    tenant_id: &str,
    bucket: &str,
) -> Result<Option<i64>, StoreError> {
    sqlx::query("SELECT tat_ms FROM throttles WHERE tenant_id = $1 AND bucket = $2")
        .bind(tenant_id)
        .bind(bucket)
        .fetch_optional(pool)
        .await
        .map_err(backend_err)?
        .map(|r| r.try_get("tat_ms").map_err(backend_err))
        .transpose()
}

#[async_trait]
impl ThrottleStore for SqlStore {
    async fn throttle_hit(
        &self,
        tenant_id: &str,
        bucket: &str,
        now_ms: i64,
        interval_ms: i64,
        window_ms: i64,
    ) -> Result<ThrottleHit, StoreError> {
        let row = sqlx::query(
            "INSERT INTO throttles (tenant_id, bucket, tat_ms) VALUES ($1, $2, $3 + $4) \
             ON CONFLICT (tenant_id, bucket) DO UPDATE SET tat_ms = \
             (CASE WHEN throttles.tat_ms > $3 THEN throttles.tat_ms ELSE $3 END) + $4 \
             WHERE (CASE WHEN throttles.tat_ms > $3 THEN throttles.tat_ms ELSE $3 END) + $4 - $3 <= $5 \
             RETURNING tat_ms",
        )
        .bind(tenant_id)
        .bind(bucket)
        .bind(now_ms)
        .bind(interval_ms)
        .bind(window_ms)
        .fetch_optional(self.writer())
        .await
        .map_err(backend_err)?;
        if let Some(row) = row {
            return Ok(ThrottleHit {
                fitted: true,
                tat_ms: row.try_get("tat_ms").map_err(backend_err)?,
            });
        }
        let tat = throttle_peek(self.writer(), tenant_id, bucket)
            .await?
            .unwrap_or(now_ms);
        Ok(ThrottleHit {
            fitted: false,
            tat_ms: tat,
        })
    }

    async fn throttle_peek(
        &self,
        tenant_id: &str,
        bucket: &str,
    ) -> Result<Option<i64>, StoreError> {
        crate::throttles::throttle_peek(&self.pool, tenant_id, bucket).await
    }

    async fn throttle_refund(
        &self,
        tenant_id: &str,
        bucket: &str,
        interval_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE throttles SET tat_ms = tat_ms - $3 WHERE tenant_id = $1 AND bucket = $2",
        )
        .bind(tenant_id)
        .bind(bucket)
        .bind(interval_ms)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn count_login_attempt(
        &self,
        tenant_id: &str,
        user_id: &str,
        ip: &str,
        now: Timestamp,
        max_attempts: i64,
        enforce: bool,
    ) -> Result<portcullis_core::model::LoginFailures, StoreError> {
        let row = sqlx::query(
            "INSERT INTO login_failures (tenant_id, user_id, ip, failures, last_failure_at, blocked_at, \
             notified_at) VALUES ($1, $2, $3, 1, $4, CASE WHEN $6 = 1 AND 1 > $5 THEN $4 ELSE NULL END, NULL) \
             ON CONFLICT (tenant_id, user_id, ip) DO UPDATE SET \
             failures = login_failures.failures + 1, last_failure_at = $4, \
             blocked_at = CASE WHEN login_failures.blocked_at IS NOT NULL THEN login_failures.blocked_at \
             WHEN $6 = 1 AND login_failures.failures + 1 > $5 THEN $4 ELSE NULL END \
             RETURNING failures, blocked_at",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(ip)
        .bind(now)
        .bind(max_attempts)
        .bind(i64::from(enforce))
        .fetch_one(self.writer())
        .await
        .map_err(backend_err)?;
        let failures: i64 = row.try_get("failures").map_err(backend_err)?;
        let blocked_at: Option<i64> = row.try_get("blocked_at").map_err(backend_err)?;
        Ok(LoginFailures {
            failures,
            blocked: blocked_at.is_some(),
        })
    }

    async fn claim_block_notice(
        &self,
        tenant_id: &str,
        user_id: &str,
        ip: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE login_failures SET notified_at = $4 WHERE tenant_id = $1 AND user_id = $2 \
             AND ip = $3 AND notified_at IS NULL",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(ip)
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(backend_err)?;
        Ok(result.rows_affected() == 1)
    }

    async fn login_blocked(
        &self,
        tenant_id: &str,
        user_id: &str,
        ip: &str,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "SELECT 1 FROM login_failures WHERE tenant_id = $1 AND user_id = $2 AND ip = $3 \
             AND blocked_at IS NOT NULL",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(ip)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?
        .is_some())
    }

    async fn clear_login_failures(
        &self,
        tenant_id: &str,
        user_id: &str,
        ip: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM login_failures WHERE tenant_id = $1 AND user_id = $2 AND ip = $3 \
             AND blocked_at IS NULL",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(ip)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn list_login_blocks(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Vec<portcullis_core::model::LoginBlock>, StoreError> {
        sqlx::query(
            "SELECT ip, blocked_at FROM login_failures WHERE tenant_id = $1 AND user_id = $2 \
             AND blocked_at IS NOT NULL ORDER BY blocked_at, ip",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend_err)?
        .iter()
        .map(|r| {
            Ok(LoginBlock {
                ip: r.try_get("ip").map_err(backend_err)?,
                blocked_at: r.try_get("blocked_at").map_err(backend_err)?,
            })
        })
        .collect()
    }

    async fn release_login_blocks(
        &self,
        tenant_id: &str,
        user_id: &str,
        ip: Option<&str>,
    ) -> Result<u64, StoreError> {
        let blocked =
            match ip {
                Some(ip) => sqlx::query(
                    "DELETE FROM login_failures WHERE tenant_id = $1 AND user_id = $2 AND ip = $3 \
                 AND blocked_at IS NOT NULL",
                )
                .bind(tenant_id)
                .bind(user_id)
                .bind(ip)
                .execute(self.writer())
                .await,
                None => {
                    sqlx::query(
                        "DELETE FROM login_failures WHERE tenant_id = $1 AND user_id = $2 \
                 AND blocked_at IS NOT NULL",
                    )
                    .bind(tenant_id)
                    .bind(user_id)
                    .execute(self.writer())
                    .await
                }
            }
            .map_err(backend_err)?
            .rows_affected();
        Ok(blocked)
    }
}
