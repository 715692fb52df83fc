//! The self-service account pages: signup, password reset, email verification and unblock
//! (Auth0's JSON endpoints behind them are in `dbconnections`).

use super::authorize::{
    CSRF_COOKIE_PATH, bad_form, credentials, expired, login_error, login_outcome, render_form,
    transaction_in,
};
use super::{cookie, error_page, no_store, page_csp, request_id, tenant_name};
use crate::client_ip::ClientIp;
use crate::errors::PageError;
use crate::state::AppState;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use portcullis_core::accounts::AccountError;
use portcullis_core::protection::admission::Unlimited;

/// The double-submit CSRF cookie of the pages outside a login transaction.
const FORM_CSRF_COOKIE: &str = "pc_form_csrf";

/// `GET /u/signup?state=…`: the signup form of a transaction in progress.
pub async fn signup_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let Some((tx, csrf)) = transaction_in(query.as_deref(), &jar) else {
        return expired(&state, &headers).await;
    };
    if state
        .core
        .connection_options()
        .await
        .is_ok_and(|o| o.disable_signup)
    {
        return signup_disabled(&state, &headers).await;
    }
    match state.core.login_page(&tx, &csrf).await {
        Ok(page) => render_form(&state, &headers, "signup.html", page, StatusCode::OK).await,
        Err(e) => login_error(&state, &headers, e).await,
    }
}

async fn signup_disabled(state: &AppState, headers: &HeaderMap) -> Response {
    error_page(
        state,
        headers,
        PageError::new(
            StatusCode::NOT_FOUND,
            "Sign-up is not available",
            "Self-service sign-up is turned off here. Ask the administrator of the application for an account.",
        ),
    )
    .await
}

/// `POST /u/signup`: creates the account and logs the user in.
pub async fn signup_form(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    headers: HeaderMap,
    jar: CookieJar,
    body: String,
) -> Response {
    let form = match credentials(&state, &headers, &jar, ip, &body).await {
        Ok(form) => form,
        Err(page) => return page,
    };
    let tx = form.transaction_id.clone();
    let outcome = state.core.signup_in_transaction(form).await;
    login_outcome(&state, &headers, jar, &tx, outcome, "signup.html").await
}

/// The CSRF token of a standalone form: the cookie's, or a new one set on the response.
fn form_csrf(state: &AppState, jar: CookieJar) -> (CookieJar, String) {
    if let Some(c) = jar.get(FORM_CSRF_COOKIE)
        && c.value().len() >= 32
    {
        let value = c.value().to_owned();
        return (jar, value);
    }
    let token = portcullis_crypto::token::random_alphanumeric(43);
    let jar = jar.add(cookie(
        state,
        FORM_CSRF_COOKIE.to_owned(),
        token.clone(),
        CSRF_COOKIE_PATH,
        3600,
    ));
    (jar, token)
}

fn form_csrf_ok(jar: &CookieJar, field: Option<&str>) -> bool {
    match (jar.get(FORM_CSRF_COOKIE), field) {
        (Some(cookie), Some(field)) if !field.is_empty() => {
            portcullis_crypto::ct_eq(cookie.value().as_bytes(), field.as_bytes())
        }
        _ => false,
    }
}

async fn page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    template: &str,
    ctx: minijinja::Value,
) -> Response {
    let base = minijinja::context! {
        tenant_name => tenant_name(state).await,
        request_id => request_id(headers),
    };
    let html = state
        .pages
        .render(template, minijinja::context! { ..ctx, ..base });
    let mut response = (status, Html(html)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, page_csp(None, None, None));
    no_store(response)
}

async fn message(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    title: &str,
    detail: &str,
    link: Option<(&str, &str)>,
) -> Response {
    page(
        state,
        headers,
        status,
        "message.html",
        minijinja::context! {
            title => title,
            detail => detail,
            link => link.map(|l| l.0),
            link_text => link.map(|l| l.1),
        },
    )
    .await
}

async fn bad_link(state: &AppState, headers: &HeaderMap) -> Response {
    message(
        state,
        headers,
        StatusCode::BAD_REQUEST,
        "This link is no longer valid",
        "The link is invalid, has expired or was already used. Ask for a new one.",
        None,
    )
    .await
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct TicketQuery {
    pub ticket: Option<String>,
    pub state: Option<String>,
}

/// `GET /u/reset-password`: the request form, or with `?ticket=` the new-password form.
pub async fn reset_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let q: TicketQuery =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    let (jar, csrf) = form_csrf(&state, jar);
    let response = match q.ticket {
        Some(ticket) => match state.core.reset_form(&ticket).await {
            Ok(form) => {
                page(
                    &state,
                    &headers,
                    StatusCode::OK,
                    "reset_change.html",
                    minijinja::context! {
                        email => form.email,
                        rules => form.rules,
                        ticket => ticket,
                        csrf => csrf,
                    },
                )
                .await
            }
            Err(AccountError::Internal(e)) => {
                error_page(&state, &headers, PageError::internal(&e)).await
            }
            Err(_) => bad_link(&state, &headers).await,
        },
        None => {
            page(
                &state,
                &headers,
                StatusCode::OK,
                "reset_request.html",
                minijinja::context! {
                    csrf => csrf,
                    transaction_id => q.state,
                    sent => false,
                },
            )
            .await
        }
    };
    (jar, response).into_response()
}

/// The reset forms. Deliberately not `Debug`: one holds the password.
#[derive(serde::Deserialize)]
pub struct ResetFormBody {
    pub csrf: Option<String>,
    pub ticket: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub state: Option<String>,
}

/// `POST /u/reset-password`: sends the link, or sets the new password.
pub async fn reset_form(
    State(state): State<AppState>,
    Extension(ip): Extension<ClientIp>,
    headers: HeaderMap,
    jar: CookieJar,
    body: String,
) -> Response {
    let Ok(form) = serde_urlencoded::from_str::<ResetFormBody>(&body) else {
        return bad_form(&state, &headers, "The form could not be read.").await;
    };
    if !form_csrf_ok(&jar, form.csrf.as_deref()) {
        return expired(&state, &headers).await;
    }
    let csrf = form.csrf.unwrap_or_default();
    match form.ticket {
        Some(ticket) => {
            let password = form.password.unwrap_or_default();
            change_password_form(&state, &headers, ticket, password, csrf).await
        }
        None => {
            let email = form.email.unwrap_or_default();
            request_reset_form(&state, &headers, &ip, form.state, &email, csrf).await
        }
    }
}

/// The reset page's second form: the new password, for the emailed ticket.
async fn change_password_form(
    state: &AppState,
    headers: &HeaderMap,
    ticket: String,
    password: String,
    csrf: String,
) -> Response {
    match state.core.reset_password(&ticket, password).await {
        Ok(done) => match done.result_url {
            Some(url) => no_store(Redirect::to(&with_result(&url, "Your password has been changed.")).into_response()),
            None => {
                message(
                    state,
                    headers,
                    StatusCode::OK,
                    "Password changed",
                    "Your password has been changed, and you have been logged out everywhere. Go back to the application and log in with the new password.",
                    None,
                )
                .await
            }
        },
        Err(AccountError::Password(rejection)) => {
            let rules = state
                .core
                .connection_options()
                .await
                .map(|o| o.describe())
                .unwrap_or_default();
            let email = state
                .core
                .reset_form(&ticket)
                .await
                .map(|f| f.email)
                .unwrap_or_default();
            page(
                state,
                headers,
                StatusCode::BAD_REQUEST,
                "reset_change.html",
                minijinja::context! {
                    email => email,
                    rules => rules,
                    ticket => ticket,
                    csrf => csrf,
                    error => rejection.message(),
                },
            )
            .await
        }
        Err(AccountError::Invalid(m)) => bad_form(state, headers, &m).await,
        Err(AccountError::Internal(e)) => {
            error_page(state, headers, PageError::internal(&e)).await
        }
        Err(_) => bad_link(state, headers).await,
    }
}

/// The reset page's first form: the email to send a reset link to. A reset asked from a
/// login page (`transaction`) returns to that application's login.
async fn request_reset_form(
    state: &AppState,
    headers: &HeaderMap,
    ip: &ClientIp,
    transaction: Option<String>,
    email: &str,
    csrf: String,
) -> Response {
    let client_id = match transaction.as_deref().filter(|s| !s.is_empty()) {
        Some(tx) => state.core.transaction_client(tx).await,
        None => None,
    };
    match state
        .core
        .request_password_reset(client_id, email, &ip.0, &Unlimited)
        .await
    {
        Ok(()) => {
            page(
                state,
                headers,
                StatusCode::OK,
                "reset_request.html",
                minijinja::context! { sent => true, transaction_id => transaction, csrf => csrf },
            )
            .await
        }
        Err(AccountError::Invalid(m)) => {
            page(
                state,
                headers,
                StatusCode::BAD_REQUEST,
                "reset_request.html",
                minijinja::context! { sent => false, transaction_id => transaction, csrf => csrf, error => m },
            )
            .await
        }
        Err(AccountError::Throttled { retry_after }) => {
            let mut response = message(
                state,
                headers,
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                "Too many reset emails were asked for this address. Wait a minute, then try again.",
                None,
            )
            .await;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
            response
        }
        Err(AccountError::Internal(e)) => error_page(state, headers, PageError::internal(&e)).await,
        Err(_) => bad_form(state, headers, "The request could not be processed.").await,
    }
}

/// `result_url` with Auth0's `success` and `message` parameters.
fn with_result(url: &str, message: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.query_pairs_mut()
                .append_pair("success", "true")
                .append_pair("message", message);
            u.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

/// `GET /u/email-verification?ticket=…`: verifies the email address.
pub async fn verify_email(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let q: TicketQuery =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    let Some(ticket) = q.ticket else {
        return bad_link(&state, &headers).await;
    };
    match state.core.verify_email(&ticket).await {
        Ok(done) => match done.result_url {
            Some(url) => no_store(
                Redirect::to(&with_result(
                    &url,
                    "Your email was verified. You can continue using the application.",
                ))
                .into_response(),
            ),
            None => {
                message(
                    &state,
                    &headers,
                    StatusCode::OK,
                    "Email verified",
                    "Your email address was verified. You can continue using the application.",
                    None,
                )
                .await
            }
        },
        Err(AccountError::Internal(e)) => {
            error_page(&state, &headers, PageError::internal(&e)).await
        }
        Err(_) => bad_link(&state, &headers).await,
    }
}

/// `GET /u/unblock?ticket=…`: asks to confirm (a mail scanner's GET does not unblock).
pub async fn unblock_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let q: TicketQuery =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    let Some(ticket) = q.ticket else {
        return bad_link(&state, &headers).await;
    };
    let (jar, csrf) = form_csrf(&state, jar);
    let response = page(
        &state,
        &headers,
        StatusCode::OK,
        "unblock.html",
        minijinja::context! { ticket => ticket, csrf => csrf },
    )
    .await;
    (jar, response).into_response()
}

#[derive(Debug, serde::Deserialize)]
pub struct UnblockFormBody {
    pub csrf: Option<String>,
    pub ticket: Option<String>,
}

/// `POST /u/unblock`: releases the block the link was sent for.
pub async fn unblock(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    body: String,
) -> Response {
    let Ok(form) = serde_urlencoded::from_str::<UnblockFormBody>(&body) else {
        return bad_form(&state, &headers, "The form could not be read.").await;
    };
    if !form_csrf_ok(&jar, form.csrf.as_deref()) {
        return expired(&state, &headers).await;
    }
    let Some(ticket) = form.ticket else {
        return bad_link(&state, &headers).await;
    };
    match state.core.unblock_with_ticket(&ticket).await {
        Ok(_) => {
            message(
                &state,
                &headers,
                StatusCode::OK,
                "Account unblocked",
                "Your account is unblocked. Go back to the application and log in.",
                None,
            )
            .await
        }
        Err(AccountError::Internal(e)) => {
            error_page(&state, &headers, PageError::internal(&e)).await
        }
        Err(_) => bad_link(&state, &headers).await,
    }
}
