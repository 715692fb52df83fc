//! Self-service accounts on the database connection: signup, email verification, password
//! reset and change, and the unblock link of brute-force protection. Every link is a
//! single-use ticket: 256 random bits, stored only as their SHA-256, spent in one
//! statement, and bound to the email it was sent to.
//!
//! Here: signup and the rules every new password passes. `emails`: the links and the emails
//! that carry them. `tickets`: what a link does once followed, and the reset request.

mod emails;
pub mod mailer;
mod tickets;

use crate::audit::EventFields;
use crate::model::{DATABASE_CONNECTION, User};
use crate::protection::admission::Admission;
use crate::protection::policy::{self, ConnectionOptions, PasswordRejection, PersonalInfo};
use crate::protection::throttle::Limit;
use crate::protection::{Shield, allowed};
use crate::service::Portcullis;
use crate::store::StoreError;
use serde_json::{Value, json};

/// Seconds a verification link lives (Auth0's default ticket lifetime, 5 days).
pub const VERIFY_TTL: i64 = 432_000;
/// Seconds a password reset link lives.
pub const RESET_TTL: i64 = 86_400;
/// Seconds an unblock link lives.
pub const UNBLOCK_TTL: i64 = 432_000;
/// Reset requests per email from all IPs: 20 a day.
pub const RESET_EMAIL_LIMIT: Limit = Limit {
    burst: 20,
    interval_ms: 4_320_000,
};
/// Verification emails per address from all sources: 5 at once, then one more every 4.8
/// hours (5 a day), so signing up with someone else's address and logging in again and again
/// cannot flood their inbox.
pub const VERIFY_EMAIL_LIMIT: Limit = Limit {
    burst: 5,
    interval_ms: 17_280_000,
};
/// Reset requests per email and IP: 10 at once, then one a minute (Auth0's limit).
pub const RESET_REQUEST_LIMIT: Limit = Limit {
    burst: 10,
    interval_ms: 60_000,
};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A missing or malformed field.
    #[error("{0}")]
    Invalid(String),
    /// The email is taken (Auth0's answer does not say so: `invalid_signup`).
    #[error("Invalid sign up")]
    Exists,
    #[error("public signup is disabled")]
    SignupDisabled,
    #[error("{}", .0.message())]
    Password(PasswordRejection),
    /// Suspicious-IP throttling or a request limit.
    #[error("too many attempts; try again later")]
    Throttled { retry_after: i64 },
    #[error("unknown client")]
    UnknownClient,
    /// A link that is unknown, expired, already used, or for an email that changed since.
    #[error("this link is invalid, has expired or was already used")]
    Ticket,
    #[error("internal error")]
    Internal(#[source] crate::error::Internal),
}

impl From<crate::protection::admission::Refused> for AccountError {
    fn from(r: crate::protection::admission::Refused) -> Self {
        Self::Throttled {
            retry_after: r.retry_after,
        }
    }
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.into())
    }
}

/// `/dbconnections/signup` and the signup page. `Debug` hides the password.
#[derive(Clone, Default)]
pub struct SignupRequest {
    pub client_id: String,
    pub email: String,
    pub password: String,
    pub name: Option<String>,
    pub nickname: Option<String>,
    pub picture: Option<String>,
    pub user_metadata: Option<Value>,
    /// The caller's IP (suspicious-IP throttling).
    pub ip: String,
}

impl std::fmt::Debug for SignupRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignupRequest")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Where a stage of a password check happens (which breached-password shields apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordStage {
    Signup,
    Change,
}

/// A ticket spent: who it was for and where to send them.
#[derive(Clone, Debug)]
pub struct TicketDone {
    pub email: String,
    pub result_url: Option<String>,
    pub client_id: Option<String>,
}

/// The new-password form of a reset link.
#[derive(Clone, Debug)]
pub struct ResetForm {
    pub email: String,
    pub rules: Vec<String>,
}

/// A plain address (`local@domain`): one `@`, a dotted domain, and none of the characters
/// that let a mail library read a list or a display name into it.
fn valid_email(email: &str) -> bool {
    let email = email.trim();
    email.len() <= 320
        && email.matches('@').count() == 1
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || ",;<>\"()[]\\:".contains(c))
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        })
}

/// Auth0's limits on the profile a signup may set.
fn check_profile(req: &SignupRequest) -> Result<(), String> {
    for (field, value) in [("name", &req.name), ("nickname", &req.nickname)] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 300) {
            return Err(format!("{field} is longer than 300 characters"));
        }
    }
    if let Some(picture) = &req.picture {
        let ok = picture.len() <= 2048
            && url::Url::parse(picture).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !ok {
            return Err("picture must be an http(s) URL".to_owned());
        }
    }
    if let Some(metadata) = &req.user_metadata {
        let Some(map) = metadata.as_object() else {
            return Err("user_metadata must be an object".to_owned());
        };
        if map.len() > 10 {
            return Err("user_metadata may hold at most 10 properties".to_owned());
        }
        for (key, value) in map {
            let text_ok = value.as_str().is_some_and(|v| v.chars().count() <= 500);
            if key.chars().count() > 100 || !text_ok {
                return Err(
                    "user_metadata keys are at most 100 characters and values strings of at most 500"
                        .to_owned(),
                );
            }
        }
    }
    Ok(())
}

impl Portcullis {
    /// Creates a database user from a signup, then emails a verification link.
    /// `admission` charges the application's budget once the signup is otherwise valid.
    pub async fn signup(
        &self,
        req: SignupRequest,
        admission: &dyn Admission,
    ) -> Result<User, AccountError> {
        let tenant = self.tenant_id();
        let client = self
            .store
            .find_client(tenant, &req.client_id)
            .await?
            .ok_or(AccountError::UnknownClient)?;
        let options = self.connection_options().await?;
        let fields = || EventFields {
            client_id: Some(&client.client_id),
            client_name: Some(&client.name),
            user_name: Some(req.email.trim()),
            ..Default::default()
        };
        if options.disable_signup {
            self.audit("fs", "public signup is disabled", fields())
                .await;
            return Err(AccountError::SignupDisabled);
        }
        let attack = self.attack_protection().await?;
        let ip_rules = &attack.suspicious_ip;
        if ip_rules.enabled
            && ip_rules.shields.contains(&Shield::Block)
            && !allowed(&ip_rules.allowlist, &req.ip)
        {
            let stage = ip_rules.stage.pre_user_registration;
            let limit = Limit {
                burst: stage.max_attempts,
                interval_ms: i64::try_from(stage.rate).unwrap_or(i64::MAX),
            };
            let decision = self
                .throttles()
                .count(&format!("signup-ip:{}", req.ip), limit)
                .await?;
            if !decision.allowed {
                self.audit(
                    "limit_mu",
                    "An IP address is blocked because it attempted too many signups.",
                    fields(),
                )
                .await;
                return Err(AccountError::Throttled {
                    retry_after: decision.retry_after,
                });
            }
        }
        let email = req.email.trim().to_owned();
        if !valid_email(&email) {
            self.audit("fs", "invalid email", fields()).await;
            return Err(AccountError::Invalid(
                "A valid email is required.".to_owned(),
            ));
        }
        if req.password.is_empty() || req.password.len() > 4096 {
            self.audit("fs", "invalid password", fields()).await;
            return Err(AccountError::Invalid("A password is required.".to_owned()));
        }
        if let Err(message) = check_profile(&req) {
            self.audit("fs", &message, fields()).await;
            return Err(AccountError::Invalid(message));
        }
        let name = req.name.clone().unwrap_or_else(|| email.clone());
        let who = PersonalInfo {
            email: &email,
            name: &name,
        };
        if let Err(error) = self
            .check_new_password(&options, &req.password, who, None, PasswordStage::Signup)
            .await
        {
            let AccountError::Password(rejection) = error else {
                return Err(error);
            };
            let description = rejection.message();
            self.audit(
                "fs",
                &description,
                EventFields {
                    details: Some(
                        json!({"error": rejection.code(), "description": rejection.description()}),
                    ),
                    ..fields()
                },
            )
            .await;
            return Err(AccountError::Password(rejection));
        }
        if self
            .store
            .find_user_by_email(tenant, DATABASE_CONNECTION, &email)
            .await?
            .is_some()
        {
            self.audit("fs", "the user already exists", fields()).await;
            return Err(AccountError::Exists);
        }
        admission.admit(&client.client_id).await?;
        let hash = self
            .passwords
            .hash(req.password)
            .await
            .map_err(|e| AccountError::Internal(crate::error::Internal::new(e)))?;
        let now = self.now();
        let nickname = req
            .nickname
            .clone()
            .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_owned());
        let user = User {
            tenant_id: tenant.to_owned(),
            user_id: crate::model::new_user_id(),
            connection: DATABASE_CONNECTION.to_owned(),
            email: email.clone(),
            email_verified: false,
            name,
            nickname,
            picture: req.picture.clone().unwrap_or_default(),
            password_hash: Some(hash),
            user_metadata: req
                .user_metadata
                .clone()
                .filter(Value::is_object)
                .unwrap_or_else(|| json!({})),
            app_metadata: json!({}),
            blocked: false,
            created_at: now,
            updated_at: now,
            last_login: None,
            logins_count: 0,
        };
        match self.store.insert_user(&user).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                self.audit("fs", "the user already exists", fields()).await;
                return Err(AccountError::Exists);
            }
            Err(e) => return Err(e.into()),
        }
        self.audit(
            "ss",
            "Success Signup",
            EventFields {
                user_id: Some(&user.user_id),
                ..fields()
            },
        )
        .await;
        self.send_verification_email(&user, Some(&client.client_id), None, VERIFY_TTL)
            .await?;
        Ok(user)
    }

    /// Runs every rule a new password must pass; `user_id` enables the history check.
    pub async fn check_new_password(
        &self,
        options: &ConnectionOptions,
        password: &str,
        who: PersonalInfo<'_>,
        user_id: Option<&str>,
        stage: PasswordStage,
    ) -> Result<(), AccountError> {
        policy::check(options, password, who).map_err(AccountError::Password)?;
        {
            let attack = self.attack_protection().await?;
            let rules = &attack.breached_password;
            let shields = match stage {
                PasswordStage::Signup => &rules.stage.pre_user_registration.shields,
                PasswordStage::Change => &rules.stage.pre_change_password.shields,
            };
            if rules.enabled && self.breached.contains(password) {
                let kind = match stage {
                    PasswordStage::Signup => "signup_pwd_leak",
                    PasswordStage::Change => "reset_pwd_leak",
                };
                self.audit(
                    kind,
                    "A breached password was chosen.",
                    EventFields {
                        user_id,
                        user_name: Some(who.email),
                        ..Default::default()
                    },
                )
                .await;
                if shields.contains(&Shield::Block) {
                    return Err(AccountError::Password(PasswordRejection::Leaked));
                }
            }
        }
        if let Some(user_id) = user_id
            && options.history_size() > 0
        {
            let mut hashes = self
                .store
                .password_history(self.tenant_id(), user_id, options.history_size())
                .await?;
            if let Some(user) = self.store.find_user(self.tenant_id(), user_id).await?
                && let Some(current) = user.password_hash
            {
                hashes.insert(0, current);
            }
            for hash in hashes {
                if self.passwords.verify(password.to_owned(), Some(hash)).await {
                    return Err(AccountError::Password(PasswordRejection::History));
                }
            }
        }
        Ok(())
    }

    /// Changes a user's password after the policy checks; ends their sessions and refresh
    /// tokens and releases brute-force blocks.
    pub async fn set_password(
        &self,
        user: &User,
        password: String,
        mark_email_verified: bool,
    ) -> Result<(), AccountError> {
        if password.is_empty() || password.len() > 4096 {
            return Err(AccountError::Invalid("A password is required.".to_owned()));
        }
        let options = self.connection_options().await?;
        let who = PersonalInfo {
            email: &user.email,
            name: &user.name,
        };
        self.check_new_password(
            &options,
            &password,
            who,
            Some(&user.user_id),
            PasswordStage::Change,
        )
        .await?;
        let hash = self
            .passwords
            .hash(password)
            .await
            .map_err(|e| AccountError::Internal(crate::error::Internal::new(e)))?;
        self.store
            .change_password(
                self.tenant_id(),
                &user.user_id,
                &hash,
                options.history_size(),
                mark_email_verified,
                self.now(),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::valid_email;

    #[test]
    fn emails_are_checked_for_shape() {
        assert!(valid_email("a@b.co"));
        assert!(!valid_email("a@b"));
        assert!(!valid_email("@b.co"));
        assert!(!valid_email("a b@c.co"));
        assert!(!valid_email("a@.co"));
        assert!(!valid_email("attacker@evil.com,victim@corp.com"));
        assert!(!valid_email("Name <a@b.co>"));
        assert!(!valid_email("a@b@c.co"));
        assert!(!valid_email("\"a\"@b.co"));
    }
}
