//! The login transaction: the form post of the Universal Login page. A transaction can
//! later pause for a second factor or an upstream provider before it is consumed.

use super::AuthResponse;
use super::authorize::LoginPage;
use crate::model::{DATABASE_CONNECTION, Session};
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

impl Portcullis {
    /// The login page for a transaction still in progress (a reload of the page).
    pub async fn login_page(
        &self,
        transaction_id: &str,
        csrf: &str,
    ) -> Result<LoginPage, LoginError> {
        let tenant = self.tenant_id();
        let tx = self
            .store
            .find_login_transaction(tenant, transaction_id, self.now())
            .await?
            .ok_or(LoginError::Expired)?;
        if !super::consent::csrf_matches(&tx, csrf) {
            return Err(LoginError::Csrf);
        }
        let client = self
            .store
            .find_client(tenant, &tx.request.client_id)
            .await?;
        Ok(LoginPage {
            transaction_id: tx.id,
            redirect_uri: tx.request.redirect_uri,
            csrf: csrf.to_owned(),
            client_name: client.map(|c| c.name).unwrap_or_default(),
            login_hint: tx.request.login_hint,
            error: None,
        })
    }

    /// Checks the credentials of a login form post.
    pub async fn login(&self, form: LoginForm) -> Result<LoginOutcome, LoginError> {
        let tenant = self.tenant_id();
        let now = self.now();
        let tx = self
            .store
            .find_login_transaction(tenant, &form.transaction_id, now)
            .await?
            .ok_or(LoginError::Expired)?;
        if !super::consent::csrf_ok(&tx, &form.csrf_field, form.csrf_cookie.as_deref()) {
            return Err(LoginError::Csrf);
        }
        if tx.authenticated.is_some() {
            // Already past the password step (waiting for consent): a re-post is stale.
            return Err(LoginError::Expired);
        }
        let client = self
            .store
            .find_client(tenant, &tx.request.client_id)
            .await?;
        let retry = |error: &str| {
            LoginOutcome::Retry(LoginPage {
                transaction_id: tx.id.clone(),
                redirect_uri: tx.request.redirect_uri.clone(),
                csrf: form.csrf_field.clone(),
                client_name: client.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
                login_hint: Some(form.email.clone()),
                error: Some(error.to_owned()),
            })
        };
        let email = form.email.trim();
        if email.is_empty()
            || form.password.is_empty()
            || email.len() > 320
            || form.password.len() > 4096
        {
            return Ok(retry(WRONG_CREDENTIALS));
        }
        let user = self
            .store
            .find_user_by_email(tenant, DATABASE_CONNECTION, email)
            .await?;
        // Verify even when the user is unknown, against a dummy hash, so both cost the same.
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let user_known = user.is_some();
        let ok = self.passwords.verify(form.password, stored).await;
        let client_fields = || crate::audit::EventFields {
            client_id: client.as_ref().map(|c| c.client_id.as_str()),
            client_name: client.as_ref().map(|c| c.name.as_str()),
            ..Default::default()
        };
        let Some(user) = user.filter(|_| ok) else {
            let kind = if user_known { "fp" } else { "fu" };
            let description = if user_known {
                "Wrong email or password."
            } else {
                "Wrong email or password (no such user)."
            };
            self.audit(
                kind,
                description,
                crate::audit::EventFields {
                    user_name: Some(email),
                    ..client_fields()
                },
            )
            .await;
            metrics::counter!("portcullis_logins_total", "outcome" => "wrong_credentials")
                .increment(1);
            tracing::info!(outcome = "wrong_credentials", "login failed");
            return Ok(retry(WRONG_CREDENTIALS));
        };
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
        let client_ref = client.as_ref().ok_or(LoginError::Expired)?;
        let needs_consent = self
            .needs_consent(client_ref, &tx.request, &user.user_id)
            .await?;
        if !needs_consent
            && !self
                .store
                .consume_login_transaction(tenant, &tx.id, now)
                .await?
        {
            return Err(LoginError::Expired);
        }
        if let Some(previous) = form.previous_session.as_deref()
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
            if !self
                .store
                .authenticate_login_transaction(tenant, &tx.id, &user.user_id, &session.id, now)
                .await?
            {
                // A concurrent post of the same form got there first.
                self.store.revoke_session(tenant, &session.id, now).await?;
                return Err(LoginError::Expired);
            }
            return Ok(LoginOutcome::Consent {
                transaction_id: tx.id,
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
