//! Server-rendered pages (minijinja), static assets, and the security headers every answer
//! carries.

use crate::AppState;
use crate::auth::current;
use crate::coach::{self, money};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;
use minijinja::value::Serde;
use minijinja::{Environment, Value, context};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("home.html", include_str!("../templates/home.html")),
    (
        "dashboard.html",
        include_str!("../templates/dashboard.html"),
    ),
    ("admin.html", include_str!("../templates/admin.html")),
    ("message.html", include_str!("../templates/message.html")),
];

pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    pub fn new() -> anyhow::Result<Self> {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)?;
        }
        env.add_filter("money", |cents: i64| money(cents));
        Ok(Self { env })
    }

    fn render(&self, name: &str, ctx: Value) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => Html(html).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "rendering failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.").into_response()
            }
        }
    }
}

/// A page with a title, a message and an optional link.
pub fn message(state: &AppState, title: &str, detail: &str, link: Option<&str>) -> Response {
    let mut response = state.pages.render(
        "message.html",
        context! { title => title, detail => detail, link => link },
    );
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
}

/// A server-side failure page.
pub fn failure(state: &AppState, detail: &str) -> Response {
    let mut response = message(state, "Something went wrong", detail, Some("/"));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

/// `GET /`: the landing page, or the dashboard when logged in.
pub async fn home(State(state): State<AppState>, jar: CookieJar) -> Response {
    if current(&state, &jar).await.is_some() {
        return Redirect::to("/dashboard").into_response();
    }
    state.pages.render("home.html", context! {})
}

/// `GET /dashboard`: the user's accounts, this month's spending against budget, and tips.
pub async fn dashboard(State(state): State<AppState>, jar: CookieJar) -> Response {
    let Some((_, session)) = current(&state, &jar).await else {
        return Redirect::to("/login").into_response();
    };
    let d = time::OffsetDateTime::now_utc().date();
    let since = format!("{:04}-{:02}-01", d.year(), u8::from(d.month()));
    let loaded = async {
        let accounts = state.db.accounts(&session.sub).await?;
        let transactions = state.db.transactions(&session.sub, &since).await?;
        let budgets = state.db.budgets(&session.sub).await?;
        Ok::<_, sqlx::Error>((accounts, transactions, budgets))
    }
    .await;
    let (accounts, transactions, budgets) = match loaded {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "loading the dashboard failed");
            return failure(&state, "Your data could not be loaded.");
        }
    };
    let summary = coach::summarize(&transactions, &budgets);
    let chart = coach::spending_chart(&summary.categories);
    let net_worth: i64 = accounts.iter().map(|a| a.balance_cents).sum();
    state.pages.render(
        "dashboard.html",
        context! {
            user => context! { name => session.name, email => session.email },
            is_admin => session.roles.iter().any(|r| r == "admin"),
            csrf => session.csrf,
            accounts => Serde(&accounts),
            net_worth => net_worth,
            transactions => Serde(transactions.iter().take(8).collect::<Vec<_>>()),
            summary => Serde(&summary),
            chart => Value::from_safe_string(chart),
            month => format!("{} {}", d.month(), d.year()),
        },
    )
}

/// `GET /admin`: only for the `admin` role; 403 otherwise.
pub async fn admin(State(state): State<AppState>, jar: CookieJar) -> Response {
    let Some((_, session)) = current(&state, &jar).await else {
        return Redirect::to("/login").into_response();
    };
    if !session.roles.iter().any(|r| r == "admin") {
        let mut response = message(
            &state,
            "Administrators only",
            "Your account does not have the admin role, so this page is not available to you.",
            Some("/dashboard"),
        );
        *response.status_mut() = StatusCode::FORBIDDEN;
        return response;
    }
    // The overview comes from the API, with the admin's own access token.
    let url = format!("{}/api/admin/overview", state.config.base_url);
    let overview: serde_json::Value = match state
        .http
        .get(&url)
        .bearer_auth(&session.access_token)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
        Ok(r) => serde_json::json!({"error": r.status().as_u16()}),
        Err(_) => serde_json::json!({"error": "unreachable"}),
    };
    state.pages.render(
        "admin.html",
        context! {
            user => context! { name => session.name, email => session.email },
            csrf => session.csrf,
            overview => Serde(&overview),
            roles => session.roles,
        },
    )
}

const STYLE: &str = include_str!("../static/style.css");
const SCRIPT: &str = include_str!("../static/app.js");

/// `GET /static/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// A strict CSP (scripts and styles from this origin only; forms post here, and the
/// logout form's redirect goes on to Portcullis) and the usual hardening headers.
pub async fn security_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let issuer_origin = url::Url::parse(&state.config.issuer)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self' {issuer_origin}; frame-ancestors 'none'; base-uri 'none'"
    );
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
