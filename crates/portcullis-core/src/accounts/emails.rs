//! The links the accounts emails carry (single-use tickets) and the emails themselves:
//! verification (capped per address), password change, unblock. Emails are sent on their own
//! task, so an answer's timing says nothing about them.

use super::mailer::{Email, EmailKind};
use super::{RESET_TTL, UNBLOCK_TTL, VERIFY_EMAIL_LIMIT};
use crate::audit::EventFields;
use crate::model::{Ticket, TicketData, TicketKind, User, normalize_email};
use crate::service::Portcullis;
use crate::store::StoreError;
use portcullis_crypto::token::{OpaqueToken, hash_token};
use std::sync::Arc;

impl Portcullis {
    /// Stores a ticket for `user` and returns its link.
    pub async fn issue_ticket(
        &self,
        kind: TicketKind,
        user: &User,
        mut data: TicketData,
        ttl: i64,
    ) -> Result<String, StoreError> {
        let secret = OpaqueToken::generate("tkt");
        let now = self.now();
        data.email = normalize_email(&user.email);
        self.store
            .create_ticket(&Ticket {
                tenant_id: self.tenant_id().to_owned(),
                ticket_hash: secret.hash(),
                kind,
                user_id: user.user_id.clone(),
                data,
                created_at: now,
                expires_at: now + ttl.max(1),
            })
            .await?;
        let path = match kind {
            TicketKind::EmailVerification => "u/email-verification",
            TicketKind::PasswordChange => "u/reset-password",
            TicketKind::Unblock => "u/unblock",
        };
        Ok(format!(
            "{}?ticket={}",
            self.settings.url(path),
            secret.expose()
        ))
    }

    /// Sends an email on its own task, so the answer's timing says nothing about it.
    pub fn send_email(&self, email: Email) {
        let mailer = Arc::clone(&self.mailer);
        let request = crate::audit::REQUEST
            .try_with(Clone::clone)
            .unwrap_or_default();
        tokio::spawn(crate::audit::REQUEST.scope(request, async move {
            match mailer.send(&email).await {
                Ok(()) => {
                    metrics::counter!("portcullis_emails_total", "kind" => email.kind.as_str(), "outcome" => "sent").increment(1);
                }
                Err(e) => {
                    metrics::counter!("portcullis_emails_total", "kind" => email.kind.as_str(), "outcome" => "failed").increment(1);
                    tracing::error!(kind = email.kind.as_str(), error = %e, "an email could not be sent");
                }
            }
        }));
    }

    async fn email_for(
        &self,
        user: &User,
        kind: EmailKind,
        link: String,
        ttl: i64,
        ip: Option<String>,
    ) -> Result<Email, StoreError> {
        // No profile text the user chose (name, nickname) goes into an email: whoever signs
        // up with someone else's address chooses it.
        Ok(Email {
            to: user.email.clone(),
            kind,
            link,
            tenant_name: self.tenant().await?.friendly_name,
            valid_hours: (ttl + 3599) / 3600,
            ip,
        })
    }

    /// Emails `user` a verification link (`svr` event), unless the address has had
    /// [`VERIFY_EMAIL_LIMIT`] of them already (`fvr`); says whether it was sent.
    pub async fn send_verification_email(
        &self,
        user: &User,
        client_id: Option<&str>,
        result_url: Option<String>,
        ttl: i64,
    ) -> Result<bool, StoreError> {
        let fields = || EventFields {
            user_id: Some(&user.user_id),
            user_name: Some(&user.email),
            client_id,
            ..Default::default()
        };
        let bucket = format!("verify-email:{}", hash_token(&normalize_email(&user.email)));
        if !self
            .throttles()
            .count(&bucket, VERIFY_EMAIL_LIMIT)
            .await?
            .allowed
        {
            self.audit(
                "fvr",
                "Failed Verification Email Request: too many verification emails to this address today",
                fields(),
            )
            .await;
            return Ok(false);
        }
        let link = self
            .issue_ticket(
                TicketKind::EmailVerification,
                user,
                TicketData {
                    client_id: client_id.map(str::to_owned),
                    result_url,
                    ..TicketData::default()
                },
                ttl,
            )
            .await?;
        let email = self
            .email_for(user, EmailKind::VerifyEmail, link, ttl, None)
            .await?;
        self.send_email(email);
        self.audit("svr", "Success Verification Email Request", fields())
            .await;
        Ok(true)
    }

    /// Emails a password change link (a reset, or a breached-password notice).
    pub async fn send_reset_email(
        &self,
        user: &User,
        client_id: Option<&str>,
        kind: EmailKind,
    ) -> Result<(), StoreError> {
        let link = self
            .issue_ticket(
                TicketKind::PasswordChange,
                user,
                TicketData {
                    client_id: client_id.map(str::to_owned),
                    // Following an emailed link proves the address.
                    mark_email_as_verified: true,
                    ..TicketData::default()
                },
                RESET_TTL,
            )
            .await?;
        let email = self.email_for(user, kind, link, RESET_TTL, None).await?;
        self.send_email(email);
        Ok(())
    }

    /// Emails an unblock link for `ip` (brute-force protection's user notification).
    pub async fn send_unblock_email(&self, user: &User, ip: &str) -> Result<(), StoreError> {
        let link = self
            .issue_ticket(
                TicketKind::Unblock,
                user,
                TicketData {
                    ip: Some(ip.to_owned()),
                    ..TicketData::default()
                },
                UNBLOCK_TTL,
            )
            .await?;
        let email = self
            .email_for(
                user,
                EmailKind::BlockedAccount,
                link,
                UNBLOCK_TTL,
                Some(ip.to_owned()),
            )
            .await?;
        self.send_email(email);
        Ok(())
    }
}
