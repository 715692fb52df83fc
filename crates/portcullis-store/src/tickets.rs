//! Tickets: the single-use links sent by email.

use crate::rows::{backend_err, to_json};
use crate::sql::SqlStore;
use async_trait::async_trait;
use portcullis_core::model::{Ticket, TicketData, TicketKind, Timestamp};
use portcullis_core::store::{StoreError, TicketStore};
use sqlx::Row;
use sqlx::any::AnyRow;

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

#[async_trait]
impl TicketStore for SqlStore {
    async fn create_ticket(
        &self,
        ticket: &portcullis_core::model::Ticket,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tickets (tenant_id, ticket_hash, kind, user_id, data, created_at, expires_at, \
             used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(&ticket.tenant_id)
        .bind(&ticket.ticket_hash)
        .bind(ticket.kind.as_str())
        .bind(&ticket.user_id)
        .bind(to_json(&ticket.data))
        .bind(ticket.created_at)
        .bind(ticket.expires_at)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn find_ticket(
        &self,
        tenant_id: &str,
        ticket_hash: &str,
        kind: portcullis_core::model::TicketKind,
        now: Timestamp,
    ) -> Result<Option<portcullis_core::model::Ticket>, StoreError> {
        sqlx::query(
            "SELECT * FROM tickets WHERE tenant_id = $1 AND ticket_hash = $2 AND kind = $3 \
             AND used_at IS NULL AND expires_at > $4",
        )
        .bind(tenant_id)
        .bind(ticket_hash)
        .bind(kind.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?
        .as_ref()
        .map(ticket)
        .transpose()
    }

    async fn consume_ticket(
        &self,
        tenant_id: &str,
        ticket_hash: &str,
        kind: portcullis_core::model::TicketKind,
        now: Timestamp,
    ) -> Result<Option<portcullis_core::model::Ticket>, StoreError> {
        sqlx::query(
            "UPDATE tickets SET used_at = $4 WHERE tenant_id = $1 AND ticket_hash = $2 AND kind = $3 \
             AND used_at IS NULL AND expires_at > $4 \
             RETURNING tenant_id, ticket_hash, kind, user_id, data, created_at, expires_at",
        )
        .bind(tenant_id)
        .bind(ticket_hash)
        .bind(kind.as_str())
        .bind(now)
        .fetch_optional(self.writer())
        .await
        .map_err(backend_err)?
        .as_ref()
        .map(ticket)
        .transpose()
    }
}
