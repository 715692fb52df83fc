//! Delivers audit events to the tenant's HTTP log streams (see
//! `portcullis_core::log_stream`): every few seconds, each active stream posts the events
//! after its checkpoint, retrying with backoff, then moves the checkpoint.

use portcullis_core::log_stream::LogStream;
use portcullis_core::service::Portcullis;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Events per request at most.
const BATCH: i64 = 100;
/// Events of the last seconds wait for the next round, so one written a moment late by
/// another replica is not skipped. Event ids start with their second, so the cut is made
/// on whole seconds of the id itself.
const SETTLE_SECONDS: i64 = 2;

/// The HTTP client used for log streams.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("portcullis-log-stream/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Runs forever, delivering every `every`.
pub async fn run(core: Arc<Portcullis>, client: reqwest::Client, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = deliver_once(&core, &client, &[1, 2, 4]).await {
            tracing::warn!(error = %format!("{e:#}"), "log stream delivery will be retried");
        }
    }
}

/// One round over every active stream; answers how many events were delivered. A batch
/// that fails after the retries (waits in seconds) stays for the next round.
pub async fn deliver_once(
    core: &Portcullis,
    client: &reqwest::Client,
    backoff: &[u64],
) -> anyhow::Result<usize> {
    core.flush_audit().await;
    let mut delivered = 0;
    let mut failed = Vec::new();
    for stream in core.log_streams().await? {
        if stream.status != "active" {
            continue;
        }
        // A stream that fails does not hold up the others; a full batch means more waits.
        loop {
            match deliver_stream(core, client, &stream, backoff).await {
                Ok(n) => {
                    delivered += n;
                    if n < BATCH as usize {
                        break;
                    }
                }
                Err(e) => {
                    failed.push(e.to_string());
                    break;
                }
            }
        }
    }
    if failed.is_empty() {
        Ok(delivered)
    } else {
        anyhow::bail!("{}", failed.join("; "))
    }
}

async fn deliver_stream(
    core: &Portcullis,
    client: &reqwest::Client,
    stream: &LogStream,
    backoff: &[u64],
) -> anyhow::Result<usize> {
    let id = stream.id();
    let cursor = core.log_stream_cursor();
    let checkpoint = cursor.checkpoint(&id).await?;
    let events = cursor
        .events(
            checkpoint.as_deref().unwrap_or_default(),
            &format!("{:011}", core.now() - SETTLE_SECONDS),
            BATCH,
        )
        .await?;
    let Some(last) = events.last().map(|e| e.id.clone()) else {
        return Ok(0);
    };
    let items: Vec<Value> = events
        .iter()
        .map(|e| json!({"log_id": e.id, "data": e.to_json()}))
        .collect();
    let bodies: Vec<Vec<u8>> = match stream.sink.format.as_str() {
        "JSONLINES" => vec![
            items
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n")
                .into_bytes(),
        ],
        "JSONOBJECT" => items.iter().map(|i| i.to_string().into_bytes()).collect(),
        _ => vec![Value::Array(items.clone()).to_string().into_bytes()],
    };
    for body in bodies {
        post_with_retries(client, stream, body, backoff).await?;
    }
    if !cursor
        .advance(&id, checkpoint.as_deref(), &last, core.now())
        .await?
    {
        tracing::info!(stream = %stream.name, "another replica moved the log stream first");
    }
    metrics::counter!("portcullis_log_stream_events_total", "stream" => stream.name.clone())
        .increment(events.len() as u64);
    Ok(events.len())
}

async fn post_with_retries(
    client: &reqwest::Client,
    stream: &LogStream,
    body: Vec<u8>,
    backoff: &[u64],
) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        let mut request = client
            .post(&stream.sink.endpoint)
            .header(reqwest::header::CONTENT_TYPE, &stream.sink.content_type)
            .body(body.clone());
        if let Some(auth) = &stream.sink.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, auth);
        }
        for h in &stream.sink.custom_headers {
            request = request.header(h.header.as_str(), h.value.as_str());
        }
        let outcome = match request.send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => format!("the endpoint answered {}", r.status()),
            Err(e) => format!("the endpoint could not be reached: {e}"),
        };
        let Some(wait) = backoff.get(attempt) else {
            metrics::counter!("portcullis_log_stream_failures_total", "stream" => stream.name.clone())
                .increment(1);
            anyhow::bail!("log stream {:?}: {outcome}", stream.name);
        };
        tracing::warn!(stream = %stream.name, attempt = attempt + 1, "{outcome}; retrying");
        tokio::time::sleep(Duration::from_secs(*wait)).await;
        attempt += 1;
    }
}
