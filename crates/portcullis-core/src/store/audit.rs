//! The audit trail and the checkpoints of the log streams reading it.

use super::{Page, StoreError};
use crate::model::Timestamp;
use async_trait::async_trait;

/// The audit trail and the checkpoints of the log streams reading it.
#[async_trait]
pub trait AuditStore: Send + Sync {
    async fn insert_log_event(&self, event: &crate::audit::LogEvent) -> Result<(), StoreError>;

    /// Stores several events in one transaction.
    async fn insert_log_events(&self, events: &[crate::audit::LogEvent]) -> Result<(), StoreError>;

    async fn find_log_event(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<crate::audit::LogEvent>, StoreError>;

    /// A page of events, newest first unless `ascending`, and how many match.
    async fn search_log_events(
        &self,
        tenant_id: &str,
        filter: &crate::audit::LogFilter,
    ) -> Result<Page<crate::audit::LogEvent>, StoreError>;

    /// Deletes events dated before `before_ms` (unix milliseconds).
    async fn purge_log_events(&self, tenant_id: &str, before_ms: i64) -> Result<u64, StoreError>;

    async fn log_stream_checkpoint(
        &self,
        tenant_id: &str,
        stream_id: &str,
    ) -> Result<Option<String>, StoreError>;

    /// Moves a stream's checkpoint from `previous` to `last`; `false` if another replica
    /// moved it first.
    async fn advance_log_stream(
        &self,
        tenant_id: &str,
        stream_id: &str,
        previous: Option<&str>,
        last: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Events with an id after `after_id` and before `before_id`, oldest first.
    async fn log_events_after(
        &self,
        tenant_id: &str,
        after_id: &str,
        before_id: &str,
        limit: i64,
    ) -> Result<Vec<crate::audit::LogEvent>, StoreError>;
}
