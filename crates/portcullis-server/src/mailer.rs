//! Delivering account emails: SMTP through lettre (STARTTLS with `?tls=required`, or TLS
//! with `smtps://`), or, in development with no SMTP settings, an outbox directory of
//! `.eml` files plus a log line carrying the link so a newcomer can click it. Subjects and
//! bodies are templates (`email/<kind>.subject.txt`, `.txt`, `.html`) that the templates
//! directory can override.

use crate::pages::Pages;
use anyhow::Context;
use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use portcullis_core::accounts::mailer::{Email, Mailer};
use std::path::PathBuf;

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

/// The server's mailer.
pub struct ServerMailer {
    transport: Transport,
    from: Mailbox,
    templates: Pages,
}

impl std::fmt::Debug for ServerMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = match &self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::Outbox(_) => "outbox",
        };
        f.debug_struct("ServerMailer")
            .field("transport", &transport)
            .finish_non_exhaustive()
    }
}

impl ServerMailer {
    /// SMTP when `smtp_url` is set (`smtp://host:port`, `smtp://user:pass@host:587?tls=required`,
    /// `smtps://user:pass@host:465`), else the outbox directory.
    pub fn new(
        smtp_url: Option<&str>,
        from: &str,
        outbox_dir: PathBuf,
        templates_dir: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let from: Mailbox = from
            .parse()
            .with_context(|| format!("the sender address {from:?} is not an email address"))?;
        let transport = match smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .context("the SMTP URL is not valid (smtp://host:port or smtps://user:pass@host:465)")?
                    .timeout(Some(std::time::Duration::from_secs(20)))
                    .build(),
            ),
            None => {
                std::fs::create_dir_all(&outbox_dir)
                    .with_context(|| format!("creating the outbox {}", outbox_dir.display()))?;
                tracing::warn!(
                    outbox = %outbox_dir.display(),
                    "no SMTP server configured (PORTCULLIS_SMTP_URL): emails are written to the \
                     outbox directory and their links to the log. Development only."
                );
                Transport::Outbox(outbox_dir)
            }
        };
        Ok(Self {
            transport,
            from,
            templates: Pages::new(templates_dir)?,
        })
    }

    fn message(&self, email: &Email) -> Result<Message, String> {
        let ctx = minijinja::value::Value::from(minijinja::value::Serde(email));
        let kind = email.kind.as_str();
        let subject = self
            .templates
            .try_render(&format!("email/{kind}.subject.txt"), ctx.clone())?;
        let text = self
            .templates
            .try_render(&format!("email/{kind}.txt"), ctx.clone())?;
        let html = self
            .templates
            .try_render(&format!("email/{kind}.html"), ctx)?;
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|_| "the recipient address is not valid".to_owned())?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject.trim())
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| format!("building the message: {e}"))
    }
}

#[async_trait]
impl Mailer for ServerMailer {
    async fn send(&self, email: &Email) -> Result<(), String> {
        let message = self.message(email)?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| format!("SMTP delivery failed: {e}")),
            Transport::Outbox(dir) => {
                let name = format!(
                    "{}-{}-{}.eml",
                    time::OffsetDateTime::now_utc().unix_timestamp(),
                    email.kind.as_str(),
                    portcullis_crypto::token::random_alphanumeric(8)
                );
                let path = dir.join(name);
                tokio::fs::write(&path, message.formatted())
                    .await
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
                // Development only (no SMTP configured): the link is logged so it can be clicked.
                tracing::info!(
                    kind = email.kind.as_str(),
                    path = %path.display(),
                    link = %email.link,
                    "email written to the outbox"
                );
                Ok(())
            }
        }
    }
}
