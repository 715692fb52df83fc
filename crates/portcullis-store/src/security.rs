//! Account security tables: settings documents, throttles, brute-force counters, tickets,
//! password history and log stream checkpoints.

use crate::rows::{backend_err, to_json};
use portcullis_core::model::{
    LoginBlock, LoginFailures, Ticket, TicketData, TicketKind, Timestamp,
};
use portcullis_core::store::StoreError;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

pub(crate) async fn find_setting(
    pool: &AnyPool,
    tenant_id: &str,
    name: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    let row = sqlx::query("SELECT value FROM tenant_settings WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(pool)
        .await
        .map_err(backend_err)?;
    row.map(|r| {
        let text: String = r.try_get("value").map_err(backend_err)?;
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("setting {name}: {e}")))
    })
    .transpose()
}

pub(crate) async fn save_setting<'e, E>(
    executor: E,
    tenant_id: &str,
    name: &str,
    value: &serde_json::Value,
    now: Timestamp,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO tenant_settings (tenant_id, name, value, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET value = $3, updated_at = $4",
    )
    .bind(tenant_id)
    .bind(name)
    .bind(to_json(value))
    .bind(now)
    .execute(executor)
    .await
    .map(|_| ())
    .map_err(backend_err)
}

pub(crate) async fn throttle_hit(
    pool: &AnyPool,
    tenant_id: &str,
    bucket: &str,
    now_ms: i64,
    interval_ms: i64,
    window_ms: i64,
) -> Result<(bool, i64), StoreError> {
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
    .fetch_optional(pool)
    .await
    .map_err(backend_err)?;
    if let Some(row) = row {
        return Ok((true, row.try_get("tat_ms").map_err(backend_err)?));
    }
    let tat = throttle_peek(pool, tenant_id, bucket)
        .await?
        .unwrap_or(now_ms);
    Ok((false, tat))
}

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

pub(crate) async fn count_login_attempt(
    pool: &AnyPool,
    tenant_id: &str,
    user_id: &str,
    ip: &str,
    now: Timestamp,
    max_attempts: i64,
    enforce: bool,
) -> Result<LoginFailures, StoreError> {
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
    .fetch_one(pool)
    .await
    .map_err(backend_err)?;
    let failures: i64 = row.try_get("failures").map_err(backend_err)?;
    let blocked_at: Option<i64> = row.try_get("blocked_at").map_err(backend_err)?;
    Ok(LoginFailures {
        failures,
        blocked: blocked_at.is_some(),
    })
}

pub(crate) async fn claim_block_notice(
    pool: &AnyPool,
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
    .execute(pool)
    .await
    .map_err(backend_err)?;
    Ok(result.rows_affected() == 1)
}

pub(crate) async fn throttle_refund(
    pool: &AnyPool,
    tenant_id: &str,
    bucket: &str,
    interval_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE throttles SET tat_ms = tat_ms - $3 WHERE tenant_id = $1 AND bucket = $2")
        .bind(tenant_id)
        .bind(bucket)
        .bind(interval_ms)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(backend_err)
}

pub(crate) async fn mark_email_verified(
    pool: &AnyPool,
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
    .execute(pool)
    .await
    .map_err(backend_err)?;
    Ok(result.rows_affected() == 1)
}

pub(crate) async fn login_blocked(
    pool: &AnyPool,
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
    .fetch_optional(pool)
    .await
    .map_err(backend_err)?
    .is_some())
}

pub(crate) async fn clear_login_failures(
    pool: &AnyPool,
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
    .execute(pool)
    .await
    .map(|_| ())
    .map_err(backend_err)
}

pub(crate) async fn list_login_blocks(
    pool: &AnyPool,
    tenant_id: &str,
    user_id: &str,
) -> Result<Vec<LoginBlock>, StoreError> {
    sqlx::query(
        "SELECT ip, blocked_at FROM login_failures WHERE tenant_id = $1 AND user_id = $2 \
         AND blocked_at IS NOT NULL ORDER BY blocked_at, ip",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_all(pool)
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

pub(crate) async fn release_login_blocks(
    pool: &AnyPool,
    tenant_id: &str,
    user_id: &str,
    ip: Option<&str>,
) -> Result<u64, StoreError> {
    let blocked = match ip {
        Some(ip) => {
            sqlx::query(
                "DELETE FROM login_failures WHERE tenant_id = $1 AND user_id = $2 AND ip = $3 \
             AND blocked_at IS NOT NULL",
            )
            .bind(tenant_id)
            .bind(user_id)
            .bind(ip)
            .execute(pool)
            .await
        }
        None => {
            sqlx::query(
                "DELETE FROM login_failures WHERE tenant_id = $1 AND user_id = $2 \
             AND blocked_at IS NOT NULL",
            )
            .bind(tenant_id)
            .bind(user_id)
            .execute(pool)
            .await
        }
    }
    .map_err(backend_err)?
    .rows_affected();
    Ok(blocked)
}

fn ticket(row: &AnyRow) -> Result<Ticket, StoreError> {
    let kind: String = row.try_get("kind").map_err(backend_err)?;
    let data: String = row.try_get("data").map_err(backend_err)?;
    Ok(Ticket {
        tenant_id: row.try_get("tenant_id").map_err(backend_err)?,
        ticket_hash: row.try_get("ticket_hash").map_err(backend_err)?,
        kind: TicketKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("ticket kind {kind:?}")))?,
        user_id: row.try_get("user_id").map_err(backend_err)?,
        data: serde_json::from_str::<TicketData>(&data)
            .map_err(|e| StoreError::Corrupt(format!("ticket data: {e}")))?,
        created_at: row.try_get("created_at").map_err(backend_err)?,
        expires_at: row.try_get("expires_at").map_err(backend_err)?,
    })
}

pub(crate) async fn create_ticket(pool: &AnyPool, t: &Ticket) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tickets (tenant_id, ticket_hash, kind, user_id, data, created_at, expires_at, \
         used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
    )
    .bind(&t.tenant_id)
    .bind(&t.ticket_hash)
    .bind(t.kind.as_str())
    .bind(&t.user_id)
    .bind(to_json(&t.data))
    .bind(t.created_at)
    .bind(t.expires_at)
    .execute(pool)
    .await
    .map(|_| ())
    .map_err(backend_err)
}

pub(crate) async fn find_ticket(
    pool: &AnyPool,
    tenant_id: &str,
    ticket_hash: &str,
    kind: TicketKind,
    now: Timestamp,
) -> Result<Option<Ticket>, StoreError> {
    sqlx::query(
        "SELECT * FROM tickets WHERE tenant_id = $1 AND ticket_hash = $2 AND kind = $3 \
         AND used_at IS NULL AND expires_at > $4",
    )
    .bind(tenant_id)
    .bind(ticket_hash)
    .bind(kind.as_str())
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(backend_err)?
    .as_ref()
    .map(ticket)
    .transpose()
}

pub(crate) async fn consume_ticket(
    pool: &AnyPool,
    tenant_id: &str,
    ticket_hash: &str,
    kind: TicketKind,
    now: Timestamp,
) -> Result<Option<Ticket>, StoreError> {
    sqlx::query(
        "UPDATE tickets SET used_at = $4 WHERE tenant_id = $1 AND ticket_hash = $2 AND kind = $3 \
         AND used_at IS NULL AND expires_at > $4 \
         RETURNING tenant_id, ticket_hash, kind, user_id, data, created_at, expires_at",
    )
    .bind(tenant_id)
    .bind(ticket_hash)
    .bind(kind.as_str())
    .bind(now)
    .fetch_optional(pool)
    .await
    .map_err(backend_err)?
    .as_ref()
    .map(ticket)
    .transpose()
}

pub(crate) async fn password_history(
    pool: &AnyPool,
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
    .fetch_all(pool)
    .await
    .map_err(backend_err)?
    .iter()
    .map(|r| r.try_get("password_hash").map_err(backend_err))
    .collect()
}

pub(crate) async fn change_password(
    pool: &AnyPool,
    tenant_id: &str,
    user_id: &str,
    new_hash: &str,
    keep: usize,
    verify_email: bool,
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut tx = crate::rows::begin_write(pool).await?;
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

pub(crate) async fn log_stream_checkpoint(
    pool: &AnyPool,
    tenant_id: &str,
    stream_id: &str,
) -> Result<Option<String>, StoreError> {
    sqlx::query(
        "SELECT last_log_id FROM log_stream_checkpoints WHERE tenant_id = $1 AND stream_id = $2",
    )
    .bind(tenant_id)
    .bind(stream_id)
    .fetch_optional(pool)
    .await
    .map_err(backend_err)?
    .map(|r| r.try_get("last_log_id").map_err(backend_err))
    .transpose()
}

pub(crate) async fn advance_log_stream(
    pool: &AnyPool,
    tenant_id: &str,
    stream_id: &str,
    previous: Option<&str>,
    last: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let result = match previous {
        None => sqlx::query(
            "INSERT INTO log_stream_checkpoints (tenant_id, stream_id, last_log_id, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, stream_id) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(stream_id)
        .bind(last)
        .bind(now)
        .execute(pool)
        .await,
        Some(previous) => {
            sqlx::query(
                "UPDATE log_stream_checkpoints SET last_log_id = $3, updated_at = $4 \
             WHERE tenant_id = $1 AND stream_id = $2 AND last_log_id = $5",
            )
            .bind(tenant_id)
            .bind(stream_id)
            .bind(last)
            .bind(now)
            .bind(previous)
            .execute(pool)
            .await
        }
    };
    Ok(result.map_err(backend_err)?.rows_affected() == 1)
}
