//! The password as first factor: the login and signup form posts of the Universal Login
//! page, behind brute-force protection, suspicious-IP throttling and the breached-password
//! check.

use super::{LoginError, LoginForm, LoginOutcome, LoginPage};
use crate::model::{DATABASE_CONNECTION, LoginTransaction};
use crate::protection::throttle::Limit;
use crate::protection::{self, Shield};
use crate::service::Portcullis;
use portcullis_crypto::token::hash_token;

/// The one message for an unknown email and a wrong password.
pub const WRONG_CREDENTIALS: &str = "Wrong email or password.";
/// Brute-force protection's message (Auth0's words), the same for known and unknown emails.
pub const ACCOUNT_BLOCKED: &str = "Your account has been blocked after multiple consecutive login attempts. We've sent you an email with instructions on how to unblock it.";
/// Suspicious-IP throttling's message (Auth0's words).
pub const IP_BLOCKED: &str = "We have detected suspicious login behavior and further attempts will be blocked. Please contact the administrator.";
/// A login refused because the password appeared in a breach.
pub const PASSWORD_LEAKED: &str = "This login attempt has been blocked because the password you're using was previously disclosed through a data breach (not in this application). Please check your email for more information.";
/// How long an email with no account stays refused after too many attempts (a year: as
/// long as a real account's block, which lasts until it is released).
const UNKNOWN_EMAIL_BLOCK_MS: i64 = 365 * 86_400_000;

/// Why an attempt is refused before its password is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// Suspicious-IP throttling.
    Ip,
    /// Brute-force protection (this account from this IP).
    Account,
}

/// What was counted for an attempt, to give back on success.
#[derive(Debug, Default)]
struct Guard {
    refusal: Option<Refusal>,
    ip_bucket: Option<(String, Limit)>,
    counted_pair: bool,
}

/// The form again, with `error`, for the same transaction: the form's reference, CSRF
/// field and email (taken apart, so the password can still move into the hashing pool).
fn retry_page(
    (reference, csrf, email): (&str, &str, &str),
    tx: &LoginTransaction,
    client: Option<&crate::model::Client>,
    error: &str,
) -> LoginOutcome {
    LoginOutcome::Retry(LoginPage {
        transaction_id: reference.to_owned(),
        redirect_uri: tx.request.redirect_uri.clone(),
        csrf: csrf.to_owned(),
        client_name: client.map(|c| c.name.clone()).unwrap_or_default(),
        login_hint: Some(email.to_owned()),
        error: Some(error.to_owned()),
    })
}

/// A login refused until the email address is verified.
pub const VERIFY_FIRST: &str =
    "Please verify your email before logging in. Check your inbox for the verification email.";

impl Portcullis {
    /// Checks the credentials of a login form post.
    pub async fn login(&self, form: LoginForm) -> Result<LoginOutcome, LoginError> {
        let tenant = self.tenant_id();
        let tx = self.form_transaction(&form).await?;
        let client = self.cached_client(&tx.request.client_id).await?;
        let retry = |error: &str| {
            retry_page(
                (&form.transaction_id, &form.csrf_field, &form.email),
                &tx,
                client.as_ref(),
                error,
            )
        };
        let email = form.email.trim();
        if email.is_empty()
            || form.password.is_empty()
            || email.len() > 320
            || form.password.len() > 4096
        {
            return Ok(retry(WRONG_CREDENTIALS));
        }
        let client_fields = || crate::audit::EventFields {
            client_id: client.as_ref().map(|c| c.client_id.as_str()),
            client_name: client.as_ref().map(|c| c.name.as_str()),
            user_name: Some(email),
            ..Default::default()
        };
        let attack = self.attack_protection().await?;
        let options = self.connection_options().await?;
        let ip = form.ip.as_str();
        let user = self
            .store
            .find_user_by_email(tenant, DATABASE_CONNECTION, email)
            .await?;
        // Every attempt is counted before the password is checked, so parallel attempts
        // cannot slip past a limit; a success gives its count back.
        let guard = self
            .guard_attempt(&attack, &options, user.as_ref(), email, ip)
            .await?;
        if let Some(refusal) = guard.refusal {
            let (kind, description, message) = match refusal {
                Refusal::Ip => (
                    "limit_mu",
                    "An IP address is blocked because it attempted too many failed logins.",
                    IP_BLOCKED,
                ),
                Refusal::Account => (
                    "limit_wc",
                    "An IP address is blocked because it reached the maximum failed login attempts into a single account.",
                    ACCOUNT_BLOCKED,
                ),
            };
            self.audit(
                kind,
                description,
                crate::audit::EventFields {
                    user_id: user.as_ref().map(|u| u.user_id.as_str()),
                    ..client_fields()
                },
            )
            .await;
            metrics::counter!("portcullis_logins_total", "outcome" => kind).increment(1);
            tracing::info!(outcome = kind, "login refused");
            return Ok(retry(message));
        }
        // Verify even when the user is unknown, against a dummy hash, so both cost the same.
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let user_known = user.is_some();
        let password = form.password.clone();
        let ok = self.passwords.verify(form.password, stored).await;
        let Some(user) = user.filter(|_| ok) else {
            let kind = if user_known { "fp" } else { "fu" };
            let description = if user_known {
                "Wrong email or password."
            } else {
                "Wrong email or password (no such user)."
            };
            self.audit(kind, description, client_fields()).await;
            metrics::counter!("portcullis_logins_total", "outcome" => "wrong_credentials")
                .increment(1);
            tracing::info!(outcome = "wrong_credentials", "login failed");
            return Ok(retry(WRONG_CREDENTIALS));
        };
        self.forgive_attempt(&guard, &user.user_id, ip).await?;
        let user_fields = || crate::audit::EventFields {
            user_id: Some(&user.user_id),
            user_name: Some(&user.email),
            ..client_fields()
        };
        if user.blocked {
            self.audit("f", "user is blocked", user_fields()).await;
            metrics::counter!("portcullis_logins_total", "outcome" => "blocked").increment(1);
            tracing::info!(outcome = "blocked", user_id = %user.user_id, "login refused");
            return Ok(retry("Your account is blocked. Contact the administrator."));
        }
        let breached = &attack.breached_password;
        if breached.enabled && self.breached.contains(&password) {
            self.audit(
                "pwd_leak",
                &format!(
                    "Someone behind the IP address: {ip} attempted to login with a leaked password."
                ),
                user_fields(),
            )
            .await;
            let block = breached.shields.contains(&Shield::Block);
            if block || breached.shields.contains(&Shield::UserNotification) {
                self.send_reset_email(
                    &user,
                    client.as_ref().map(|c| c.client_id.as_str()),
                    crate::accounts::mailer::EmailKind::BreachedPassword,
                )
                .await?;
            }
            if block {
                metrics::counter!("portcullis_logins_total", "outcome" => "password_leaked")
                    .increment(1);
                return Ok(retry(PASSWORD_LEAKED));
            }
        }
        if options.require_email_verification && !user.email_verified {
            self.audit("f", "the email is not verified", user_fields())
                .await;
            self.send_verification_email(
                &user,
                client.as_ref().map(|c| c.client_id.as_str()),
                None,
                crate::accounts::VERIFY_TTL,
            )
            .await?;
            return self.deny_login(&tx, VERIFY_FIRST).await;
        }
        self.finish_login(
            &tx,
            client.as_ref(),
            &user,
            form.previous_session.as_deref(),
        )
        .await
    }

    /// Counts a login attempt against suspicious-IP throttling and brute-force protection
    /// before the password is checked; says whether the attempt is refused.
    async fn guard_attempt(
        &self,
        attack: &crate::protection::AttackProtection,
        options: &crate::protection::policy::ConnectionOptions,
        user: Option<&crate::model::User>,
        email: &str,
        ip: &str,
    ) -> Result<Guard, LoginError> {
        let tenant = self.tenant_id();
        let mut guard = Guard::default();
        let ip_rules = &attack.suspicious_ip;
        if ip_rules.enabled
            && ip_rules.shields.contains(&Shield::Block)
            && !protection::allowed(&ip_rules.allowlist, ip)
        {
            let limit = Limit {
                burst: ip_rules.stage.pre_login.max_attempts,
                interval_ms: i64::try_from(ip_rules.stage.pre_login.rate).unwrap_or(i64::MAX),
            };
            let bucket = format!("login-ip:{ip}");
            if !self.throttles().count(&bucket, limit).await?.allowed {
                guard.refusal = Some(Refusal::Ip);
                return Ok(guard);
            }
            guard.ip_bucket = Some((bucket, limit));
        }
        let brute = &attack.brute_force;
        if !brute.enabled
            || !options.brute_force_protection
            || protection::allowed(&brute.allowlist, ip)
        {
            return Ok(guard);
        }
        let enforce = brute.shields.contains(&Shield::Block);
        let max = i64::from(brute.max_attempts.max(1));
        match user {
            Some(user) => {
                let counted = self
                    .store
                    .count_login_attempt(tenant, &user.user_id, ip, self.now(), max, enforce)
                    .await?;
                guard.counted_pair = true;
                if counted.failures > max {
                    // Told once, when the limit is first passed.
                    if self
                        .store
                        .claim_block_notice(tenant, &user.user_id, ip, self.now())
                        .await?
                    {
                        if enforce {
                            self.audit(
                                "limit_wc",
                                "An IP address is blocked because it reached the maximum failed login attempts into a single account.",
                                crate::audit::EventFields {
                                    user_id: Some(&user.user_id),
                                    user_name: Some(&user.email),
                                    ..Default::default()
                                },
                            )
                            .await;
                        }
                        if brute.shields.contains(&Shield::UserNotification) {
                            self.send_unblock_email(user, ip).await?;
                        }
                    }
                }
                if counted.blocked {
                    guard.refusal = Some(Refusal::Account);
                }
            }
            None if enforce => {
                // An email with no account is refused after the same number of attempts, for
                // a year, so the block does not tell which emails have accounts.
                let limit = Limit {
                    burst: brute.max_attempts.max(1),
                    interval_ms: UNKNOWN_EMAIL_BLOCK_MS,
                };
                let bucket = format!(
                    "login-unknown:{}:{ip}",
                    hash_token(&crate::model::normalize_email(email))
                );
                if !self.throttles().count(&bucket, limit).await?.allowed {
                    guard.refusal = Some(Refusal::Account);
                }
            }
            None => {}
        }
        Ok(guard)
    }

    /// Gives back what a successful attempt was counted for.
    async fn forgive_attempt(
        &self,
        guard: &Guard,
        user_id: &str,
        ip: &str,
    ) -> Result<(), LoginError> {
        if let Some((bucket, limit)) = &guard.ip_bucket {
            self.store
                .throttle_refund(self.tenant_id(), bucket, limit.interval_ms)
                .await?;
        }
        if guard.counted_pair {
            self.store
                .clear_login_failures(self.tenant_id(), user_id, ip)
                .await?;
        }
        Ok(())
    }
}

impl Portcullis {
    /// Signs up from the Universal Login page of a transaction in progress, then logs the
    /// new user in. A refused signup shows the form again with the reason.
    pub async fn signup_in_transaction(&self, form: LoginForm) -> Result<LoginOutcome, LoginError> {
        let tx = self.form_transaction(&form).await?;
        let client = self.cached_client(&tx.request.client_id).await?;
        let retry = |error: String| {
            retry_page(
                (&form.transaction_id, &form.csrf_field, &form.email),
                &tx,
                client.as_ref(),
                &error,
            )
        };
        let result = self
            .signup(
                crate::accounts::SignupRequest {
                    client_id: tx.request.client_id.clone(),
                    email: form.email.clone(),
                    password: form.password.clone(),
                    ip: form.ip.clone(),
                    ..Default::default()
                },
                &crate::protection::admission::Unlimited,
            )
            .await;
        let user = match result {
            Ok(user) => user,
            Err(crate::accounts::AccountError::Internal(e)) => return Err(LoginError::Internal(e)),
            Err(crate::accounts::AccountError::Exists) => {
                return Ok(retry(
                    "We could not sign you up with this email. If you already have an account, log in or reset your password."
                        .to_owned(),
                ));
            }
            Err(e) => return Ok(retry(e.to_string())),
        };
        let options = self.connection_options().await?;
        if options.require_email_verification {
            return self.deny_login(&tx, VERIFY_FIRST).await;
        }
        self.finish_login(
            &tx,
            client.as_ref(),
            &user,
            form.previous_session.as_deref(),
        )
        .await
    }
}
