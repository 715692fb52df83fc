//! OAuth 2 and OpenID Connect: authorization requests, the login transaction, the token
//! endpoint's grants, token contents, and the endpoints that read tokens back.

pub mod authorize;
pub mod claims;
pub mod login;
pub mod resource;
pub mod token;

use crate::model::ResponseMode;

/// Where and how to send the browser back to a client: a *validated* redirect URI and the
/// parameters to deliver there. `Debug` names the parameters but not their values (one is
/// the authorization code).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthResponse {
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub params: Vec<(String, String)>,
}

impl std::fmt::Debug for AuthResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthResponse")
            .field("redirect_uri", &self.redirect_uri)
            .field("response_mode", &self.response_mode)
            .field(
                "params",
                &self.params.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl AuthResponse {
    /// The redirect URL with the parameters in the query (for `response_mode=query`).
    #[must_use]
    pub fn query_url(&self) -> String {
        let mut url = url::Url::parse(&self.redirect_uri)
            .expect("redirect URIs are validated as absolute URLs before use");
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &self.params {
                q.append_pair(k, v);
            }
        }
        url.to_string()
    }
}

/// Scopes that belong to OpenID Connect itself rather than to an API.
pub const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// Splits a space-separated scope string, dropping duplicates and keeping order.
#[must_use]
pub fn split_scope(scope: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    out
}

/// An error answer to a validated redirect URI (RFC 6749 §4.1.2.1, with RFC 9207's `iss`).
pub(crate) fn error_response(
    issuer: &str,
    redirect_uri: &str,
    mode: ResponseMode,
    state: Option<&str>,
    code: crate::error::OAuthErrorCode,
    description: &str,
) -> AuthResponse {
    let mut params = vec![
        ("error".to_owned(), code.as_str().to_owned()),
        ("error_description".to_owned(), description.to_owned()),
    ];
    if let Some(state) = state {
        params.push(("state".to_owned(), state.to_owned()));
    }
    params.push(("iss".to_owned(), issuer.to_owned()));
    AuthResponse {
        redirect_uri: redirect_uri.to_owned(),
        response_mode: mode,
        params,
    }
}
