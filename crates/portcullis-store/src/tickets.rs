//! Tickets: the single-use links sent by email.

use crate::rows::{backend_err, to_json};
use crate::sql::SqlStore;
use async_trait::async_trait;
use portcullis_core::model::{Ticket, TicketData, TicketKind, Timestamp};
use portcullis_core::store::{StoreError, TicketStore};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

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

#[async_trait]
impl TicketStore for SqlStore {
    async fn create_ticket(
        &self,
        ticket: &portcullis_core::model::Ticket,
    ) -> Result<(), StoreError> {
        crate::tickets::create_ticket(self.writer(), ticket).await
    }

    async fn find_ticket(
        &self,
        tenant_id: &str,
        ticket_hash: &str,
        kind: portcullis_core::model::TicketKind,
        now: Timestamp,
    ) -> Result<Option<portcullis_core::model::Ticket>, StoreError> {
        crate::tickets::find_ticket(&self.pool, tenant_id, ticket_hash, kind, now).await
    }

    async fn consume_ticket(
        &self,
        tenant_id: &str,
        ticket_hash: &str,
        kind: portcullis_core::model::TicketKind,
        now: Timestamp,
    ) -> Result<Option<portcullis_core::model::Ticket>, StoreError> {
        crate::tickets::consume_ticket(self.writer(), tenant_id, ticket_hash, kind, now).await
    }
}
