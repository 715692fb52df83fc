//! What the emailed links do once followed (verify an email, set a new password, release a
//! block), and the password reset request that sends one.

use super::mailer::EmailKind;
use super::{
    AccountError, PasswordStage, RESET_EMAIL_LIMIT, RESET_REQUEST_LIMIT, ResetForm, TicketDone,
    valid_email,
};
use crate::audit::EventFields;
use crate::model::{DATABASE_CONNECTION, Ticket, TicketKind, User, normalize_email};
use crate::protection::admission::Admission;
use crate::protection::policy::PersonalInfo;
use crate::service::Portcullis;
use crate::store::StoreError;
use portcullis_crypto::token::hash_token;
use serde_json::json;
use std::sync::Arc;

impl Portcullis {
    /// `/dbconnections/change_password` and the reset page: emails a reset link when the
    /// email belongs to a database user. The caller answers the same either way; the work
    /// runs on its own task so the answer's timing says nothing either.
    pub async fn request_password_reset(
        self: &Arc<Self>,
        client_id: Option<String>,
        email: &str,
        ip: &str,
        admission: &dyn Admission,
    ) -> Result<(), AccountError> {
        let email = email.trim().to_owned();
        if !valid_email(&email) {
            return Err(AccountError::Invalid(
                "A valid email is required.".to_owned(),
            ));
        }
        if let Some(id) = client_id.as_deref()
            && self
                .store
                .find_client(self.tenant_id(), id)
                .await?
                .is_none()
        {
            return Err(AccountError::UnknownClient);
        }
        let email_key = hash_token(&normalize_email(&email));
        for (bucket, limit) in [
            (format!("reset:{email_key}:{ip}"), RESET_REQUEST_LIMIT),
            (format!("reset:{email_key}"), RESET_EMAIL_LIMIT),
        ] {
            let decision = self.throttles().count(&bucket, limit).await?;
            if !decision.allowed {
                return Err(AccountError::Throttled {
                    retry_after: decision.retry_after,
                });
            }
        }
        if let Some(id) = client_id.as_deref() {
            admission.admit(id).await?;
        }
        let core = Arc::clone(self);
        let request = crate::audit::REQUEST
            .try_with(Clone::clone)
            .unwrap_or_default();
        tokio::spawn(crate::audit::REQUEST.scope(request, async move {
            if let Err(e) = core.reset_request_task(client_id, &email).await {
                tracing::error!(error = %crate::error::report(&e), "a password reset request failed");
            }
        }));
        Ok(())
    }

    async fn reset_request_task(
        &self,
        client_id: Option<String>,
        email: &str,
    ) -> Result<(), StoreError> {
        let user = self
            .store
            .find_user_by_email(self.tenant_id(), DATABASE_CONNECTION, email)
            .await?;
        let Some(user) = user.filter(|u| u.password_hash.is_some()) else {
            self.audit(
                "fcpr",
                "Failed Change Password Request (no such user)",
                EventFields {
                    user_name: Some(email),
                    client_id: client_id.as_deref(),
                    ..Default::default()
                },
            )
            .await;
            return Ok(());
        };
        self.send_reset_email(&user, client_id.as_deref(), EmailKind::ResetPassword)
            .await?;
        self.audit(
            "scpr",
            "Success Change Password Request",
            EventFields {
                user_id: Some(&user.user_id),
                user_name: Some(&user.email),
                client_id: client_id.as_deref(),
                ..Default::default()
            },
        )
        .await;
        Ok(())
    }

    /// The user a live ticket is for, if the ticket still matches their email.
    async fn ticket_user(&self, ticket: &Ticket) -> Result<User, AccountError> {
        let user = self
            .store
            .find_user(self.tenant_id(), &ticket.user_id)
            .await?
            .ok_or(AccountError::Ticket)?;
        if normalize_email(&user.email) != ticket.data.email {
            return Err(AccountError::Ticket);
        }
        Ok(user)
    }

    /// Spends an email verification link: the email is verified (`sv`), or `fv`.
    pub async fn verify_email(&self, secret: &str) -> Result<TicketDone, AccountError> {
        let tenant = self.tenant_id();
        let now = self.now();
        let Some(ticket) = self
            .store
            .consume_ticket(
                tenant,
                &hash_token(secret),
                TicketKind::EmailVerification,
                now,
            )
            .await?
        else {
            self.audit(
                "fv",
                "Failed Verification Email: invalid or used link",
                EventFields::default(),
            )
            .await;
            return Err(AccountError::Ticket);
        };
        let user = match self.ticket_user(&ticket).await {
            Ok(user) => user,
            Err(e) => {
                self.audit(
                    "fv",
                    "Failed Verification Email: the email changed",
                    EventFields::default(),
                )
                .await;
                return Err(e);
            }
        };
        if !self
            .store
            .mark_email_verified(tenant, &user.user_id, &ticket.data.email, now)
            .await?
        {
            return Err(AccountError::Ticket);
        }
        self.audit(
            "sv",
            "Success Verification Email",
            EventFields {
                user_id: Some(&user.user_id),
                user_name: Some(&user.email),
                client_id: ticket.data.client_id.as_deref(),
                ..Default::default()
            },
        )
        .await;
        Ok(TicketDone {
            email: user.email,
            result_url: ticket.data.result_url,
            client_id: ticket.data.client_id,
        })
    }

    /// The new-password form of a live reset link (the link is not spent).
    pub async fn reset_form(&self, secret: &str) -> Result<ResetForm, AccountError> {
        let ticket = self
            .store
            .find_ticket(
                self.tenant_id(),
                &hash_token(secret),
                TicketKind::PasswordChange,
                self.now(),
            )
            .await?
            .ok_or(AccountError::Ticket)?;
        let user = self.ticket_user(&ticket).await?;
        Ok(ResetForm {
            email: user.email,
            rules: self.connection_options().await?.describe(),
        })
    }

    /// Spends a reset link with a new password (`scp`/`fcp`). A refused password leaves the
    /// link usable.
    pub async fn reset_password(
        &self,
        secret: &str,
        password: String,
    ) -> Result<TicketDone, AccountError> {
        let tenant = self.tenant_id();
        let hash = hash_token(secret);
        let ticket = self
            .store
            .find_ticket(tenant, &hash, TicketKind::PasswordChange, self.now())
            .await?
            .ok_or(AccountError::Ticket)?;
        let user = self.ticket_user(&ticket).await?;
        let fields = EventFields {
            user_id: Some(&user.user_id),
            user_name: Some(&user.email),
            client_id: ticket.data.client_id.as_deref(),
            ..Default::default()
        };
        // Check first, so a refused password does not spend the link.
        let options = self.connection_options().await?;
        if let Err(error) = self
            .check_new_password(
                &options,
                &password,
                PersonalInfo {
                    email: &user.email,
                    name: &user.name,
                },
                Some(&user.user_id),
                PasswordStage::Change,
            )
            .await
        {
            if let AccountError::Password(rejection) = &error {
                self.audit("fcp", &rejection.message(), fields).await;
            }
            return Err(error);
        }
        if self
            .store
            .consume_ticket(tenant, &hash, TicketKind::PasswordChange, self.now())
            .await?
            .is_none()
        {
            return Err(AccountError::Ticket);
        }
        let hash = self
            .passwords
            .hash(password)
            .await
            .map_err(|e| AccountError::Internal(crate::error::Internal::new(e)))?;
        self.store
            .change_password(
                tenant,
                &user.user_id,
                &hash,
                options.history_size(),
                ticket.data.mark_email_as_verified,
                self.now(),
            )
            .await?;
        self.audit("scp", "Success Change Password", fields).await;
        Ok(TicketDone {
            email: user.email,
            result_url: ticket.data.result_url,
            client_id: ticket.data.client_id,
        })
    }

    /// Spends an unblock link: the blocked IP may try the account again (`ublkdu`).
    pub async fn unblock_with_ticket(&self, secret: &str) -> Result<TicketDone, AccountError> {
        let ticket = self
            .store
            .consume_ticket(
                self.tenant_id(),
                &hash_token(secret),
                TicketKind::Unblock,
                self.now(),
            )
            .await?
            .ok_or(AccountError::Ticket)?;
        let user = self.ticket_user(&ticket).await?;
        self.release_login_blocks(&user, ticket.data.ip.as_deref(), "the user's unblock link")
            .await?;
        Ok(TicketDone {
            email: user.email,
            result_url: ticket.data.result_url,
            client_id: ticket.data.client_id,
        })
    }

    /// Releases brute-force blocks of `user` (one IP or all) and records `ublkdu`.
    pub async fn release_login_blocks(
        &self,
        user: &User,
        ip: Option<&str>,
        by: &str,
    ) -> Result<u64, StoreError> {
        let released = self
            .store
            .release_login_blocks(self.tenant_id(), &user.user_id, ip)
            .await?;
        self.audit(
            "ublkdu",
            &format!("User login block released by {by}"),
            EventFields {
                user_id: Some(&user.user_id),
                user_name: Some(&user.email),
                details: Some(json!({"ip": ip, "released": released})),
                ..Default::default()
            },
        )
        .await;
        Ok(released)
    }
}
