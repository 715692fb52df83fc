//! The Personal Finance Coach: logs users in with Portcullis (OpenID Connect, authorization
//! code with PKCE, through the `openidconnect` crate), keeps a server-side session, shows each
//! user their own accounts, budgets and coaching, and serves a JSON API protected by
//! `portcullis-verify`. See README.md.

mod api;
mod auth;
mod coach;
mod data;
mod pages;

use anyhow::Context;
use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};
use std::sync::Arc;

/// Settings, from `COACH_*` environment variables (the demo defaults match
/// `examples/finance-coach/tenant.yaml`).
#[derive(Clone, Debug)]
pub struct Config {
    /// Portcullis's issuer URL, ending with `/`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// This app's public URL, without a trailing `/`.
    pub base_url: String,
    /// The API identifier (the `audience` of the access tokens).
    pub audience: String,
    /// The namespaced claim carrying role names in the ID token.
    pub roles_claim: String,
    pub listen: String,
    pub database: String,
}

impl Config {
    fn from_env() -> anyhow::Result<Self> {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let mut issuer = var("COACH_ISSUER", "http://127.0.0.1:8080/");
        if !issuer.ends_with('/') {
            issuer.push('/');
        }
        Ok(Self {
            issuer,
            client_id: var("COACH_CLIENT_ID", "finance-coach"),
            client_secret: std::env::var("COACH_CLIENT_SECRET")
                .unwrap_or_else(|_| "finance-coach-demo-secret-0123456789".to_owned()),
            base_url: var("COACH_BASE_URL", "http://127.0.0.1:3000")
                .trim_end_matches('/')
                .to_owned(),
            audience: var("COACH_AUDIENCE", "https://api.finance-coach.example"),
            roles_claim: var("COACH_ROLES_CLAIM", "https://finance-coach.example/roles"),
            listen: var("COACH_LISTEN", "127.0.0.1:3000"),
            database: var("COACH_DATABASE", "sqlite://finance-coach.db"),
        })
    }

    fn secure_cookies(&self) -> bool {
        self.base_url.starts_with("https://")
    }
}

/// Shared state.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub db: data::Db,
    pub oidc: auth::Oidc,
    pub verifier: portcullis_verify::Verifier,
    pub pages: pages::Pages,
    pub http: reqwest::Client,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl FromRef<AppState> for portcullis_verify::Verifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        // Pages
        .route("/", get(pages::home))
        .route("/dashboard", get(pages::dashboard))
        .route("/admin", get(pages::admin))
        .route("/static/{file}", get(pages::asset))
        .route("/health", get(|| async { "ok" }))
        // Login with Portcullis
        .route("/login", get(auth::login))
        .route("/callback", get(auth::callback))
        .route("/logout", post(auth::logout))
        // The page's own calls, with the session's access token
        .route("/bff/summary", get(api::bff_summary))
        // The JSON API, for any client holding an access token
        .route("/api/transactions", get(api::list_transactions))
        .route("/api/budgets", get(api::list_budgets))
        .route("/api/summary", get(api::summary))
        .route("/api/admin/overview", get(api::admin_overview))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            pages::security_headers,
        ))
        .with_state(state)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config::from_env()?;
    let db = data::Db::open(&config.database)
        .await
        .with_context(|| format!("opening {}", config.database))?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let oidc = auth::Oidc::discover(&config, http.clone())
        .await
        .with_context(|| format!("discovering {}", config.issuer))?;
    let verifier = portcullis_verify::Verifier::with_client(
        portcullis_verify::Options::new(&config.issuer, &config.audience),
        http.clone(),
    );
    let listen = config.listen.clone();
    let state = AppState(Arc::new(Inner {
        config,
        db,
        oidc,
        verifier,
        pages: pages::Pages::new()?,
        http,
    }));
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "the finance coach is listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
