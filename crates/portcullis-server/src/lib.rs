//! The Portcullis server: the axum application (router, handlers, pages, errors),
//! configuration, telemetry, and start-up shared by the `portcullis` binary and the tests.

pub mod audit;
pub mod client_ip;
pub mod config;
pub mod cors;
pub mod errors;
pub mod handlers;
pub mod headers;
pub mod identity;
pub mod log_stream;
pub mod mailer;
pub mod management_api;
pub mod pages;
pub mod panics;
pub mod ratelimit;
pub mod router;
pub mod state;
pub mod telemetry;

use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use portcullis_core::clock::{Clock, SystemClock};
use portcullis_core::passwords::PasswordPool;
use portcullis_core::service::Portcullis;
use portcullis_store::SqlStore;
use state::{AppState, Inner};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| PrometheusBuilder::new().install_recorder().ok())
        .clone()
}

/// Connects the store, loads the master key and keys, and builds the services.
pub async fn open_core(
    settings: &config::Settings,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Arc<Portcullis>> {
    let store = SqlStore::connect(&settings.database)
        .await
        .with_context(|| format!("opening the {} database", backend_name(&settings.database)))?;
    let master = settings.load_master_key()?;
    let core = Portcullis::start(
        Arc::new(store),
        clock,
        Arc::new(master),
        PasswordPool::sized_to_cores(),
        portcullis_core::service::Settings::new(&settings.issuer),
    )
    .await
    .context("preparing the tenant and its signing keys")?;
    let mut core = core;
    if let Some(path) = &settings.breached_passwords_file {
        let list = portcullis_core::protection::breached::BreachedList::with_file(path)
            .with_context(|| format!("reading the breached password list {}", path.display()))?;
        core = core.with_breached_list(list);
    }
    Ok(Arc::new(core))
}

fn backend_name(url: &str) -> &'static str {
    portcullis_store::Backend::of_url(url).map_or("configured", portcullis_store::Backend::product)
}

/// Settings of the HTTP layer.
#[derive(Clone, Debug, Default)]
pub struct HttpOptions {
    /// Templates overriding the built-in pages and emails.
    pub templates_dir: Option<PathBuf>,
    /// Peers whose `X-Forwarded-For` is believed (none by default).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub rate_limits: ratelimit::RateLimits,
}

/// Builds the HTTP application around the services.
pub fn app(core: Arc<Portcullis>, templates_dir: Option<PathBuf>) -> anyhow::Result<axum::Router> {
    app_with(
        core,
        HttpOptions {
            templates_dir,
            ..HttpOptions::default()
        },
    )
}

/// Builds the HTTP application with explicit HTTP settings.
pub fn app_with(core: Arc<Portcullis>, options: HttpOptions) -> anyhow::Result<axum::Router> {
    Ok(router::router(app_state(core, options)?))
}

/// The state every handler gets, for the services and these HTTP settings.
pub fn app_state(core: Arc<Portcullis>, options: HttpOptions) -> anyhow::Result<AppState> {
    let secure_cookies = core.settings().issuer.starts_with("https://");
    let pages = pages::Pages::new(options.templates_dir).context("loading page templates")?;
    Ok(AppState(Arc::new(Inner {
        core,
        pages,
        secure_cookies,
        metrics: metrics_handle(),
        trusted_proxies: options.trusted_proxies,
        rate_limits: options.rate_limits,
    })))
}

/// Runs `portcullis serve` until SIGTERM or Ctrl-C, then drains in-flight requests.
pub async fn serve(settings: config::Settings) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    panics::install_hook();
    let core = open_core(&settings, Arc::new(SystemClock)).await?;
    // The dummy hash (one argon2id run) is computed beside start-up rather than before it;
    // a login arriving first waits for the same computation, so timings stay equal.
    tokio::spawn({
        let passwords = core.password_pool();
        async move { passwords.warm_up().await }
    });
    let mailer = mailer::ServerMailer::new(
        settings.smtp_url.as_deref(),
        &settings.email_from,
        settings.outbox_dir.clone(),
        settings.templates_dir.clone(),
        &settings.issuer,
    )?;
    let core = Arc::new(
        Arc::try_unwrap(core)
            .map_err(|_| anyhow::anyhow!("the services are shared before start"))?
            .with_mailer(Arc::new(mailer))
            .with_batched_audit(),
    );
    let app = app_with(
        Arc::clone(&core),
        HttpOptions {
            templates_dir: settings.templates_dir.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            rate_limits: settings.rate_limits.clone(),
        },
    )?;
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let background = tokio::spawn(housekeeping(Arc::clone(&core)));
    let streams = tokio::spawn(log_stream::run(
        Arc::clone(&core),
        log_stream::http_client()?,
        Duration::from_secs(5),
    ));
    tracing::info!(
        address = %addr,
        issuer = %core.settings().issuer,
        backend = core.backend(),
        tls = settings.tls.is_some(),
        startup_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "portcullis is listening"
    );
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    match &settings.tls {
        None => {
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown_signal())
                .await
                .context("serving HTTP")?;
        }
        Some((cert, key)) => {
            let _ = rustls_provider();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .context("loading the TLS certificate and key")?;
            let handle = axum_server::Handle::new();
            let shutdown = handle.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                shutdown.graceful_shutdown(Some(Duration::from_secs(30)));
            });
            let std_listener = listener.into_std()?;
            axum_server::from_tcp_rustls(std_listener, config)?
                .handle(handle)
                .serve(service)
                .await
                .context("serving HTTPS")?;
        }
    }
    background.abort();
    streams.abort();
    // Queued audit events reach the database before the process exits.
    core.flush_audit().await;
    tracing::info!("portcullis stopped cleanly");
    Ok(())
}

fn rustls_provider() -> Result<(), Arc<rustls::crypto::CryptoProvider>> {
    rustls::crypto::aws_lc_rs::default_provider().install_default()
}

/// Periodic work: pick up key rotations made elsewhere (every 5 s, so a key the CLI adds is
/// published by every replica within seconds), and purge expired single-use rows (every
/// 10 minutes).
async fn housekeeping(core: Arc<Portcullis>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        if let Err(e) = core.reload_keys().await {
            tracing::error!(error = %portcullis_core::error::report(&e), "reloading signing keys failed");
        }
        if n.is_multiple_of(120) {
            match core.purge_expired().await {
                Ok(rows) => tracing::debug!(rows, "purged expired rows"),
                Err(e) => {
                    tracing::error!(error = %portcullis_core::error::report(&e), "purging expired rows failed")
                }
            }
            match core.purge_logs().await {
                Ok(rows) => tracing::debug!(rows, "purged log events past retention"),
                Err(e) => {
                    tracing::error!(error = %portcullis_core::error::report(&e), "purging log events failed")
                }
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; draining in-flight requests");
}
