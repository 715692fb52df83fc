//! `/authorize`: turns raw query parameters into a validated [`AuthorizeRequest`], then
//! either shows the login page, reuses the SSO session, or answers the client.
//!
//! Until the client and its redirect URI are known to be valid, errors are shown on a page
//! and never redirected (RFC 6749 §4.1.2.1).

use super::login::{LoginPage, Step};
use super::{AuthResponse, split_scope};
use crate::error::{Internal, OAuthErrorCode};
use crate::model::{AuthorizeRequest, Client, DATABASE_CONNECTION, Prompts, ResponseMode};
use crate::service::Portcullis;
/// The raw query of `/authorize` (or the form of a POST to it).
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub audience: Option<String>,
    pub connection: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub response_mode: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

/// Why `/authorize` could not proceed.
#[derive(Debug)]
pub enum AuthorizeError {
    /// Shown on an error page: the client or redirect URI cannot be trusted.
    Page {
        title: String,
        detail: String,
    },
    /// Sent back to the client's validated redirect URI.
    Redirect(AuthResponse),
    Internal(crate::error::Internal),
}

impl From<crate::store::StoreError> for AuthorizeError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Internal(e.into())
    }
}

/// What to do next.
#[derive(Debug)]
pub enum AuthorizeStep {
    /// Show the login page for this transaction; the CSRF token goes in a cookie and a field.
    Login(LoginPage),
    /// The user is authenticated but must consent first: set the CSRF cookie and send the
    /// browser to the consent page of this transaction.
    Consent {
        transaction_id: String,
        csrf: String,
    },
    /// Answer the client.
    Respond(AuthResponse),
}

fn page(title: &str, detail: impl Into<String>) -> AuthorizeError {
    AuthorizeError::Page {
        title: title.to_owned(),
        detail: detail.into(),
    }
}

/// An error answer to a validated redirect URI.
fn redirect_error(
    issuer: &str,
    redirect_uri: &str,
    mode: ResponseMode,
    state: Option<&str>,
    code: OAuthErrorCode,
    description: &str,
) -> AuthorizeError {
    AuthorizeError::Redirect(super::error_response(
        issuer,
        redirect_uri,
        mode,
        state,
        code,
        description,
    ))
}

/// The longest `state` accepted (bytes).
pub const MAX_STATE_LEN: usize = 2048;
/// The longest `nonce` accepted (bytes).
pub const MAX_NONCE_LEN: usize = 512;
/// The longest `scope` parameter accepted (bytes), at most 100 scopes.
pub const MAX_SCOPE_LEN: usize = 2048;
/// The longest `login_hint` kept (bytes); a longer one is ignored.
pub const MAX_LOGIN_HINT_LEN: usize = 320;

/// Validates the request against the registered client. Pure apart from the inputs.
pub fn validate(
    params: &AuthorizeParams,
    client: Option<&Client>,
    known_audience: impl Fn(&str) -> bool,
    userinfo_audience: &str,
    issuer: &str,
) -> Result<AuthorizeRequest, AuthorizeError> {
    let Some(client_id) = params.client_id.as_deref().filter(|s| !s.is_empty()) else {
        return Err(page(
            "Invalid request",
            "The request is missing the client_id parameter.",
        ));
    };
    let Some(client) = client else {
        return Err(page(
            "Unknown application",
            format!("No application is registered with the client_id {client_id:?}."),
        ));
    };
    let Some(redirect_uri) = params.redirect_uri.as_deref().filter(|s| !s.is_empty()) else {
        return Err(page(
            "Invalid request",
            "The request is missing the redirect_uri parameter.",
        ));
    };
    if !client.callbacks.iter().any(|c| c == redirect_uri) {
        return Err(page(
            "Callback URL mismatch",
            format!(
                "The redirect_uri {redirect_uri:?} is not in the list of Allowed Callback URLs of the application {:?}.",
                client.name
            ),
        ));
    }
    let state = params.state.as_deref().filter(|s| !s.is_empty());
    let mode = match params.response_mode.as_deref() {
        None | Some("" | "query") => ResponseMode::Query,
        Some("form_post") => ResponseMode::FormPost,
        Some("web_message") => {
            let origin = url::Url::parse(redirect_uri)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default();
            if !client
                .web_origins
                .iter()
                .any(|w| w.trim_end_matches('/') == origin)
            {
                return Err(page(
                    "Origin not allowed",
                    format!(
                        "response_mode=web_message needs {origin:?} in the Allowed Web Origins of the application {:?}.",
                        client.name
                    ),
                ));
            }
            ResponseMode::WebMessage
        }
        Some(other) => {
            return Err(redirect_error(
                issuer,
                redirect_uri,
                ResponseMode::Query,
                state,
                OAuthErrorCode::InvalidRequest,
                &format!("Unsupported response_mode: {other}"),
            ));
        }
    };
    let fail = |code: OAuthErrorCode, description: &str| {
        redirect_error(issuer, redirect_uri, mode, state, code, description)
    };

    if params.request.is_some() || params.request_uri.is_some() {
        return Err(fail(
            OAuthErrorCode::RequestNotSupported,
            "Request objects are not supported",
        ));
    }
    match params.response_type.as_deref() {
        Some("code") => {}
        None | Some("") => {
            return Err(fail(
                OAuthErrorCode::InvalidRequest,
                "Missing required parameter: response_type",
            ));
        }
        Some(other) => {
            return Err(fail(
                OAuthErrorCode::UnsupportedResponseType,
                &format!("Unsupported response type: {other}"),
            ));
        }
    }
    if !client.allows_grant("authorization_code") {
        return Err(fail(
            OAuthErrorCode::UnauthorizedClient,
            "The application is not allowed to use the authorization code grant",
        ));
    }
    let code_challenge = match (
        params.code_challenge.as_deref(),
        params.code_challenge_method.as_deref(),
    ) {
        (None | Some(""), None | Some("")) => None,
        (Some(c), Some("S256")) if portcullis_crypto::pkce::is_valid_challenge(c) => {
            Some(c.to_owned())
        }
        (Some(_), Some("S256")) => {
            return Err(fail(
                OAuthErrorCode::InvalidRequest,
                "The code_challenge is malformed",
            ));
        }
        (Some(_), None | Some("plain")) => {
            return Err(fail(
                OAuthErrorCode::InvalidRequest,
                "Only the S256 code_challenge_method is supported",
            ));
        }
        (_, Some(other)) if other != "S256" => {
            return Err(fail(
                OAuthErrorCode::InvalidRequest,
                "Only the S256 code_challenge_method is supported",
            ));
        }
        _ => {
            return Err(fail(
                OAuthErrorCode::InvalidRequest,
                "code_challenge_method requires code_challenge",
            ));
        }
    };
    if client.is_public() && code_challenge.is_none() {
        return Err(fail(
            OAuthErrorCode::InvalidRequest,
            "Public clients must use PKCE (code_challenge with S256)",
        ));
    }
    if let Some(connection) = params.connection.as_deref().filter(|s| !s.is_empty())
        && connection != DATABASE_CONNECTION
    {
        return Err(fail(
            OAuthErrorCode::InvalidRequest,
            &format!("the connection was not found: {connection}"),
        ));
    }
    let audience = match params.audience.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(a) if a == userinfo_audience => None,
        Some(a) if known_audience(a) => Some(a.to_owned()),
        Some(a) => {
            return Err(fail(
                OAuthErrorCode::AccessDenied,
                &format!("Service not found: {a}"),
            ));
        }
    };
    let prompt = Prompts::parse(params.prompt.as_deref().unwrap_or_default())
        .map_err(|e| fail(OAuthErrorCode::InvalidRequest, &e))?;
    let max_age = match params.max_age.as_deref() {
        None | Some("") => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                return Err(fail(
                    OAuthErrorCode::InvalidRequest,
                    "max_age must be a non-negative integer",
                ));
            }
        },
    };
    // What a transaction may hold is capped; the sealed login page reference is bounded
    // again once made (`login::MAX_REFERENCE_LEN`), as escaping can grow a value.
    let raw_scope = params.scope.as_deref().unwrap_or("openid");
    let scope = split_scope(raw_scope);
    if raw_scope.len() > MAX_SCOPE_LEN || scope.len() > 100 {
        return Err(fail(OAuthErrorCode::InvalidScope, "The scope is too long"));
    }
    if params
        .nonce
        .as_deref()
        .is_some_and(|n| n.len() > MAX_NONCE_LEN)
        || state.is_some_and(|s| s.len() > MAX_STATE_LEN)
    {
        return Err(fail(
            OAuthErrorCode::InvalidRequest,
            "state or nonce is too long",
        ));
    }
    Ok(AuthorizeRequest {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state: state.map(str::to_owned),
        nonce: params.nonce.clone().filter(|s| !s.is_empty()),
        code_challenge,
        audience,
        response_mode: mode,
        prompt,
        max_age,
        login_hint: params
            .login_hint
            .clone()
            .filter(|s| !s.is_empty() && s.len() <= MAX_LOGIN_HINT_LEN),
    })
}

impl Portcullis {
    /// Handles `/authorize`. `session_secret` is the SSO cookie, if the browser sent one.
    pub async fn authorize(
        &self,
        params: &AuthorizeParams,
        session_secret: Option<&str>,
    ) -> Result<AuthorizeStep, AuthorizeError> {
        let tenant = self.tenant_id();
        let client = match params.client_id.as_deref().filter(|s| !s.is_empty()) {
            Some(id) => self.cached_client(id).await?,
            None => None,
        };
        let audience_known = match params.audience.as_deref().filter(|a| !a.is_empty()) {
            Some(a) => self.cached_resource_server(a).await?.is_some(),
            None => false,
        };
        let request = validate(
            params,
            client.as_ref(),
            |_| audience_known,
            &self.settings.userinfo_audience(),
            &self.settings.issuer,
        )?;
        let client = client.expect("validate checked the client exists");
        let now = self.now();

        if !request.prompt.login
            && let Some(secret) = session_secret
            && let Some(session) = self
                .store
                .find_session_by_secret(tenant, &portcullis_crypto::token::hash_token(secret), now)
                .await?
        {
            let fresh_enough = request
                .max_age
                .is_none_or(|max| now - session.auth_time <= max);
            let user = self.store.find_user(tenant, &session.user_id).await?;
            if fresh_enough && user.is_some_and(|u| !u.blocked) {
                let idle = self.tenant().await?.idle_session_lifetime_hours * 3600;
                self.store
                    .touch_session(
                        tenant,
                        &session.id,
                        now,
                        (now + idle).min(session.expires_at),
                    )
                    .await?;
                // The first factor is the session's; the login goes on from the next step.
                if let Some(Step::Consent) =
                    self.next_step(&client, &request, &session.user_id).await?
                {
                    if request.prompt.none {
                        return Err(redirect_error(
                            &self.settings.issuer,
                            &request.redirect_uri,
                            request.response_mode,
                            request.state.as_deref(),
                            OAuthErrorCode::ConsentRequired,
                            "Consent required",
                        ));
                    }
                    let (transaction, csrf) = self.begin_login(&request, now);
                    let paused = transaction.paused_by(&session.user_id, &session.id);
                    if !self.pause_transaction(&paused).await? {
                        return Err(AuthorizeError::Internal(Internal::new(
                            "a new login transaction id was taken",
                        )));
                    }
                    return Ok(AuthorizeStep::Consent {
                        transaction_id: paused.id,
                        csrf: csrf.expose().to_owned(),
                    });
                }
                let response = self
                    .issue_code(&request, &session)
                    .await
                    .map_err(|e| AuthorizeError::Internal(Internal::with("issuing a code", e)))?;
                return Ok(AuthorizeStep::Respond(response));
            }
        }
        if request.prompt.none {
            return Err(redirect_error(
                &self.settings.issuer,
                &request.redirect_uri,
                request.response_mode,
                request.state.as_deref(),
                OAuthErrorCode::LoginRequired,
                "Login required",
            ));
        }
        // Nothing is stored for a login in progress: the transaction travels sealed in the
        // login page's `state` (see `oauth::login`).
        let (transaction, csrf) = self.begin_login(&request, now);
        let reference = self.seal_transaction(&transaction);
        if reference.len() > super::login::MAX_REFERENCE_LEN {
            // Within the caps, but escaped characters grew it past what a URL carries.
            return Err(redirect_error(
                &self.settings.issuer,
                &request.redirect_uri,
                request.response_mode,
                request.state.as_deref(),
                OAuthErrorCode::InvalidRequest,
                "The authorization request is too large",
            ));
        }
        Ok(AuthorizeStep::Login(LoginPage {
            transaction_id: reference,
            redirect_uri: request.redirect_uri.clone(),
            csrf: csrf.expose().to_owned(),
            client_name: client.name,
            login_hint: request.login_hint,
            error: None,
        }))
    }
}
