//! What the services ask to be emailed. The server renders the templates and delivers
//! (SMTP, or an outbox directory in development); the services only say which email, to
//! whom, and with which link.

use async_trait::async_trait;

/// Which email.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailKind {
    /// "Verify your email" with a verification link.
    VerifyEmail,
    /// "Reset your password" with a password change link.
    ResetPassword,
    /// "Your account was blocked" after brute force, with an unblock link.
    BlockedAccount,
    /// "Your password appeared in a breach", with a password change link.
    BreachedPassword,
}

impl EmailKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::BlockedAccount => "blocked_account",
            Self::BreachedPassword => "breached_password",
        }
    }
}

/// One email to send. `Debug` hides the link, which is a secret.
#[derive(Clone, serde::Serialize)]
pub struct Email {
    pub to: String,
    pub kind: EmailKind,
    /// The single-use link (a secret until used).
    pub link: String,
    pub tenant_name: String,
    /// Hours the link stays valid.
    pub valid_hours: i64,
    /// The IP the email is about (a blocked login).
    pub ip: Option<String>,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Delivers emails.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    async fn send(&self, email: &Email) -> Result<(), String>;
}

/// For surfaces that never send email (the CLI): says so in the log, without the link.
#[derive(Debug, Default)]
pub struct NoMailer;

#[async_trait]
impl Mailer for NoMailer {
    async fn send(&self, email: &Email) -> Result<(), String> {
        tracing::warn!(
            kind = email.kind.as_str(),
            "no mail transport: email not sent"
        );
        Err("no mail transport".to_owned())
    }
}
