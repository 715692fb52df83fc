//! The server under test: a database with the bench tenant and its users, `portcullis serve`
//! pinned to core 0, and what the report reads off the process (its memory).

use crate::{drive, tenant_yaml};
use anyhow::{Context, bail};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
pub(crate) fn memory(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub(crate) struct Server {
    pub(crate) child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Adds `count` users (`user{i}@bench.example`, all with `drive::USER_PASSWORD`) in bulk
/// and answers the seconds it took. They share one argon2id hash, computed once: hashing a
/// million passwords would take hours and measures nothing the login phase does not.
pub(crate) async fn seed_users(database: &str, count: usize) -> anyhow::Result<f64> {
    use portcullis_core::store::UserStore as _;
    let store = portcullis_store::SqlStore::connect(database).await?;
    let hash = portcullis_crypto::password::hash(drive::USER_PASSWORD);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let start = Instant::now();
    let mut batch = Vec::with_capacity(SEED_BATCH);
    for i in 0..count {
        batch.push(portcullis_core::model::User {
            tenant_id: "default".to_owned(),
            user_id: format!("auth0|{i:024x}"),
            connection: "Username-Password-Authentication".to_owned(),
            email: format!("user{i}@bench.example"),
            email_verified: true,
            name: format!("user{i}@bench.example"),
            nickname: format!("user{i}"),
            picture: String::new(),
            password_hash: Some(hash.clone()),
            user_metadata: serde_json::json!({}),
            app_metadata: serde_json::json!({}),
            blocked: false,
            created_at: now,
            updated_at: now,
            last_login: None,
            logins_count: 0,
        });
        if batch.len() == SEED_BATCH || i + 1 == count {
            store.insert_users(&batch).await?;
            batch.clear();
        }
    }
    store.close().await;
    Ok(start.elapsed().as_secs_f64())
}

/// Users per transaction while seeding.
pub(crate) const SEED_BATCH: usize = 10_000;

/// An empty PostgreSQL database named `name` on the server of `url`; answers its URL.
pub(crate) async fn fresh_pg_database(url: &str, name: &str) -> anyhow::Result<String> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .context("connecting to PostgreSQL")?;
    // `name` is ours (letters, digits and underscores).
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
    }
    conn.close().await?;
    let mut u = url::Url::parse(url)?;
    u.set_path(&format!("/{name}"));
    Ok(u.to_string())
}

pub(crate) async fn drop_pg_database(url: &str, name: &str) {
    use sqlx::Connection as _;
    if let Ok(mut conn) = sqlx::PgConnection::connect(url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(&mut conn)
        .await;
        let _ = conn.close().await;
    }
}

/// A server on core 0, started on an existing database.
pub(crate) struct Setup {
    pub(crate) server: Server,
    pub(crate) issuer: String,
    pub(crate) seed_s: f64,
}

pub(crate) fn with_common(c: &mut Command, database: &str, issuer: &str, dir: &Path) {
    c.args(["--database", database, "--issuer", issuer])
        .arg("--data-dir")
        .arg(dir)
        .env("PORTCULLIS_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn");
}

/// Applies the bench tenant to `database` and seeds `users` users; answers the port the
/// server will listen on and the seconds the seeding took.
pub(crate) async fn prepare(
    portcullis: &Path,
    dir: &Path,
    database: &str,
    users: usize,
) -> anyhow::Result<(u16, f64)> {
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    let issuer = format!("http://127.0.0.1:{port}/");
    std::fs::write(dir.join("tenant.yaml"), tenant_yaml())?;
    let mut apply = Command::new(portcullis);
    apply.arg("apply");
    with_common(&mut apply, database, &issuer, dir);
    let status = apply
        .arg(dir.join("tenant.yaml"))
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("portcullis apply failed");
    }
    Ok((port, seed_users(database, users).await?))
}

/// Starts `portcullis serve` on core 0 and waits for its first 200 on `/health`.
pub(crate) async fn start(
    portcullis: &Path,
    dir: &Path,
    database: &str,
    port: u16,
) -> anyhow::Result<(Server, String, f64)> {
    let issuer = format!("http://127.0.0.1:{port}/");
    let mut serve = Command::new("taskset");
    serve.args(["-c", "0"]).arg(portcullis).arg("serve");
    with_common(&mut serve, database, &issuer, dir);
    serve
        .args(["--listen", &format!("127.0.0.1:{port}")])
        // Request limits would answer 429 long before the machine's limits.
        .args(["--rate-limits", "token_per_ip=100000000,token_per_client=100000000,management_per_ip=100000000,management_per_client=100000000,login_form_per_ip=100000000,authorize_per_ip=100000000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    let server = Server {
        child: serve.spawn().context("starting portcullis")?,
    };
    let health = format!("{issuer}health");
    loop {
        if let Ok(r) = http.get(&health).send().await
            && r.status().is_success()
        {
            break;
        }
        if t0.elapsed() > Duration::from_secs(20) {
            bail!("portcullis did not become healthy");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok((server, issuer, t0.elapsed().as_secs_f64() * 1000.0))
}

pub(crate) async fn set_up(
    portcullis: &Path,
    dir: &Path,
    database: &str,
    users: usize,
) -> anyhow::Result<Setup> {
    let (port, seed_s) = prepare(portcullis, dir, database, users).await?;
    let (server, issuer, _) = start(portcullis, dir, database, port).await?;
    Ok(Setup {
        server,
        issuer,
        seed_s,
    })
}
