//! Errors of the OAuth surface. Each variant maps to one RFC 6749 error code; internal
//! failures carry their detail for the log only and reach clients as `server_error`.

use crate::store::StoreError;

/// Any error, boxed, as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure inside (the database, a task, a key): carried whole, with its source, to the
/// edge that answers the request, which logs it once ([`Internal::chain`]) and shows no
/// one its detail.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct Internal {
    context: String,
    #[source]
    source: Option<BoxError>,
}

impl Internal {
    /// A failure described by `context` alone.
    pub fn new(context: impl Into<String>) -> Self {
        Self {
            context: context.into(),
            source: None,
        }
    }

    /// `context`, caused by `source`.
    pub fn with(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// The failure and every cause under it, for the one log line.
    #[must_use]
    pub fn chain(&self) -> String {
        report(self)
    }
}

/// An error and every cause under it, `: `-separated: what a log line shows of an error
/// (an error's `Display` names only itself).
#[must_use]
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

impl From<StoreError> for Internal {
    fn from(e: StoreError) -> Self {
        Self::with("the store failed", e)
    }
}

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
    #[error("internal error")]
    Internal(#[from] Internal),
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
        Self::Internal(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::{Internal, OAuthError, OAuthErrorCode};
    use crate::store::StoreError;

    #[test]
    fn an_internal_error_keeps_its_causes_for_the_log_and_shows_none() {
        let io = std::io::Error::other("connection reset by peer");
        let error: OAuthError = StoreError::Backend(Box::new(io)).into();
        let OAuthError::Internal(internal) = &error else {
            panic!("a store failure is internal");
        };
        assert_eq!(
            internal.chain(),
            "the store failed: database error: connection reset by peer"
        );
        assert_eq!(error.code(), OAuthErrorCode::ServerError);
        assert!(!error.description().contains("connection"));
        assert_eq!(Internal::new("no key").chain(), "no key");
    }
}
