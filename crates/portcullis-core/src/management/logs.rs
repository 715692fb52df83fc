//! `GET /api/v2/logs` and `/api/v2/logs/{id}`: the tenant's audit events.

use super::{Granted, ManagementError, ReadLogs, Window};
use crate::audit::{LogEvent, LogFilter};
use crate::service::Portcullis;
use crate::store::{AuditStore, Page};

/// Reads `q` terms `type:"s"`, `user_id:"…"` and `client_id:"…"` joined by `AND` or spaces.
fn filters(q: &str, filter: &mut LogFilter) -> Result<(), ManagementError> {
    for token in q.split_whitespace().filter(|t| *t != "AND") {
        let (field, value) = token.split_once(':').ok_or_else(|| {
            ManagementError::invalid_query(format!("expected field:value in q, got {token:?}"))
        })?;
        let value = value.trim_matches('"').to_owned();
        if value.is_empty() || value.contains('*') {
            return Err(ManagementError::invalid_query(format!(
                "{field} needs an exact value"
            )));
        }
        match field {
            "type" => filter.kind = Some(value),
            "user_id" => filter.user_id = Some(value),
            "client_id" => filter.client_id = Some(value),
            other => {
                return Err(ManagementError::invalid_query(format!(
                    "searching logs by {other:?} is not supported"
                )));
            }
        }
    }
    Ok(())
}

/// The audit trail as the Management API searches it: the audit store, and this
/// process's queue of events not yet written (flushed before each read).
pub struct AuditLog<'a> {
    audit: &'a dyn AuditStore,
    queue: Option<&'a crate::audit::AuditQueue>,
    tenant_id: &'a str,
}

impl Portcullis {
    /// The audit trail, for reading.
    #[must_use]
    pub fn audit_log(&self) -> AuditLog<'_> {
        AuditLog {
            audit: self.store.as_ref(),
            queue: self.audit_queue.as_ref(),
            tenant_id: self.tenant_id(),
        }
    }
}

impl AuditLog<'_> {
    /// Events of this process still queued for the writer are read too.
    async fn flush(&self) {
        if let Some(queue) = self.queue {
            queue.flush().await;
        }
    }

    /// `GET /api/v2/logs`: the events matching `q` (Auth0's search terms), newest first
    /// unless `sort` is `date:1`.
    pub async fn list_logs(
        &self,
        _: Granted<ReadLogs>,
        q: Option<&str>,
        sort: Option<&str>,
        window: Window,
    ) -> Result<Page<LogEvent>, ManagementError> {
        let ascending = match sort {
            None | Some("" | "date:-1") => false,
            Some("date:1") => true,
            Some(other) => {
                return Err(ManagementError::invalid_query(format!(
                    "logs sort by date:1 or date:-1, not {other:?}"
                )));
            }
        };
        let mut filter = LogFilter {
            offset: window.start,
            limit: window.limit,
            ascending,
            ..LogFilter::default()
        };
        filters(q.unwrap_or_default(), &mut filter)?;
        self.flush().await;
        Ok(self
            .audit
            .search_log_events(self.tenant_id, &filter)
            .await?)
    }

    /// `GET /api/v2/logs/{id}`.
    pub async fn get_log(
        &self,
        _: Granted<ReadLogs>,
        id: &str,
    ) -> Result<LogEvent, ManagementError> {
        self.flush().await;
        self.audit
            .find_log_event(self.tenant_id, id)
            .await?
            .ok_or_else(|| {
                ManagementError::new(
                    super::Failure::NotFound,
                    "inexistent_log",
                    "The log event does not exist",
                )
            })
    }
}

impl Portcullis {
    /// Records a Management API change (`sapi`) or a refused one (`fapi`).
    pub async fn audit_management_call(
        &self,
        client_id: Option<&str>,
        method: &str,
        path: &str,
        status: u16,
    ) {
        let (kind, description) = if status < 400 {
            ("sapi", "Success API Operation")
        } else {
            ("fapi", "Failed API Operation")
        };
        let details = serde_json::json!({ "request": { "method": method, "path": path }, "response": { "statusCode": status } });
        let fields = crate::audit::EventFields {
            client_id,
            details: Some(details),
            ..Default::default()
        };
        self.audit(kind, description, fields).await;
    }
}
