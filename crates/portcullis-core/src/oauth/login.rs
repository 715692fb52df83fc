//! The login transaction: the form post of the Universal Login page. A transaction can
//! later pause for a second factor or an upstream provider before it is consumed.

use super::AuthResponse;
use super::authorize::LoginPage;
use crate::model::{DATABASE_CONNECTION, LoginTransaction, Session};
use crate::protection::throttle::Limit;
use crate::protection::{self, Shield};
use crate::service::Portcullis;
use portcullis_crypto::token::{OpaqueToken, hash_token};

/// The posted login form, with the CSRF cookie the browser sent. `Debug` shows no secret.
pub struct LoginForm {
    pub transaction_id: String,
    pub csrf_field: String,
    pub csrf_cookie: Option<String>,
    pub email: String,
    pub password: String,
    /// The SSO cookie already held, revoked when a new session replaces it.
    pub previous_session: Option<String>,
    /// The client's IP (brute-force protection and suspicious-IP throttling).
    pub ip: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("transaction_id", &self.transaction_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub enum LoginOutcome {
    /// Logged in: set the new session cookie, then answer the client.
    Success {
        response: AuthResponse,
        session_secret: OpaqueToken,
        session_max_age: i64,
    },
    /// Logged in, but the application is third-party and needs the user's consent: set the
    /// session cookie, then show the consent page of this transaction.
    Consent {
        transaction_id: String,
        session_secret: OpaqueToken,
        session_max_age: i64,
    },
    /// Show the form again with an error.
    Retry(LoginPage),
    /// The login is refused for this application: send the browser back with an error.
    Denied(AuthResponse),
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("the login page has expired or was already used")]
    Expired,
    #[error("the form's CSRF token does not match")]
    Csrf,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::store::StoreError> for LoginError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

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
    /// The login page for a transaction still in progress (a reload of the page).
    pub async fn login_page(&self, reference: &str, csrf: &str) -> Result<LoginPage, LoginError> {
        let tx = self
            .find_transaction(reference)
            .await?
            .filter(|tx| tx.authenticated.is_none())
            .ok_or(LoginError::Expired)?;
        if !super::consent::csrf_matches(&tx, csrf) {
            return Err(LoginError::Csrf);
        }
        let client = self.cached_client(&tx.request.client_id).await?;
        Ok(LoginPage {
            transaction_id: reference.to_owned(),
            redirect_uri: tx.request.redirect_uri,
            csrf: csrf.to_owned(),
            client_name: client.map(|c| c.name).unwrap_or_default(),
            login_hint: tx.request.login_hint,
            error: None,
        })
    }

    /// The transaction a login or signup form post is for: live, still at the password
    /// step, and posted with its CSRF token in both the field and the cookie.
    async fn form_transaction(&self, form: &LoginForm) -> Result<LoginTransaction, LoginError> {
        let tx = self
            .find_transaction(&form.transaction_id)
            .await?
            .ok_or(LoginError::Expired)?;
        if !super::consent::csrf_ok(&tx, &form.csrf_field, form.csrf_cookie.as_deref()) {
            return Err(LoginError::Csrf);
        }
        if tx.authenticated.is_some() {
            // Already past the password step (waiting for consent): a re-post is stale.
            return Err(LoginError::Expired);
        }
        Ok(tx)
    }

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
            if !self.spend_transaction(&tx).await? {
                return Err(LoginError::Expired);
            }
            return Ok(LoginOutcome::Denied(super::authorize::error_response(
                &self.settings.issuer,
                &tx.request.redirect_uri,
                tx.request.response_mode,
                tx.request.state.as_deref(),
                crate::error::OAuthErrorCode::AccessDenied,
                VERIFY_FIRST,
            )));
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
            if !self.throttle(&bucket, limit).await?.allowed {
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
                if !self.throttle(&bucket, limit).await?.allowed {
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

    /// Opens the session of a user who has just proved who they are, then answers the
    /// client (or pauses for consent).
    pub(crate) async fn finish_login(
        &self,
        tx: &LoginTransaction,
        client: Option<&crate::model::Client>,
        user: &crate::model::User,
        previous_session: Option<&str>,
    ) -> Result<LoginOutcome, LoginError> {
        let tenant = self.tenant_id();
        let now = self.now();
        let user_fields = || crate::audit::EventFields {
            user_id: Some(&user.user_id),
            user_name: Some(&user.email),
            client_id: client.map(|c| c.client_id.as_str()),
            client_name: client.map(|c| c.name.as_str()),
            ..Default::default()
        };
        let client_ref = client.ok_or(LoginError::Expired)?;
        let needs_consent = self
            .needs_consent(client_ref, &tx.request, &user.user_id)
            .await?;
        if !needs_consent && !self.spend_transaction(tx).await? {
            return Err(LoginError::Expired);
        }
        if let Some(previous) = previous_session
            && let Some(old) = self
                .store
                .find_session_by_secret(tenant, &hash_token(previous), now)
                .await?
        {
            self.store.revoke_session(tenant, &old.id, now).await?;
        }
        let settings = self.tenant().await?;
        let lifetime = settings.session_lifetime_hours * 3600;
        let idle = settings.idle_session_lifetime_hours * 3600;
        let secret = OpaqueToken::generate("ses");
        let session = Session {
            tenant_id: tenant.to_owned(),
            id: portcullis_crypto::token::random_alphanumeric(32),
            user_id: user.user_id.clone(),
            auth_time: now,
            created_at: now,
            last_seen_at: now,
            expires_at: now + lifetime,
            idle_expires_at: now + idle.min(lifetime),
        };
        self.store.create_session(&session, &secret.hash()).await?;
        self.store.record_login(tenant, &user.user_id, now).await?;
        metrics::counter!("portcullis_logins_total", "outcome" => "success").increment(1);
        self.audit("s", "Success Login", user_fields()).await;
        tracing::info!(outcome = "success", user_id = %user.user_id, client_id = %tx.request.client_id, "login succeeded");
        if needs_consent {
            let paused = tx.clone().paused_by(&user.user_id, &session.id);
            if !self.pause_transaction(&paused).await? {
                // A concurrent post of the same form got there first.
                self.store.revoke_session(tenant, &session.id, now).await?;
                return Err(LoginError::Expired);
            }
            return Ok(LoginOutcome::Consent {
                transaction_id: tx.id.clone(),
                session_secret: secret,
                session_max_age: lifetime,
            });
        }
        let response = self
            .issue_code(&tx.request, &session)
            .await
            .map_err(|e| LoginError::Internal(e.to_string()))?;
        Ok(LoginOutcome::Success {
            response,
            session_secret: secret,
            session_max_age: lifetime,
        })
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
            if !self.spend_transaction(&tx).await? {
                return Err(LoginError::Expired);
            }
            return Ok(LoginOutcome::Denied(super::authorize::error_response(
                &self.settings.issuer,
                &tx.request.redirect_uri,
                tx.request.response_mode,
                tx.request.state.as_deref(),
                crate::error::OAuthErrorCode::AccessDenied,
                VERIFY_FIRST,
            )));
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

impl Portcullis {
    /// The application a login transaction in progress belongs to.
    pub async fn transaction_client(&self, reference: &str) -> Option<String> {
        self.find_transaction(reference)
            .await
            .ok()
            .flatten()
            .map(|tx| tx.request.client_id)
    }
}
