//! Log streams: audit events posted as JSON to an HTTP endpoint (a SIEM), with Auth0's
//! `logStreams` names. Each stream keeps a checkpoint (the id of the last event delivered)
//! in the database, so delivery survives restarts and replicas take turns: a batch is
//! posted, then the checkpoint moves with a compare-and-swap. Delivery is at least once.
//! The `httpAuthorization` header value is sealed under the master key at rest.

use crate::service::Portcullis;
use crate::store::{AuditStore, StoreError};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The settings document holding the streams.
pub const LOG_STREAMS: &str = "log_streams";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogStream {
    pub name: String,
    /// Only `http`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `active` or `paused`.
    #[serde(default = "active")]
    pub status: String,
    #[serde(default, rename = "isPriority")]
    pub is_priority: bool,
    pub sink: HttpSink,
}

fn active() -> String {
    "active".to_owned()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSink {
    #[serde(rename = "httpEndpoint")]
    pub endpoint: String,
    #[serde(rename = "httpContentType", default = "json_type")]
    pub content_type: String,
    /// `JSONARRAY` (default), `JSONLINES` or `JSONOBJECT` (one event per request).
    #[serde(rename = "httpContentFormat", default = "json_array")]
    pub format: String,
    /// Sent as the `Authorization` header; sealed at rest.
    #[serde(
        rename = "httpAuthorization",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub authorization: Option<String>,
    #[serde(rename = "httpCustomHeaders", default)]
    pub custom_headers: Vec<CustomHeader>,
}

fn json_type() -> String {
    "application/json".to_owned()
}

fn json_array() -> String {
    "JSONARRAY".to_owned()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomHeader {
    pub header: String,
    pub value: String,
}

impl LogStream {
    /// A stable id for the checkpoint: the stream's name.
    #[must_use]
    pub fn id(&self) -> String {
        format!(
            "lst_{}",
            &portcullis_crypto::token::hex(&sha(&self.name))[..16]
        )
    }
}

fn sha(text: &str) -> [u8; 32] {
    portcullis_crypto::sha256(text.as_bytes())
}

/// Checks the streams of a tenant file.
pub fn validate(streams: &[LogStream]) -> Result<Vec<LogStream>, String> {
    let mut names = std::collections::HashSet::new();
    for s in streams {
        if !names.insert(s.name.clone()) {
            return Err(format!("log stream {:?} is listed twice", s.name));
        }
        if s.kind != "http" {
            return Err(format!(
                "log stream {:?}: only type http is supported",
                s.name
            ));
        }
        if !matches!(s.status.as_str(), "active" | "paused") {
            return Err(format!(
                "log stream {:?}: status must be active or paused",
                s.name
            ));
        }
        let url = url::Url::parse(&s.sink.endpoint)
            .map_err(|_| format!("log stream {:?}: httpEndpoint is not a URL", s.name))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "log stream {:?}: httpEndpoint must be http(s)",
                s.name
            ));
        }
        if !matches!(
            s.sink.format.as_str(),
            "JSONARRAY" | "JSONLINES" | "JSONOBJECT"
        ) {
            return Err(format!(
                "log stream {:?}: httpContentFormat must be JSONARRAY, JSONLINES or JSONOBJECT",
                s.name
            ));
        }
    }
    Ok(streams.to_vec())
}

const SEALED: &str = "sealed:";
const PURPOSE: &str = "log-stream-authorization";

/// Where the log streams stand in the audit trail: the audit store and nothing else.
pub struct LogStreamCursor<'a> {
    audit: &'a dyn AuditStore,
    tenant_id: &'a str,
}

impl LogStreamCursor<'_> {
    /// The id of the last event delivered to stream `id`.
    pub async fn checkpoint(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.audit.log_stream_checkpoint(self.tenant_id, id).await
    }

    /// Up to `limit` events with an id after `after_id` and before `before_id`, oldest first.
    pub async fn events(
        &self,
        after_id: &str,
        before_id: &str,
        limit: i64,
    ) -> Result<Vec<crate::audit::LogEvent>, StoreError> {
        self.audit
            .log_events_after(self.tenant_id, after_id, before_id, limit)
            .await
    }

    /// Moves stream `id` from `previous` to `last`; `false` if another replica moved it
    /// first.
    pub async fn advance(
        &self,
        id: &str,
        previous: Option<&str>,
        last: &str,
        now: crate::model::Timestamp,
    ) -> Result<bool, StoreError> {
        self.audit
            .advance_log_stream(self.tenant_id, id, previous, last, now)
            .await
    }
}

impl Portcullis {
    /// The log streams' position in the audit trail.
    #[must_use]
    pub fn log_stream_cursor(&self) -> LogStreamCursor<'_> {
        LogStreamCursor {
            audit: self.store.as_ref(),
            tenant_id: self.tenant_id(),
        }
    }
}

impl Portcullis {
    /// The streams with their authorization opened.
    pub async fn log_streams(&self) -> Result<Vec<LogStream>, StoreError> {
        let mut streams: Vec<LogStream> = self.setting(LOG_STREAMS).await?;
        for s in &mut streams {
            if let Some(sealed) = s
                .sink
                .authorization
                .as_deref()
                .and_then(|a| a.strip_prefix(SEALED))
            {
                let bytes = portcullis_crypto::b64url_decode(sealed)
                    .ok_or_else(|| StoreError::Corrupt("log stream authorization".to_owned()))?;
                let opened = self
                    .master
                    .open(PURPOSE, &bytes)
                    .map_err(|_| StoreError::Corrupt("log stream authorization".to_owned()))?;
                s.sink.authorization = Some(String::from_utf8_lossy(&opened).into_owned());
            }
        }
        Ok(streams)
    }

    /// Streams as stored: the authorization sealed.
    pub fn seal_log_streams(&self, streams: &[LogStream]) -> Result<Vec<LogStream>, String> {
        let mut sealed = streams.to_vec();
        for s in &mut sealed {
            if let Some(auth) = s.sink.authorization.as_deref() {
                let bytes = self.master.seal(PURPOSE, auth.as_bytes());
                s.sink.authorization =
                    Some(format!("{SEALED}{}", portcullis_crypto::b64url(&bytes)));
            }
        }
        Ok(sealed)
    }
}
