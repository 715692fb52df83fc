//! `/authorize` and the Universal Login page (`/u/login`).

use super::{
    Framable, SESSION_COOKIE, cookie, error_page, no_store, page_csp, removal, request_id,
    tenant_name,
};
use crate::client_ip::ClientIp;
use crate::errors::PageError;
use crate::state::AppState;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::Cookie;
use portcullis_core::model::ResponseMode;
use portcullis_core::oauth::AuthResponse;
use portcullis_core::oauth::authorize::{AuthorizeError, AuthorizeParams, AuthorizeStep};
use portcullis_core::oauth::login::{LoginError, LoginForm, LoginOutcome, LoginPage};
use portcullis_crypto::token::OpaqueToken;

/// The CSRF cookie of the transaction a page's `state` refers to: named by the reference's
/// id part (a sealed transaction in progress and the same transaction paused share it).
pub(crate) fn csrf_cookie_name(reference: &str) -> String {
    let id = portcullis_core::oauth::login::transaction_id(reference).unwrap_or_default();
    format!("pc_csrf_{id}")
}

const LOGIN_PATH: &str = "/u/login";
const SIGNUP_PATH: &str = "/u/signup";
pub(crate) const CONSENT_PATH: &str = "/u/consent";
/// The CSRF cookie of a login transaction reaches the login and consent pages only.
pub(crate) const CSRF_COOKIE_PATH: &str = "/u/";

/// `GET /authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    authorize_with(state, headers, jar, query.unwrap_or_default()).await
}

/// `POST /authorize` (OpenID Connect Core §3.1.2.1), form-encoded.
pub async fn authorize_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    body: String,
) -> Response {
    authorize_with(state, headers, jar, body).await
}

async fn authorize_with(
    state: AppState,
    headers: HeaderMap,
    jar: CookieJar,
    query: String,
) -> Response {
    let params: AuthorizeParams = match serde_urlencoded::from_str(&query) {
        Ok(p) => p,
        Err(_) => {
            return error_page(&state, &headers, PageError::new(StatusCode::BAD_REQUEST, "Invalid request", "The authorization request is malformed (a parameter is repeated or badly encoded).")).await;
        }
    };
    let session = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned());
    match state.core.authorize(&params, session.as_deref()).await {
        Ok(AuthorizeStep::Login(page)) => {
            let jar = jar.add(cookie(
                &state,
                csrf_cookie_name(&page.transaction_id),
                page.csrf.clone(),
                CSRF_COOKIE_PATH,
                state.core.settings().login_lifetime,
            ));
            let signup = url::form_urlencoded::parse(query.as_bytes())
                .any(|(k, v)| k == "screen_hint" && v == "signup");
            let path = if signup { SIGNUP_PATH } else { LOGIN_PATH };
            let location = format!("{path}?state={}", page.transaction_id);
            (jar, no_store(Redirect::to(&location).into_response())).into_response()
        }
        Ok(AuthorizeStep::Consent {
            transaction_id,
            csrf,
        }) => {
            let jar = jar.add(cookie(
                &state,
                csrf_cookie_name(&transaction_id),
                csrf,
                CSRF_COOKIE_PATH,
                state.core.settings().login_lifetime,
            ));
            let location = format!("{CONSENT_PATH}?state={transaction_id}");
            (jar, no_store(Redirect::to(&location).into_response())).into_response()
        }
        Ok(AuthorizeStep::Respond(response)) => respond(&state, &response),
        Err(AuthorizeError::Redirect(response)) => respond(&state, &response),
        Err(AuthorizeError::Page { title, detail }) => {
            error_page(
                &state,
                &headers,
                PageError::new(StatusCode::BAD_REQUEST, &title, detail),
            )
            .await
        }
        Err(AuthorizeError::Internal(e)) => {
            error_page(&state, &headers, PageError::internal(&e)).await
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginQuery {
    pub state: Option<String>,
}

/// `GET /u/login?state=…`: the login form of a transaction in progress.
pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let Some((tx, csrf)) = transaction_in(query.as_deref(), &jar) else {
        return expired(&state, &headers).await;
    };
    match state.core.login_page(&tx, &csrf).await {
        Ok(page) => render_login(&state, &headers, page, StatusCode::OK).await,
        Err(e) => login_error(&state, &headers, e).await,
    }
}

/// The login and signup forms (the signup page names its field `email`). Deliberately not
/// `Debug`: it holds the password.
#[derive(serde::Deserialize)]
pub struct CredentialsBody {
    pub state: Option<String>,
    pub csrf: Option<String>,
    #[serde(alias = "email")]
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Reads a login or signup form post into the services' form, with the CSRF cookie and the
/// SSO cookie the browser sent; `Err` is the page to answer instead.
pub(crate) async fn credentials(
    state: &AppState,
    headers: &HeaderMap,
    jar: &CookieJar,
    ip: ClientIp,
    body: &str,
) -> Result<LoginForm, Response> {
    let Ok(form) = serde_urlencoded::from_str::<CredentialsBody>(body) else {
        return Err(bad_form(state, headers, "The form could not be read.").await);
    };
    let (Some(tx), Some(csrf)) = (form.state, form.csrf) else {
        return Err(expired(state, headers).await);
    };
    Ok(LoginForm {
        csrf_cookie: csrf_cookie(jar, &tx),
        transaction_id: tx,
        csrf_field: csrf,
        email: form.username.unwrap_or_default(),
        password: form.password.unwrap_or_default(),
        previous_session: jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()),
        ip: ip.0,
    })
}

/// `POST /u/login`: checks the credentials.
pub async fn login(
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
    let outcome = state.core.login(form).await;
    login_outcome(&state, &headers, jar, &tx, outcome, "login.html").await
}

/// Answers a login or signup form post.
pub(crate) async fn login_outcome(
    state: &AppState,
    headers: &HeaderMap,
    jar: CookieJar,
    tx: &str,
    outcome: Result<LoginOutcome, LoginError>,
    template: &str,
) -> Response {
    let state = state.clone();
    let headers = headers.clone();
    match outcome {
        Ok(LoginOutcome::Success {
            response,
            session_secret,
            session_max_age,
        }) => {
            let jar = jar
                .add(session_cookie(&state, &session_secret, session_max_age))
                .add(removal(&state, csrf_cookie_name(tx), CSRF_COOKIE_PATH));
            (jar, respond(&state, &response)).into_response()
        }
        Ok(LoginOutcome::Denied(response)) => {
            let jar = jar.add(removal(&state, csrf_cookie_name(tx), CSRF_COOKIE_PATH));
            (jar, respond(&state, &response)).into_response()
        }
        Ok(LoginOutcome::Consent {
            transaction_id,
            session_secret,
            session_max_age,
        }) => {
            let jar = jar.add(session_cookie(&state, &session_secret, session_max_age));
            let location = format!("{CONSENT_PATH}?state={transaction_id}");
            (jar, no_store(Redirect::to(&location).into_response())).into_response()
        }
        Ok(LoginOutcome::Retry(page)) => {
            render_form(&state, &headers, template, page, StatusCode::BAD_REQUEST).await
        }
        Err(e) => login_error(&state, &headers, e).await,
    }
}

/// `GET /u/consent?state=…`: what a third-party application asks for.
pub async fn consent_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    RawQuery(query): RawQuery,
) -> Response {
    let Some((tx, csrf)) = transaction_in(query.as_deref(), &jar) else {
        return expired(&state, &headers).await;
    };
    match state.core.consent_page(&tx, &csrf).await {
        Ok(page) => {
            let html = state.pages.render(
                "consent.html",
                minijinja::context! {
                    tenant_name => tenant_name(&state).await,
                    client_name => page.client_name,
                    user_email => page.user_email,
                    scopes => minijinja::value::Serde(&page.scopes),
                    transaction_id => page.transaction_id,
                    csrf => page.csrf,
                    request_id => request_id(&headers),
                },
            );
            let mut response = Html(html).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, page_csp(None, None, None));
            no_store(response)
        }
        Err(e) => login_error(&state, &headers, e).await,
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct ConsentFormBody {
    pub state: Option<String>,
    pub csrf: Option<String>,
    pub action: Option<String>,
}

/// `POST /u/consent`: the user's decision.
pub async fn consent(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    body: String,
) -> Response {
    let Ok(form) = serde_urlencoded::from_str::<ConsentFormBody>(&body) else {
        return bad_form(&state, &headers, "The consent form could not be read.").await;
    };
    let (Some(tx), Some(csrf)) = (form.state, form.csrf) else {
        return expired(&state, &headers).await;
    };
    let accept = match form.action.as_deref() {
        Some("accept") => true,
        Some("deny") => false,
        _ => {
            return bad_form(&state, &headers, "Choose Accept or Decline.").await;
        }
    };
    let csrf_cookie = csrf_cookie(&jar, &tx);
    match state
        .core
        .consent(&tx, &csrf, csrf_cookie.as_deref(), accept)
        .await
    {
        Ok(response) => {
            let jar = jar.add(removal(&state, csrf_cookie_name(&tx), CSRF_COOKIE_PATH));
            (jar, respond(&state, &response)).into_response()
        }
        Err(e) => login_error(&state, &headers, e).await,
    }
}

/// The transaction id in a page's query and the CSRF token in its cookie.
pub(crate) fn transaction_in(query: Option<&str>, jar: &CookieJar) -> Option<(String, String)> {
    let parsed: LoginQuery = serde_urlencoded::from_str(query.unwrap_or_default()).ok()?;
    let tx = parsed.state?;
    let csrf = csrf_cookie(jar, &tx)?;
    Some((tx, csrf))
}

pub(crate) fn csrf_cookie(jar: &CookieJar, transaction_id: &str) -> Option<String> {
    jar.get(&csrf_cookie_name(transaction_id))
        .map(|c| c.value().to_owned())
}

pub(crate) fn session_cookie(
    state: &AppState,
    secret: &OpaqueToken,
    max_age: i64,
) -> Cookie<'static> {
    cookie(
        state,
        SESSION_COOKIE.to_owned(),
        secret.expose().to_owned(),
        "/",
        max_age,
    )
}

pub(crate) async fn login_error(
    state: &AppState,
    headers: &HeaderMap,
    error: LoginError,
) -> Response {
    match error {
        LoginError::Internal(e) => error_page(state, headers, PageError::internal(&e)).await,
        LoginError::Expired | LoginError::Csrf => expired(state, headers).await,
    }
}

pub(crate) async fn bad_form(state: &AppState, headers: &HeaderMap, detail: &str) -> Response {
    error_page(
        state,
        headers,
        PageError::new(StatusCode::BAD_REQUEST, "Invalid request", detail),
    )
    .await
}

pub(crate) async fn expired(state: &AppState, headers: &HeaderMap) -> Response {
    error_page(
        state,
        headers,
        PageError::new(
            StatusCode::BAD_REQUEST,
            "This login page has expired",
            "The login page was open too long, was already used, or was opened in another browser. Go back to the application and log in again.",
        ),
    )
    .await
}

async fn render_login(
    state: &AppState,
    headers: &HeaderMap,
    page: LoginPage,
    status: StatusCode,
) -> Response {
    render_form(state, headers, "login.html", page, status).await
}

/// Renders the login or signup form of a transaction.
pub(crate) async fn render_form(
    state: &AppState,
    headers: &HeaderMap,
    template: &str,
    page: LoginPage,
    status: StatusCode,
) -> Response {
    let rules = state
        .core
        .connection_options()
        .await
        .map(|o| o.describe())
        .unwrap_or_default();
    let html = state.pages.render(
        template,
        minijinja::context! {
            tenant_name => tenant_name(state).await,
            client_name => page.client_name,
            transaction_id => page.transaction_id,
            csrf => page.csrf,
            login_hint => page.login_hint,
            error => page.error,
            rules => rules,
            request_id => request_id(headers),
        },
    );
    let mut response = (status, Html(html)).into_response();
    // No form-action here: browsers apply it to every redirect after the post, which would
    // block native apps' custom schemes and callbacks that redirect onwards.
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, page_csp(None, None, None));
    no_store(response)
}

fn origin_of(uri: &str) -> String {
    url::Url::parse(uri)
        .map(|u| u.origin().ascii_serialization())
        .ok()
        .filter(|o| o != "null")
        .unwrap_or_default()
}

/// Sends the browser back to the client: a 303 with the query, an auto-posting form, or a
/// `postMessage` to the opener or parent window.
pub fn respond(state: &AppState, response: &AuthResponse) -> Response {
    let origin = origin_of(&response.redirect_uri);
    match response.response_mode {
        ResponseMode::Query => no_store(Redirect::to(&response.query_url()).into_response()),
        ResponseMode::FormPost => {
            let nonce = portcullis_crypto::b64url(&portcullis_crypto::random_bytes::<16>());
            let html = state.pages.render(
                "form_post.html",
                minijinja::context! {
                    redirect_uri => &response.redirect_uri,
                    params => &response.params,
                    nonce => &nonce,
                },
            );
            let mut resp = Html(html).into_response();
            resp.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                page_csp(Some(&nonce), Some(&origin), None),
            );
            no_store(resp)
        }
        ResponseMode::WebMessage => {
            let nonce = portcullis_crypto::b64url(&portcullis_crypto::random_bytes::<16>());
            let params: serde_json::Map<String, serde_json::Value> = response
                .params
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            let html = state.pages.render(
                "web_message.html",
                minijinja::context! {
                    response => minijinja::value::Serde(&params),
                    origin => &origin,
                    nonce => &nonce,
                },
            );
            let mut resp = Html(html).into_response();
            resp.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                page_csp(Some(&nonce), None, Some(&origin)),
            );
            resp.extensions_mut().insert(Framable);
            no_store(resp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn jar(cookie_header: &str) -> CookieJar {
        let mut h = HeaderMap::new();
        if let Ok(v) = cookie_header.parse() {
            h.insert(header::COOKIE, v);
        }
        CookieJar::from_headers(&h)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any `Cookie` header and query are read without panic; a transaction is found only
        /// through the cookie its reference names.
        #[test]
        fn any_cookies_and_query_are_read_safely(cookies in "[ -~]{0,300}", query in "[ -~]{0,300}") {
            let jar = jar(&cookies);
            if let Some((reference, csrf)) = transaction_in(Some(&query), &jar) {
                let name = csrf_cookie_name(&reference);
                prop_assert!(name.len() > "pc_csrf_".len(), "{}", name);
                prop_assert_eq!(jar.get(&name).map(|c| c.value().to_owned()), Some(csrf));
            }
            let _ = jar.get(SESSION_COOKIE);
        }

        /// A login page's cookie is found from its reference, whatever the sealed part holds.
        #[test]
        fn the_csrf_cookie_of_a_reference_is_found(id in "[A-Za-z0-9]{32}", sealed in "[A-Za-z0-9_-]{0,200}", csrf in "csrf_[A-Za-z0-9_-]{43}", other in "[ -~]{0,100}") {
            let jar = jar(&format!("pc_session=x; pc_csrf_{id}={csrf}; junk={}", other.replace(';', "")));
            let query = format!("state={id}.{sealed}");
            let found = transaction_in(Some(&query), &jar);
            prop_assert_eq!(found, Some((format!("{id}.{sealed}"), csrf)));
        }
    }
}
