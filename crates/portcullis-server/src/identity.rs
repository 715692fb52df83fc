//! One identity per request. The `identify` middleware reads the `Authorization` header
//! once and puts a [`ClientIdentity`] in the request's extensions; the rate limiter, the
//! audit of Management API calls, the Management API's caller and the endpoints that take
//! client credentials all read it from there. A bearer token is verified at most once, on
//! first use, and the verified claims are shared.

use crate::state::AppState;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use portcullis_core::error::OAuthError;
use portcullis_core::oauth::resource::Bearer;
use portcullis_core::service::Portcullis;
use serde_json::Value;
use std::sync::{Arc, OnceLock};

/// What the `Authorization` header carries. Schemes are matched without regard to case
/// (RFC 9110 §11.1).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Credentials {
    None,
    /// A header that is not visible ASCII, or a `Basic` value that does not decode.
    Unreadable,
    Bearer(String),
    /// Client id and secret, form-url-decoded as RFC 6749 §2.3.1 says.
    Basic(String, String),
    /// Another scheme.
    Other,
}

impl Credentials {
    fn parse(headers: &HeaderMap) -> Self {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Self::None;
        };
        let Ok(value) = value.to_str() else {
            return Self::Unreadable;
        };
        let Some((scheme, rest)) = value.split_once(' ') else {
            return Self::Other;
        };
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = rest.trim();
            return if token.is_empty() {
                Self::Other
            } else {
                Self::Bearer(token.to_owned())
            };
        }
        if scheme.eq_ignore_ascii_case("basic") {
            return Self::basic(rest.trim()).unwrap_or(Self::Unreadable);
        }
        Self::Other
    }

    fn basic(encoded: &str) -> Option<Self> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Some(Self::Basic(decode(id), decode(secret)))
    }
}

struct Inner {
    credentials: Credentials,
    /// The bearer token's claims once verified (`None` inside when it does not verify).
    verified: OnceLock<Option<Value>>,
}

/// Who a request says it is: its credentials, parsed once, and its bearer token's claims,
/// verified once.
#[derive(Clone)]
pub struct ClientIdentity(Arc<Inner>);

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.0.credentials {
            Credentials::None => "none",
            Credentials::Unreadable => "unreadable",
            Credentials::Bearer(_) => "bearer",
            Credentials::Basic(..) => "basic",
            Credentials::Other => "other",
        };
        f.debug_struct("ClientIdentity")
            .field("credentials", &kind)
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// Reads the `Authorization` header of `headers`.
    #[must_use]
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Self(Arc::new(Inner {
            credentials: Credentials::parse(headers),
            verified: OnceLock::new(),
        }))
    }

    /// The identity the `identify` middleware found, or one read from `parts` now.
    fn of(parts: &Parts) -> Self {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .unwrap_or_else(|| Self::from_headers(&parts.headers))
    }

    /// HTTP Basic client credentials: `None` without them; an unreadable `Authorization`
    /// header is `invalid_client`.
    pub fn basic(&self) -> Result<Option<(String, String)>, OAuthError> {
        match &self.0.credentials {
            Credentials::Basic(id, secret) => Ok(Some((id.clone(), secret.clone()))),
            Credentials::Unreadable => Err(OAuthError::invalid_client()),
            _ => Ok(None),
        }
    }

    /// Whether the request carries an `Authorization` header at all.
    #[must_use]
    pub fn has_authorization(&self) -> bool {
        self.0.credentials != Credentials::None
    }

    /// The bearer token as presented, before any check.
    #[must_use]
    pub fn bearer_token(&self) -> Option<&str> {
        match &self.0.credentials {
            Credentials::Bearer(token) => Some(token),
            _ => None,
        }
    }

    /// The bearer token's claims if it is one of ours, signed and unexpired (verified on
    /// the first call only).
    pub fn claims(&self, core: &Portcullis) -> Option<&Value> {
        self.0
            .verified
            .get_or_init(|| self.bearer_token().and_then(|t| core.verify_jwt(t, 0)))
            .as_ref()
    }

    /// The bearer token as the resource endpoints take it.
    pub fn bearer(&self, core: &Portcullis) -> Bearer {
        match (self.bearer_token(), self.claims(core)) {
            (None, _) => Bearer::Missing,
            (Some(_), None) => Bearer::Invalid,
            (Some(_), Some(claims)) => Bearer::Verified(claims.clone()),
        }
    }

    /// The application a verified Management API token speaks for (`azp` of a
    /// client-credentials token for the Management API).
    pub fn management_client(&self, core: &Portcullis) -> Option<String> {
        let claims = self.claims(core)?;
        portcullis_core::management::token_client(claims, &core.settings().management_audience())
    }
}

impl FromRequestParts<AppState> for ClientIdentity {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts))
    }
}

/// The middleware: parses the credentials of every request once.
pub async fn identify(mut request: Request, next: Next) -> Response {
    let identity = ClientIdentity::from_headers(request.headers());
    request.extensions_mut().insert(identity);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::{ClientIdentity, Credentials};
    use axum::http::{HeaderMap, header};
    use base64::Engine;
    use proptest::prelude::*;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn schemes_are_matched_without_regard_to_case() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "Bearer  abc "] {
            assert_eq!(
                ClientIdentity::from_headers(&with(value)).bearer_token(),
                Some("abc"),
                "{value}"
            );
        }
        let basic = base64::engine::general_purpose::STANDARD.encode("id:secret");
        for scheme in ["Basic", "basic", "BASIC"] {
            assert_eq!(
                ClientIdentity::from_headers(&with(&format!("{scheme} {basic}")))
                    .basic()
                    .unwrap(),
                Some(("id".to_owned(), "secret".to_owned()))
            );
        }
    }

    #[test]
    fn a_bad_basic_value_is_invalid_client_and_other_schemes_are_nothing() {
        assert!(
            ClientIdentity::from_headers(&with("Basic !!!"))
                .basic()
                .is_err()
        );
        let other = ClientIdentity::from_headers(&with("Digest x"));
        assert_eq!(other.basic().unwrap(), None);
        assert_eq!(other.bearer_token(), None);
        assert!(other.has_authorization());
        assert!(!ClientIdentity::from_headers(&HeaderMap::new()).has_authorization());
    }

    proptest! {
        /// Basic credentials, form-url-encoded as RFC 6749 §2.3.1 says, come back exactly.
        #[test]
        fn basic_credentials_round_trip(id in any::<String>(), secret in any::<String>()) {
            let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let value = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", encode(&id), encode(&secret)));
            let identity = ClientIdentity::from_headers(&with(&format!("Basic {value}")));
            prop_assert_eq!(identity.basic().unwrap(), Some((id, secret)));
        }

        /// Any Authorization header is read, ignored or refused as invalid_client.
        #[test]
        fn any_authorization_header_is_read_or_refused(value in "(Basic |basic |Bearer )?[ -~]{0,200}") {
            let mut h = HeaderMap::new();
            if let Ok(v) = value.parse() {
                h.insert(header::AUTHORIZATION, v);
                let parsed = Credentials::parse(&h);
                if let Err(e) = ClientIdentity::from_headers(&h).basic() {
                    prop_assert_eq!(parsed, Credentials::Unreadable);
                    prop_assert_eq!(e.code().as_str(), "invalid_client");
                }
            }
        }
    }
}
