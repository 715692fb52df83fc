//! Tickets: the single-use links sent by email.

use super::StoreError;
use crate::model::{Ticket, TicketKind, Timestamp};
use async_trait::async_trait;

/// Tickets: the single-use links sent by email.
#[async_trait]
pub trait TicketStore: Send + Sync {
    async fn create_ticket(&self, ticket: &Ticket) -> Result<(), StoreError>;

    /// A live, unused ticket of `kind`.
    async fn find_ticket(
        &self,
        tenant_id: &str,
        ticket_hash: &str,
        kind: TicketKind,
        now: Timestamp,
    ) -> Result<Option<Ticket>, StoreError>;

    /// Spends a live ticket of `kind` in one statement; `None` if it is unknown, expired or
    /// already spent.
    async fn consume_ticket(
        &self,
        tenant_id: &str,
        ticket_hash: &str,
        kind: TicketKind,
        now: Timestamp,
    ) -> Result<Option<Ticket>, StoreError>;
}
