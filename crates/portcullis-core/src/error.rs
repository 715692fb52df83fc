//! Errors of the OAuth surface. Each variant maps to one RFC 6749 error code; internal
//! failures carry their detail for the log only and reach clients as `server_error`.

use crate::store::StoreError;

/// RFC 6749 / OIDC error codes Portcullis answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    AccessDenied,
    LoginRequired,
    InvalidToken,
    RequestNotSupported,
    ConsentRequired,
    /// The application's or the IP's budget is spent (answered with 429 and `Retry-After`).
    TooManyRequests,
    ServerError,
}

impl OAuthErrorCode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::LoginRequired => "login_required",
            Self::InvalidToken => "invalid_token",
            Self::RequestNotSupported => "request_not_supported",
            Self::ConsentRequired => "consent_required",
            Self::TooManyRequests => "too_many_requests",
            Self::ServerError => "server_error",
        }
    }
}

/// An OAuth error with a description safe to show the client.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{}: {description}", code.as_str())]
    Protocol {
        code: OAuthErrorCode,
        description: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl OAuthError {
    pub fn new(code: OAuthErrorCode, description: impl Into<String>) -> Self {
        Self::Protocol {
            code,
            description: description.into(),
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidGrant, description)
    }

    pub fn invalid_client() -> Self {
        Self::new(
            OAuthErrorCode::InvalidClient,
            "Client authentication failed",
        )
    }

    /// The application's budget is spent.
    #[must_use]
    pub fn too_many_requests() -> Self {
        Self::new(
            OAuthErrorCode::TooManyRequests,
            "Too many requests. Check the X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset headers.",
        )
    }

    #[must_use]
    pub fn code(&self) -> OAuthErrorCode {
        match self {
            Self::Protocol { code, .. } => *code,
            Self::Internal(_) => OAuthErrorCode::ServerError,
        }
    }

    #[must_use]
    pub fn description(&self) -> &str {
        match self {
            Self::Protocol { description, .. } => description,
            Self::Internal(_) => "The server could not complete the request",
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}
