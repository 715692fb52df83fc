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
    /// The directory, and whether links may go to the log (only for an http issuer: a
    /// development machine).
    Outbox(PathBuf, bool),
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
            Transport::Outbox(..) => "outbox",
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
        issuer: &str,
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
                create_private_dir(&outbox_dir)?;
                let log_links = issuer.starts_with("http://");
                if log_links {
                    tracing::warn!(
                        outbox = %outbox_dir.display(),
                        "no SMTP server configured (PORTCULLIS_SMTP_URL): emails are written to \
                         the outbox directory and their links to the log. Development only."
                    );
                } else {
                    tracing::error!(
                        outbox = %outbox_dir.display(),
                        "no SMTP server configured (PORTCULLIS_SMTP_URL): account emails are only \
                         written to the outbox directory, and no user receives them. Set \
                         PORTCULLIS_SMTP_URL."
                    );
                }
                Transport::Outbox(outbox_dir, log_links)
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
        // The recipient is one plain address, never a list or a display name.
        let address: lettre::Address = email
            .to
            .trim()
            .parse()
            .map_err(|_| "the recipient address is not valid".to_owned())?;
        let to = Mailbox::new(None, address);
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
            Transport::Outbox(dir, log_links) => {
                let name = format!(
                    "{}-{}-{}.eml",
                    time::OffsetDateTime::now_utc().unix_timestamp(),
                    email.kind.as_str(),
                    portcullis_crypto::token::random_alphanumeric(8)
                );
                let path = dir.join(name);
                let bytes = message.formatted();
                let target = path.clone();
                tokio::task::spawn_blocking(move || write_private_file(&target, &bytes))
                    .await
                    .map_err(|e| format!("writing {}: {e}", path.display()))?
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
                if *log_links {
                    // Development only (an http issuer, no SMTP): the link is logged so it
                    // can be clicked.
                    tracing::info!(
                        kind = email.kind.as_str(),
                        path = %path.display(),
                        link = %email.link,
                        "email written to the outbox"
                    );
                } else {
                    tracing::warn!(kind = email.kind.as_str(), path = %path.display(), "email written to the outbox, not sent");
                }
                Ok(())
            }
        }
    }
}

fn create_private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the outbox {}", dir.display()))
}

/// Emails hold single-use links: only the owner may read them.
fn write_private_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}
