//! Logout: Auth0's `/v2/logout` and OpenID Connect's `/oidc/logout`.

use super::{SESSION_COOKIE, error_page, removal, request_id, tenant_name};
use crate::errors::PageError;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use portcullis_core::error::OAuthError;
use portcullis_core::oauth::resource::LogoutOutcome;
use std::collections::HashMap;

fn params(query: Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// `GET /v2/logout?returnTo=&client_id=`.
pub async fn logout_v2(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let p = params(query);
    let session = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned());
    let outcome = state
        .core
        .logout_v2(
            session.as_deref(),
            p.get("returnTo").map(String::as_str),
            p.get("client_id").map(String::as_str),
        )
        .await;
    finish(&state, &headers, jar, outcome).await
}

/// `GET` or `POST /oidc/logout` (RP-initiated logout).
pub async fn end_session(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    RawQuery(query): RawQuery,
    body: String,
) -> Response {
    let mut p = params(query);
    if !body.is_empty() {
        p.extend(params(Some(body)));
    }
    let session = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned());
    let get = |k: &str| p.get(k).map(String::as_str);
    let outcome = state
        .core
        .logout_oidc(
            session.as_deref(),
            get("id_token_hint"),
            get("client_id"),
            get("post_logout_redirect_uri"),
            get("state"),
        )
        .await;
    finish(&state, &headers, jar, outcome).await
}

async fn finish(
    state: &AppState,
    headers: &HeaderMap,
    jar: CookieJar,
    outcome: Result<LogoutOutcome, OAuthError>,
) -> Response {
    let jar = jar.add(removal(state, SESSION_COOKIE.to_owned(), "/"));
    let mut response = match outcome {
        Ok(LogoutOutcome::Redirect(url)) => Redirect::to(&url).into_response(),
        Ok(LogoutOutcome::Page(notice)) => {
            let html = state.pages.render(
                "logged_out.html",
                minijinja::context! {
                    tenant_name => tenant_name(state).await,
                    notice => notice,
                    request_id => request_id(headers),
                },
            );
            Html(html).into_response()
        }
        Err(OAuthError::Protocol { description, .. }) => {
            error_page(
                state,
                headers,
                PageError::new(
                    StatusCode::BAD_REQUEST,
                    "Logout request refused",
                    description,
                ),
            )
            .await
        }
        Err(OAuthError::Internal(e)) => error_page(state, headers, PageError::internal(&e)).await,
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (jar, response).into_response()
}
