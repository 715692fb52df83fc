//! The audit trail: Auth0-style log events (`s`, `fp`, `fu`, `slo`, `seacft`, `seccft`,
//! `sertft`, `sapi`, …) with the client, the user, and the request's IP and user agent.
//!
//! The HTTP layer puts the request's details in a task-local [`RequestInfo`] so services
//! record them without threading them through every call. Recording never fails a request:
//! an event that cannot be written is reported in the log.
//!
//! Events go through one writer that stores them in batches. An event that records a change
//! or a security decision ([`durable`]) is in the database before its request is answered:
//! the request waits for the batch that holds it, and such a batch is written at once (a
//! group commit). The others may ride a batch written up to 20 ms later.

use crate::model::Timestamp;
use crate::service::Portcullis;
use serde_json::{Value, json};

/// Who made the request, as the HTTP layer saw it.
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

tokio::task_local! {
    /// The current request's details, set by the HTTP layer around each request.
    pub static REQUEST: RequestInfo;
}

/// A stored log event.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEvent {
    pub tenant_id: String,
    pub id: String,
    /// Unix milliseconds.
    pub date: i64,
    pub kind: String,
    pub description: String,
    pub client_id: Option<String>,
    pub client_name: Option<String>,
    pub user_id: Option<String>,
    pub user_name: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: Value,
}

/// Filters of `GET /api/v2/logs`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub kind: Option<String>,
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    pub offset: i64,
    pub limit: i64,
    pub ascending: bool,
}

/// Optional parts of an event.
#[derive(Debug, Default)]
pub struct EventFields<'a> {
    pub client_id: Option<&'a str>,
    pub client_name: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub user_name: Option<&'a str>,
    pub details: Option<Value>,
}

impl LogEvent {
    /// The event as Auth0's Management API shows it.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let date =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.date) * 1_000_000)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                });
        let mut v = json!({
            "log_id": self.id,
            "_id": self.id,
            "date": date,
            "type": self.kind,
            "description": self.description,
            "details": self.details,
        });
        for (k, val) in [
            ("client_id", &self.client_id),
            ("client_name", &self.client_name),
            ("user_id", &self.user_id),
            ("user_name", &self.user_name),
            ("ip", &self.ip),
            ("user_agent", &self.user_agent),
        ] {
            if let Some(val) = val {
                v[k] = Value::String(val.clone());
            }
        }
        v
    }
}

/// A process-wide number that only grows, started from the wall clock in microseconds so a
/// restarted process continues above the last one.
fn next_sequence() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let start = u64::try_from(now_ms()).unwrap_or(0) * 1000;
    let _ = SEQUENCE.compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst);
    SEQUENCE.fetch_add(1, Ordering::SeqCst)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Portcullis {
    /// Records an event of Auth0 type `kind`.
    pub async fn audit(&self, kind: &str, description: &str, fields: EventFields<'_>) {
        // The service clock gives the second (tests move it). Within a second, a counter that
        // starts from the wall clock and only grows orders a process's events; ids sort by
        // (second, counter), so listing by id is listing by time.
        let seconds: Timestamp = self.now();
        let date = seconds * 1000 + now_ms().rem_euclid(1000);
        let sequence = next_sequence();
        let request = REQUEST.try_with(Clone::clone).unwrap_or_default();
        let event = LogEvent {
            tenant_id: self.tenant_id().to_owned(),
            id: format!(
                "{seconds:011}{sequence:020}{}",
                portcullis_crypto::token::random_alphanumeric(6)
            ),
            date,
            kind: kind.to_owned(),
            description: description.to_owned(),
            client_id: fields.client_id.map(str::to_owned),
            client_name: fields.client_name.map(str::to_owned),
            user_id: fields.user_id.map(str::to_owned),
            user_name: fields.user_name.map(str::to_owned),
            ip: request.ip,
            user_agent: request.user_agent.map(|ua| ua.chars().take(256).collect()),
            details: fields
                .details
                .unwrap_or(Value::Object(serde_json::Map::new())),
        };
        if let Some(queue) = &self.audit_queue {
            // An event that records a change or a security decision is in the database
            // before the request is answered; the others may ride a later batch.
            let (written, wait): (Option<Written>, _) = if durable(kind) {
                let (tx, rx) = tokio::sync::oneshot::channel();
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            let msg = AuditMsg::Event(Box::new(event), written);
            let event = match queue.tx.try_send(msg) {
                Ok(()) => None,
                // A full queue slows the request rather than dropping the event.
                Err(tokio::sync::mpsc::error::TrySendError::Full(msg)) => {
                    match queue.tx.send(msg).await {
                        Ok(()) => None,
                        Err(tokio::sync::mpsc::error::SendError(msg)) => msg.into_event(),
                    }
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(msg)) => msg.into_event(),
            };
            match (event, wait) {
                // Queued: wait for the batch that holds it, if it must be durable.
                (None, Some(wait)) => match wait.await {
                    Ok(true) => {}
                    // The change this event records is made; its record is not. Said loudly
                    // (docs/LOGGING.md), since the answer still goes out.
                    Ok(false) => tracing::error!(
                        kind,
                        "a durable audit event could not be recorded; the change it records was made"
                    ),
                    Err(_) => {
                        tracing::error!(kind, "the audit writer stopped before writing an event");
                    }
                },
                (None, None) => {}
                // The writer has stopped (shutting down): write directly.
                (Some(event), _) => self.write_event(&event).await,
            }
            return;
        }
        self.write_event(&event).await;
    }

    async fn write_event(&self, event: &LogEvent) {
        if let Err(e) = self.store.insert_log_event(event).await {
            tracing::error!(error = %crate::error::report(&e), kind = %event.kind, "an audit event could not be recorded");
        }
    }

    /// Waits until every event recorded so far is in the database (before reading the
    /// trail, and at shutdown).
    pub async fn flush_audit(&self) {
        if let Some(queue) = &self.audit_queue {
            queue.flush().await;
        }
    }

    /// Deletes events older than the tenant's retention.
    pub async fn purge_logs(&self) -> Result<u64, crate::store::StoreError> {
        let tenant = self.tenant().await?;
        let before = (self.now() - tenant.log_retention_days * 86_400) * 1000;
        self.store.purge_log_events(self.tenant_id(), before).await
    }
}

/// Whether an event of type `kind` must be in the database before its request is
/// answered: it records a change (a session, a user, a password, an email, a block's
/// release, a Management API call) or a security decision (a block, a refused login, a
/// leaked password, a rate limit reached). Token exchanges and failed attempts are batched:
/// under load they are many, and each failed attempt is already counted durably by the
/// attack protection it feeds (docs/LOGGING.md lists both sets).
#[must_use]
pub fn durable(kind: &str) -> bool {
    matches!(
        kind,
        "s" | "slo"
            | "f"
            | "ss"
            | "sv"
            | "svr"
            | "sce"
            | "scp"
            | "scpr"
            | "sapi"
            | "fapi"
            | "limit_wc"
            | "limit_mu"
            | "ublkdu"
            | "pwd_leak"
            | "signup_pwd_leak"
            | "reset_pwd_leak"
            | "api_limit"
    )
}

/// Told whether an event (or, for a flush, every event before it) is in the database.
type Written = tokio::sync::oneshot::Sender<bool>;

/// A message to the audit writer.
pub(crate) enum AuditMsg {
    /// An event, and who waits for it to be written (a durable event's request).
    Event(Box<LogEvent>, Option<Written>),
    /// Answered once every event sent before it is written (or failed).
    Flush(Written),
}

impl AuditMsg {
    fn into_event(self) -> Option<Box<LogEvent>> {
        match self {
            Self::Event(event, _) => Some(event),
            Self::Flush(_) => None,
        }
    }
}

/// The queue in front of the audit writer: requests hand events over without waiting for
/// the database, and the writer stores whatever has queued up in one transaction.
#[derive(Debug)]
pub struct AuditQueue {
    tx: tokio::sync::mpsc::Sender<AuditMsg>,
}

/// Events written per transaction at most.
const AUDIT_BATCH: usize = 512;
/// How long the writer waits for more events after the first of a batch.
const AUDIT_LINGER: std::time::Duration = std::time::Duration::from_millis(20);

impl AuditQueue {
    /// Waits until every event queued so far is written.
    pub(crate) async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send(AuditMsg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Starts the writer on the current runtime.
    pub(crate) fn start(store: std::sync::Arc<dyn crate::store::Store>) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<AuditMsg>(8192);
        tokio::spawn(async move {
            let mut batch: Vec<LogEvent> = Vec::with_capacity(AUDIT_BATCH);
            // Answered once the batch is written: durable events' requests (with the event's
            // place in the batch) and flushes (`None`).
            let mut waiting: Vec<(Option<usize>, Written)> = Vec::new();
            while let Some(first) = rx.recv().await {
                // Gather what arrives within `AUDIT_LINGER` of the first event, so a busy
                // server writes a few large batches rather than many small ones. A flush or
                // a durable event writes at once, with whatever has queued up meanwhile
                // (a group commit: requests that arrive together share one transaction).
                let deadline = tokio::time::Instant::now() + AUDIT_LINGER;
                let mut next = Some(first);
                while let Some(msg) = next.take() {
                    match msg {
                        AuditMsg::Event(e, written) => {
                            if let Some(w) = written {
                                waiting.push((Some(batch.len()), w));
                            }
                            batch.push(*e);
                        }
                        AuditMsg::Flush(done) => waiting.push((None, done)),
                    }
                    if batch.len() >= AUDIT_BATCH {
                        break;
                    }
                    next = match rx.try_recv() {
                        Ok(msg) => Some(msg),
                        Err(_) if !waiting.is_empty() => None,
                        Err(_) => tokio::time::timeout_at(deadline, rx.recv())
                            .await
                            .ok()
                            .flatten(),
                    };
                }
                let written = write_batch(store.as_ref(), &batch).await;
                if !batch.is_empty() {
                    metrics::histogram!("portcullis_audit_batch_size").record(batch.len() as f64);
                }
                batch.clear();
                for (place, done) in waiting.drain(..) {
                    let ok = match place {
                        Some(i) => written.get(i).copied().unwrap_or(false),
                        None => written.iter().all(|w| *w),
                    };
                    let _ = done.send(ok);
                }
            }
        });
        Self { tx }
    }
}

/// Writes a batch in one statement; if that fails, each event on its own, so one bad event
/// does not take the others with it. Says which events are in the database.
async fn write_batch(store: &dyn crate::store::Store, batch: &[LogEvent]) -> Vec<bool> {
    if batch.is_empty() {
        return Vec::new();
    }
    let Err(e) = store.insert_log_events(batch).await else {
        return vec![true; batch.len()];
    };
    tracing::error!(error = %crate::error::report(&e), events = batch.len(), "an audit batch could not be written; writing its events one by one");
    let mut written = Vec::with_capacity(batch.len());
    for event in batch {
        let ok = store.insert_log_event(event).await;
        if let Err(e) = &ok {
            tracing::error!(error = %crate::error::report(e), kind = %event.kind, "an audit event could not be recorded");
        }
        written.push(ok.is_ok());
    }
    written
}
