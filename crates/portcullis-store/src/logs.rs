//! The audit trail and the log streams' checkpoints.

use crate::rows::{backend_err, to_json};
use crate::sql::SqlStore;
use async_trait::async_trait;
use portcullis_core::audit::LogEvent;
use portcullis_core::model::Timestamp;
use portcullis_core::store::{AuditStore, Page, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;

#[async_trait]
impl AuditStore for SqlStore {
    async fn insert_log_event(
        &self,
        event: &portcullis_core::audit::LogEvent,
    ) -> Result<(), StoreError> {
        insert_rows(self.writer(), std::slice::from_ref(event), self.is_sqlite()).await
    }

    async fn insert_log_events(
        &self,
        events: &[portcullis_core::audit::LogEvent],
    ) -> Result<(), StoreError> {
        let sqlite = self.is_sqlite();
        let mut tx = self.begin_write().await?;
        for chunk in events.chunks(ROWS_PER_INSERT) {
            insert_rows(&mut *tx, chunk, sqlite).await?;
        }
        tx.commit().await.map_err(backend_err)
    }

    async fn find_log_event(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<portcullis_core::audit::LogEvent>, StoreError> {
        sqlx::query("SELECT * FROM log_events WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_err)?
            .map(|r| event(&r))
            .transpose()
    }

    async fn search_log_events(
        &self,
        tenant_id: &str,
        filter: &portcullis_core::audit::LogFilter,
    ) -> Result<Page<LogEvent>, StoreError> {
        // Each optional filter is written so NULL disables it; every value is bound.
        let condition = "tenant_id = $1 AND ($2 IS NULL OR type = $2) AND ($3 IS NULL OR user_id = $3) \
                      AND ($4 IS NULL OR client_id = $4)";
        let order = if filter.ascending { "ASC" } else { "DESC" };
        let select = format!(
            "SELECT * FROM log_events WHERE {condition} ORDER BY id {order} LIMIT $5 OFFSET $6"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(select))
            .bind(tenant_id)
            .bind(filter.kind.as_deref())
            .bind(filter.user_id.as_deref())
            .bind(filter.client_id.as_deref())
            .bind(filter.limit)
            .bind(filter.offset)
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?;
        let events = rows.iter().map(event).collect::<Result<Vec<_>, _>>()?;
        let total: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM log_events WHERE {condition}"
        )))
        .bind(tenant_id)
        .bind(filter.kind.as_deref())
        .bind(filter.user_id.as_deref())
        .bind(filter.client_id.as_deref())
        .fetch_one(&self.pool)
        .await
        .map_err(backend_err)?
        .try_get("n")
        .map_err(backend_err)?;
        Ok(Page {
            items: events,
            total,
        })
    }

    async fn purge_log_events(&self, tenant_id: &str, before_ms: i64) -> Result<u64, StoreError> {
        sqlx::query("DELETE FROM log_events WHERE tenant_id = $1 AND date < $2")
            .bind(tenant_id)
            .bind(before_ms)
            .execute(self.writer())
            .await
            .map(|r| r.rows_affected())
            .map_err(backend_err)
    }

    async fn log_stream_checkpoint(
        &self,
        tenant_id: &str,
        stream_id: &str,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query(
            "SELECT last_log_id FROM log_stream_checkpoints WHERE tenant_id = $1 AND stream_id = $2",
        )
        .bind(tenant_id)
        .bind(stream_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?
        .map(|r| r.try_get("last_log_id").map_err(backend_err))
        .transpose()
    }

    async fn advance_log_stream(
        &self,
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
            .execute(self.writer())
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
                .execute(self.writer())
                .await
            }
        };
        Ok(result.map_err(backend_err)?.rows_affected() == 1)
    }

    async fn log_events_after(
        &self,
        tenant_id: &str,
        after_id: &str,
        before_id: &str,
        limit: i64,
    ) -> Result<Vec<portcullis_core::audit::LogEvent>, StoreError> {
        sqlx::query(
            "SELECT * FROM log_events WHERE tenant_id = $1 AND id > $2 AND id < $3 \
             ORDER BY id ASC LIMIT $4",
        )
        .bind(tenant_id)
        .bind(after_id)
        .bind(before_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(backend_err)?
        .iter()
        .map(event)
        .collect()
    }
}

fn event(row: &AnyRow) -> Result<LogEvent, StoreError> {
    let get = |c: &str| row.try_get::<Option<String>, _>(c).map_err(backend_err);
    let details: String = row.try_get("details").map_err(backend_err)?;
    Ok(LogEvent {
        tenant_id: row.try_get("tenant_id").map_err(backend_err)?,
        id: row.try_get("id").map_err(backend_err)?,
        date: row.try_get("date").map_err(backend_err)?,
        kind: row.try_get("type").map_err(backend_err)?,
        description: row.try_get("description").map_err(backend_err)?,
        client_id: get("client_id")?,
        client_name: get("client_name")?,
        user_id: get("user_id")?,
        user_name: get("user_name")?,
        ip: get("ip")?,
        user_agent: get("user_agent")?,
        details: serde_json::from_str(&details)
            .map_err(|e| StoreError::Corrupt(format!("log details: {e}")))?,
    })
}

/// Rows per `INSERT` statement of a batch (12 parameters each, well under both backends'
/// parameter limits).
const ROWS_PER_INSERT: usize = 64;

/// One `INSERT` of every event of `chunk`.
async fn insert_rows<'e, E>(executor: E, chunk: &[LogEvent], sqlite: bool) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = format!(
        "INSERT INTO log_events (tenant_id, id, date, type, description, client_id, \
         client_name, user_id, user_name, ip, user_agent, details) VALUES {}",
        crate::rows::values_list(chunk.len(), 12, sqlite)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for e in chunk {
        query = query
            .bind(&e.tenant_id)
            .bind(&e.id)
            .bind(e.date)
            .bind(&e.kind)
            .bind(&e.description)
            .bind(e.client_id.as_deref())
            .bind(e.client_name.as_deref())
            .bind(e.user_id.as_deref())
            .bind(e.user_name.as_deref())
            .bind(e.ip.as_deref())
            .bind(e.user_agent.as_deref())
            .bind(to_json(&e.details));
    }
    query
        .execute(executor)
        .await
        .map(|_| ())
        .map_err(backend_err)
}
