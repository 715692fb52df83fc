//! The load driver for what `wrk` cannot do: complete password logins (`/authorize`, the
//! login form post, the code exchange with PKCE) and refresh-token grants with rotation,
//! each worker carrying its own state. Every response is checked; a wrong one is counted as
//! an error, never as a success.

use anyhow::{Context, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const WEB_CLIENT: &str = "bench-web";
pub const WEB_SECRET: &str = "bench-web-secret-0123456789abcdefghijkl";
pub const CALLBACK: &str = "http://127.0.0.1:9/callback";
pub const USER_PASSWORD: &str = "Bench-user-Password-7";
pub const API: &str = "https://rs.bench.example";

#[derive(Debug, Serialize, Deserialize)]
pub struct DriveResult {
    pub per_sec: f64,
    pub done: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

/// A form body (encoded before any await: the encoder is not `Send`).
fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn location(r: &reqwest::Response) -> anyhow::Result<String> {
    r.headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .context("no Location header")
}

/// The login page `/authorize` sent the browser to: the transaction reference in its
/// `state`, and the CSRF cookie (named by the reference's id) with its value.
pub fn login_page(r: &reqwest::Response) -> anyhow::Result<(String, String, String)> {
    let to_login = location(r)?;
    let tx = to_login
        .split("state=")
        .nth(1)
        .context("no transaction in the login URL")?
        .to_owned();
    let id = tx.split('.').next().unwrap_or_default();
    let cookie_name = format!("pc_csrf_{id}");
    let csrf = r
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{cookie_name}=")))
        .and_then(|c| c.split(';').next())
        .context("no CSRF cookie")?
        .to_owned();
    Ok((tx, cookie_name, csrf))
}

/// Posts the login form of `page` (from [`login_page`]) with these credentials.
pub async fn post_login(
    http: &reqwest::Client,
    issuer: &str,
    (tx, cookie_name, csrf): &(String, String, String),
    email: &str,
    password: &str,
) -> anyhow::Result<reqwest::Response> {
    let body = form(&[
        ("state", tx),
        ("csrf", csrf),
        ("username", email),
        ("password", password),
    ]);
    Ok(http
        .post(format!("{issuer}u/login?state={tx}"))
        .header(reqwest::header::COOKIE, format!("{cookie_name}={csrf}"))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await?)
}

/// One complete login of `email`; returns the token response.
pub async fn login(
    http: &reqwest::Client,
    issuer: &str,
    email: &str,
    n: u64,
    scope: &str,
) -> anyhow::Result<serde_json::Value> {
    let verifier = b64(&portcullis_crypto::random_bytes::<32>());
    let challenge = b64(&Sha256::digest(verifier.as_bytes()));
    let state = format!("s{n}");
    let query = [
        ("response_type", "code"),
        ("client_id", WEB_CLIENT),
        ("redirect_uri", CALLBACK),
        ("scope", scope),
        ("audience", API),
        ("state", state.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    let mut url = url::Url::parse(&format!("{issuer}authorize"))?;
    url.query_pairs_mut().extend_pairs(query);
    let r = http.get(url).send().await?;
    if r.status() != reqwest::StatusCode::SEE_OTHER {
        bail!("/authorize answered {}", r.status());
    }
    let page = login_page(&r)?;
    let r = post_login(http, issuer, &page, email, USER_PASSWORD).await?;
    if r.status() != reqwest::StatusCode::SEE_OTHER {
        bail!("the login post answered {}", r.status());
    }
    let callback = url::Url::parse(&location(&r)?)?;
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .context("no code in the callback")?;
    if !callback
        .query_pairs()
        .any(|(k, v)| k == "state" && v == state)
    {
        bail!("the callback's state does not match");
    }
    let tokens = token_request(
        http,
        issuer,
        form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ]),
    )
    .await?;
    let openid = scope.split(' ').any(|s| s == "openid");
    for field in ["access_token", "id_token", "refresh_token"] {
        if field == "id_token" && !openid {
            if !tokens[field].is_null() {
                bail!("an id_token without the openid scope");
            }
            continue;
        }
        if !tokens[field].is_string() {
            bail!("the code exchange gave no {field}");
        }
    }
    Ok(tokens)
}

/// A token request of the web client; a non-2xx answer is an error.
async fn token_request(
    http: &reqwest::Client,
    issuer: &str,
    body: String,
) -> anyhow::Result<serde_json::Value> {
    Ok(http
        .post(format!("{issuer}oauth/token"))
        .basic_auth(WEB_CLIENT, Some(WEB_SECRET))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

async fn refresh(http: &reqwest::Client, issuer: &str, token: &str) -> anyhow::Result<String> {
    let tokens = token_request(
        http,
        issuer,
        form(&[("grant_type", "refresh_token"), ("refresh_token", token)]),
    )
    .await?;
    if !tokens["access_token"].is_string() {
        bail!("the refresh gave no access_token");
    }
    if !tokens["id_token"].is_null() {
        bail!("the refresh gave an id_token without the openid scope");
    }
    tokens["refresh_token"]
        .as_str()
        .map(str::to_owned)
        .context("a rotating client got no new refresh token")
}

/// Runs `workers` concurrent loops of `mode` (`login` or `refresh`) for `seconds`.
pub async fn drive(
    issuer: &str,
    mode: &str,
    seconds: f64,
    workers: usize,
    users: usize,
) -> anyhow::Result<DriveResult> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(workers)
        .build()?;
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let first_error: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    // Refresh workers start from a login each (not counted).
    let mut chains = Vec::new();
    if mode == "refresh" {
        for w in 0..workers {
            let tokens = login(
                &http,
                issuer,
                &format!("user{}@bench.example", w % users),
                w as u64,
                // An access token only, as for an API client: one signature per grant.
                "offline_access",
            )
            .await?;
            chains.push(
                tokens["refresh_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (http, issuer, mode) = (http.clone(), issuer.to_owned(), mode.to_owned());
        let (done, errors, stop, first_error) = (
            done.clone(),
            errors.clone(),
            stop.clone(),
            first_error.clone(),
        );
        let mut chain = chains.get(w).cloned().unwrap_or_default();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let outcome = if mode == "login" {
                    // Spread over the whole table, so a large one is read all over.
                    let i = (w as u64 * 7_919 + n * 104_729) % users as u64;
                    let email = format!("user{i}@bench.example");
                    login(&http, &issuer, &email, n, "openid offline_access")
                        .await
                        .map(|_| ())
                } else {
                    refresh(&http, &issuer, &chain)
                        .await
                        .map(|next| chain = next)
                };
                match outcome {
                    Ok(()) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        record_first(&first_error, e.to_string());
                        if mode == "refresh" {
                            break;
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    let done = done.load(Ordering::Relaxed);
    let first_error = first_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Ok(DriveResult {
        per_sec: done as f64 / elapsed,
        done,
        errors: errors.load(Ordering::Relaxed),
        first_error,
    })
}

fn record_first(slot: &std::sync::Mutex<Option<String>>, error: String) {
    let mut first = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    first.get_or_insert(error);
}
