//! The login transaction as a state machine: every way into a session goes through here.
//!
//! ```text
//!  /authorize ──► Identify ──► FirstFactor ──► (SecondFactor) ──► Consent ──► IssueCode
//!                    │             │ password          ▲              │           │
//!                    │ SSO cookie  │ (signup too)      │              │           ▼
//!                    └─────────────┴───────────────────┴──────────────┘   code to the client
//! ```
//!
//! - **Identify** (`authorize::authorize`): a validated `/authorize` request either finds a
//!   live SSO session (and skips to the step after the first factor) or begins a
//!   transaction ([`Portcullis::begin_login`]) and shows the login page. Nothing is stored:
//!   the transaction travels sealed in the page (`transaction`).
//! - **FirstFactor** (`password`): the login or signup form post, resumed from the sealed
//!   reference with its CSRF token in the field and the cookie ([`Portcullis::form_transaction`]).
//!   A passkey or an upstream provider (`connection=`) is another first factor: it resumes
//!   the same transaction and ends in [`Portcullis::finish_login`] like the password does.
//! - **SecondFactor**: [`Portcullis::next_step`] is where a due factor (MFA, `acr_values`)
//!   will pause the transaction; nothing is due today.
//! - **Consent** (`consent`): a third-party application without the user's consent pauses
//!   the transaction (a row, referred to by its bare id) until the consent form is posted.
//! - **IssueCode** ([`Portcullis::issue_code`]): the transaction is spent (its id recorded,
//!   so a replay fails) and an authorization code answers the client.
//!
//! A step that pauses writes the transaction with what is known so far
//! (`pause_transaction`); a step that resumes reads it back (`find_transaction`) and checks
//! the CSRF token first. An Action that redirects will pause and resume the same way,
//! between the first factor and the code.

mod consent;
mod password;
mod transaction;

pub use consent::{ConsentPage, ScopeLine};
pub use password::{ACCOUNT_BLOCKED, IP_BLOCKED, PASSWORD_LEAKED, VERIFY_FIRST, WRONG_CREDENTIALS};
pub use transaction::{MAX_REFERENCE_LEN, transaction_id};

use super::AuthResponse;
use crate::model::{AuthorizeRequest, CodeGrant, Grant, LoginTransaction, Session};
use crate::service::Portcullis;
use crate::store::StoreError;
use portcullis_crypto::token::{OpaqueToken, hash_token};

/// Where a login transaction waits for the browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The login page: who the user is and their first factor.
    FirstFactor,
    /// The consent page of a third-party application.
    Consent,
}

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
    #[error("internal error")]
    Internal(#[source] crate::error::Internal),
}

impl From<crate::store::StoreError> for LoginError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Internal(e.into())
    }
}

#[derive(Clone)]
pub struct LoginPage {
    pub transaction_id: String,
    /// Where the browser goes after login (the page's form-action policy must allow it).
    pub redirect_uri: String,
    pub csrf: String,
    pub client_name: String,
    pub login_hint: Option<String>,
    pub error: Option<String>,
}

impl std::fmt::Debug for LoginPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginPage")
            .field("transaction_id", &self.transaction_id)
            .field("client_name", &self.client_name)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Portcullis {
    /// Identify: a new login transaction for `request`, with its CSRF token (nothing is
    /// stored until a step is answered).
    pub(crate) fn begin_login(
        &self,
        request: &AuthorizeRequest,
        now: crate::model::Timestamp,
    ) -> (LoginTransaction, OpaqueToken) {
        let csrf = OpaqueToken::generate("csrf");
        let transaction = LoginTransaction {
            tenant_id: self.tenant_id().to_owned(),
            id: portcullis_crypto::token::random_alphanumeric(32),
            csrf_hash: csrf.hash(),
            request: request.clone(),
            authenticated: None,
            created_at: now,
            expires_at: now + self.settings.login_lifetime,
        };
        (transaction, csrf)
    }

    /// The login page for a transaction still in progress (a reload of the page).
    pub async fn login_page(&self, reference: &str, csrf: &str) -> Result<LoginPage, LoginError> {
        let tx = self
            .find_transaction(reference)
            .await?
            .filter(|tx| tx.authenticated.is_none())
            .ok_or(LoginError::Expired)?;
        if !transaction::csrf_matches(&tx, csrf) {
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
        if !transaction::csrf_ok(&tx, &form.csrf_field, form.csrf_cookie.as_deref()) {
            return Err(LoginError::Csrf);
        }
        if tx.authenticated.is_some() {
            // Already past the password step (waiting for consent): a re-post is stale.
            return Err(LoginError::Expired);
        }
        Ok(tx)
    }

    /// The step after the first factor that `user_id` must pass before `client` gets
    /// `request`'s code, if any: a second factor (none yet), then consent.
    pub(crate) async fn next_step(
        &self,
        client: &crate::model::Client,
        request: &AuthorizeRequest,
        user_id: &str,
    ) -> Result<Option<Step>, StoreError> {
        if self.needs_consent(client, request, user_id).await? {
            return Ok(Some(Step::Consent));
        }
        Ok(None)
    }

    /// The first factor is proved: opens the session, then moves to the next step (consent)
    /// or, when none is due, spends the transaction and issues the code.
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
        let pause = self
            .next_step(client_ref, &tx.request, &user.user_id)
            .await?;
        if pause.is_none() && !self.spend_transaction(tx).await? {
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
        if let Some(Step::Consent) = pause {
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
            .map_err(|e| LoginError::Internal(crate::error::Internal::with("issuing a code", e)))?;
        Ok(LoginOutcome::Success {
            response,
            session_secret: secret,
            session_max_age: lifetime,
        })
    }

    /// Spends the transaction and sends the browser back with `access_denied` and
    /// `message` (a login this application may not have yet).
    pub(crate) async fn deny_login(
        &self,
        tx: &LoginTransaction,
        message: &str,
    ) -> Result<LoginOutcome, LoginError> {
        if !self.spend_transaction(tx).await? {
            return Err(LoginError::Expired);
        }
        Ok(LoginOutcome::Denied(super::error_response(
            &self.settings.issuer,
            &tx.request.redirect_uri,
            tx.request.response_mode,
            tx.request.state.as_deref(),
            crate::error::OAuthErrorCode::AccessDenied,
            message,
        )))
    }

    /// Mints an authorization code for `request` in `session` and builds the answer.
    pub(crate) async fn issue_code(
        &self,
        request: &AuthorizeRequest,
        session: &Session,
    ) -> Result<AuthResponse, crate::error::OAuthError> {
        let now = self.now();
        let grant = Grant {
            tenant_id: self.tenant_id().to_owned(),
            id: portcullis_crypto::token::random_alphanumeric(24),
            client_id: request.client_id.clone(),
            user_id: session.user_id.clone(),
            session_id: Some(session.id.clone()),
            created_at: now,
            revoked_at: None,
        };
        self.store.create_grant(&grant).await?;
        let code = OpaqueToken::generate("ac");
        let code_grant = CodeGrant {
            request: request.clone(),
            user_id: session.user_id.clone(),
            session_id: session.id.clone(),
            auth_time: session.auth_time,
        };
        self.store
            .create_authorization_code(
                self.tenant_id(),
                &code.hash(),
                &grant.id,
                &code_grant,
                now,
                now + self.settings.code_lifetime,
            )
            .await?;
        let mut params = vec![("code".to_owned(), code.expose().to_owned())];
        if let Some(state) = &request.state {
            params.push(("state".to_owned(), state.clone()));
        }
        params.push(("iss".to_owned(), self.settings.issuer.clone()));
        Ok(AuthResponse {
            redirect_uri: request.redirect_uri.clone(),
            response_mode: request.response_mode,
            params,
        })
    }

    /// The application a login transaction in progress belongs to.
    pub async fn transaction_client(&self, reference: &str) -> Option<String> {
        self.find_transaction(reference)
            .await
            .ok()
            .flatten()
            .map(|tx| tx.request.client_id)
    }
}
