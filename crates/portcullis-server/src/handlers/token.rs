//! `/oauth/token`, `/oauth/revoke` and `/oauth/introspect`.

use super::no_store;
use crate::client_ip::ClientIp;
use crate::errors::OAuthHttpError;
use crate::identity::ClientIdentity;
use crate::ratelimit::ClientBudget;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use portcullis_core::error::OAuthError;
use portcullis_core::oauth::token::{ClientCredentials, TokenRequest};
use std::collections::HashMap;

/// Reads a form-encoded or JSON body (Auth0's SDKs post JSON) into string pairs.
/// Repeated parameters are refused, as RFC 6749 §3.2 requires.
pub fn read_params(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HashMap<String, String>, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        let value: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(body)
            .map_err(|_| OAuthError::invalid_request("The request body is not a JSON object"))?;
        let mut out = HashMap::new();
        for (k, v) in value {
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => continue,
                _ => {
                    return Err(OAuthError::invalid_request(format!(
                        "Parameter {k} must be a string"
                    )));
                }
            };
            out.insert(k, text);
        }
        return Ok(out);
    }
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(OAuthError::invalid_request(
            "Use application/x-www-form-urlencoded or application/json",
        ));
    }
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if out.insert(k.clone().into_owned(), v.into_owned()).is_some() {
            return Err(OAuthError::invalid_request(format!(
                "Parameter {k} is repeated"
            )));
        }
    }
    Ok(out)
}

/// Runs a client-authenticated endpoint: reads the body, takes the client credentials out
/// of it (Basic header or form), and maps the result to a `no-store` answer or an RFC 6749
/// error.
async fn with_client<T, Fut>(
    headers: &HeaderMap,
    identity: &ClientIdentity,
    body: &[u8],
    answer: impl FnOnce(T) -> Response,
    run: impl FnOnce(ClientCredentials, HashMap<String, String>) -> Fut,
) -> Response
where
    Fut: std::future::Future<Output = Result<T, OAuthError>>,
{
    let basic_auth = identity.has_authorization();
    let result = async {
        let mut params = read_params(headers, body)?;
        let creds = ClientCredentials::take(&mut params, identity.basic()?);
        run(creds, params).await
    }
    .await;
    match result {
        Ok(value) => no_store(answer(value)),
        Err(error) => OAuthHttpError { error, basic_auth }.into_response(),
    }
}

fn required_token(params: &mut HashMap<String, String>) -> Result<String, OAuthError> {
    params
        .remove("token")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("Missing required parameter: token"))
}

/// `POST /oauth/token`.
pub async fn token(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    identity: ClientIdentity,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let budget = ClientBudget::token(&state, &ip);
    let response = with_client(
        &headers,
        &identity,
        &body,
        |tokens: portcullis_core::oauth::token::TokenResponse| Json(tokens).into_response(),
        |creds, params| {
            let budget = &budget;
            async move {
                let request = TokenRequest::parse(params)?;
                state.core.token(request, &creds, budget).await
            }
        },
    )
    .await;
    budget.mark(response)
}

/// `POST /oauth/revoke` (RFC 7009): 200 for any token, known or not.
pub async fn revoke(
    State(state): State<AppState>,
    identity: ClientIdentity,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    with_client(
        &headers,
        &identity,
        &body,
        |()| StatusCode::OK.into_response(),
        |creds, mut params| async move {
            let token = required_token(&mut params)?;
            state.core.revoke(&creds, &token).await
        },
    )
    .await
}

/// `POST /oauth/introspect` (RFC 7662).
pub async fn introspect(
    State(state): State<AppState>,
    identity: ClientIdentity,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    with_client(
        &headers,
        &identity,
        &body,
        |value: serde_json::Value| Json(value).into_response(),
        |creds, mut params| async move {
            let token = required_token(&mut params)?;
            state.core.introspect(&creds, &token).await
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        h
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A form of distinct parameters comes back exactly; a repeated one is refused.
        #[test]
        fn form_bodies_round_trip_and_refuse_repeats(pairs in proptest::collection::btree_map("[a-z_]{1,16}", any::<String>(), 0..8)) {
            let body = serde_urlencoded::to_string(&pairs).unwrap();
            let read = read_params(&headers("application/x-www-form-urlencoded"), body.as_bytes()).unwrap();
            prop_assert_eq!(read.len(), pairs.len());
            for (k, v) in &pairs {
                prop_assert_eq!(read.get(k), Some(v));
            }
            if let Some((k, v)) = pairs.iter().next() {
                let repeated = format!("{body}&{}", serde_urlencoded::to_string([(k, v)]).unwrap());
                let error = read_params(&headers("application/x-www-form-urlencoded"), repeated.as_bytes()).unwrap_err();
                prop_assert_eq!(error.code().as_str(), "invalid_request");
            }
        }

        /// A JSON object of strings comes back exactly, as Auth0's SDKs send it.
        #[test]
        fn json_bodies_round_trip(pairs in proptest::collection::btree_map("[a-z_]{1,16}", any::<String>(), 0..8)) {
            let body = serde_json::to_vec(&pairs).unwrap();
            let read = read_params(&headers("application/json; charset=utf-8"), &body).unwrap();
            prop_assert_eq!(read.into_iter().collect::<std::collections::BTreeMap<_, _>>(), pairs);
        }

        /// Any body under any content type is read or refused with an RFC 6749 error.
        #[test]
        fn any_token_request_body_is_read_or_refused(body in any::<Vec<u8>>(), content_type in prop_oneof![Just("application/json"), Just("application/x-www-form-urlencoded"), Just("text/plain")]) {
            if let Ok(params) = read_params(&headers(content_type), &body) {
                let mut params = params;
                let _ = ClientCredentials::take(&mut params, None);
                if let Err(e) = TokenRequest::parse(params) {
                    prop_assert!(matches!(e.code().as_str(), "invalid_request" | "unsupported_grant_type"));
                }
            }
        }
    }
}
