//! The benchmark command (`scripts/bench.sh` builds and runs it).
//!
//! `portcullis-bench run` measures, in one run on this machine:
//! - the limits: raw signing rates of our JOSE library per algorithm and the argon2id hash
//!   time (in a child pinned to core 0), and the HTTP floor (`/health` through the server);
//! - client-credentials grants/s per algorithm, and JWKS and discovery requests/s;
//! - complete password logins/s and rotating refresh-token grants/s (`drive`);
//! - memory (resident set at idle and its peak under load) and the time from process start
//!   to the first 200 on `/health`.
//!
//! The server runs pinned to core 0 and the load generator (`wrk`, from Debian) to core 1,
//! over keep-alive connections. The report (`docs/benchmarks.md`) gives each figure, the
//! limit it is held against and their ratio. No figure is asserted: targets live in the
//! report.

mod drive;
mod enumeration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use portcullis_crypto::jose::{SigningAlg, SigningKey};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Portcullis benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Measures signing rates and the argon2id hash time in this process; prints JSON.
    Limits {
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// Drives logins or refresh-token grants against a running server; prints JSON.
    Drive {
        #[arg(long)]
        issuer: String,
        /// `login` or `refresh`.
        #[arg(long)]
        mode: String,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long, default_value_t = 4)]
        workers: usize,
        #[arg(long, default_value_t = USERS)]
        users: usize,
    },
    /// Prints the bench tenant (for `portcullis apply`), to profile a server by hand.
    Tenant,
    /// Seeds `users` bench users into `database` (after `portcullis apply` of the tenant),
    /// to profile a server by hand.
    Seed {
        #[arg(long)]
        database: String,
        #[arg(long, default_value_t = USERS)]
        users: usize,
    },
    /// Runs every measurement and writes the report.
    Run(RunOptions),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Limits {
    /// Signatures per second on one core, by algorithm.
    sign_per_sec: Vec<(String, f64)>,
    /// Milliseconds per argon2id hash at the configured parameters.
    argon2_ms: f64,
}

impl Limits {
    /// Each figure's mean over two measurements.
    fn mean(&self, other: &Limits) -> Limits {
        Limits {
            sign_per_sec: self
                .sign_per_sec
                .iter()
                .zip(&other.sign_per_sec)
                .map(|((alg, a), (_, b))| (alg.clone(), f64::midpoint(*a, *b)))
                .collect(),
            argon2_ms: f64::midpoint(self.argon2_ms, other.argon2_ms),
        }
    }
}

/// Runs `limits` in a child pinned to core 0, `seconds` per measurement.
fn measure_limits_child(me: &Path, seconds: f64) -> anyhow::Result<Limits> {
    let out = Command::new("taskset")
        .args(["-c", "0"])
        .arg(me)
        .args(["limits", "--seconds", &seconds.to_string()])
        .output()
        .context("running the limits child")?;
    if !out.status.success() {
        bail!("limits failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The limits at one moment: the signing rates and argon2id time (a child on core 0) and
/// the HTTP floor (`/health` through the idle server). This machine's speed drifts by a
/// fifth within minutes, so each load is held against the limits measured just before and
/// just after it.
#[derive(Clone, Debug)]
struct Local {
    floor_rps: f64,
    limits: Limits,
}

impl Local {
    fn mean(&self, other: &Local) -> Local {
        Local {
            floor_rps: f64::midpoint(self.floor_rps, other.floor_rps),
            limits: self.limits.mean(&other.limits),
        }
    }

    fn sign_rate(&self, alg: &str) -> f64 {
        self.limits
            .sign_per_sec
            .iter()
            .find(|(a, _)| a == alg)
            .map_or(f64::NAN, |(_, r)| *r)
    }

    /// A token grant's limit: `1 / (HTTP floor time + signing time)`.
    fn grant(&self, alg: &str) -> f64 {
        1.0 / (1.0 / self.floor_rps + 1.0 / self.sign_rate(alg))
    }

    /// A password login's limit: `1 / (argon2id time + two RS256 signing times + three
    /// HTTP floor times)`.
    fn login(&self) -> f64 {
        1.0 / (self.limits.argon2_ms / 1000.0
            + 2.0 / self.sign_rate("RS256")
            + 3.0 / self.floor_rps)
    }
}

/// The limits now: `seconds` of `/health` (the floor), then the child's signing rates and
/// argon2id time, a quarter of `seconds` each.
fn measure_local(me: &Path, health: &str, seconds: u64, connections: u32) -> anyhow::Result<Local> {
    let floor = wrk(health, None, seconds, connections)?;
    if floor.non_2xx > 0 {
        bail!("/health failed while measuring the floor");
    }
    Ok(Local {
        floor_rps: floor.rps,
        limits: measure_limits_child(me, seconds as f64 / 4.0)?,
    })
}

/// Measures the limits between loads, against the server at `issuer`.
struct Brackets {
    me: PathBuf,
    health: String,
    seconds: u64,
    connections: u32,
    /// The latest measurement, taken after the last load.
    last: Local,
}

impl Brackets {
    /// Takes the first measurement. Each one lasts about `2 * seconds`.
    fn start(issuer: &str, seconds: u64, connections: u32) -> anyhow::Result<Self> {
        let me = std::env::current_exe()?;
        let health = format!("{issuer}health");
        let last = measure_local(&me, &health, seconds, connections)?;
        Ok(Brackets {
            me,
            health,
            seconds,
            connections,
            last,
        })
    }

    /// Measures again after a load; answers the limits around it (the mean of the
    /// measurements before and after).
    fn close(&mut self) -> anyhow::Result<Local> {
        let now = measure_local(&self.me, &self.health, self.seconds, self.connections)?;
        let around = self.last.mean(&now);
        self.last = now;
        Ok(around)
    }
}

fn measure_limits(seconds: f64) -> anyhow::Result<Limits> {
    let mut sign_per_sec = Vec::new();
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1/", "sub": "client@clients", "aud": "https://api.example",
        "iat": 1_800_000_000, "exp": 1_800_086_400, "scope": "read:things", "gty": "client-credentials",
        "azp": "client", "jti": "0123456789abcdef0123456789abcdef",
    });
    for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
        let (key, _) = SigningKey::generate(alg)?;
        // Warm up, then count whole signatures in the window.
        for _ in 0..50 {
            key.sign_jwt(&claims)?;
        }
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed().as_secs_f64() < seconds {
            for _ in 0..64 {
                key.sign_jwt(&claims)?;
            }
            n += 64;
        }
        sign_per_sec.push((
            alg.as_str().to_owned(),
            n as f64 / start.elapsed().as_secs_f64(),
        ));
    }
    // As the server's hashing threads do: the first hash takes the working memory, the
    // next ones reuse it. Whole hashes in the window, at least eight.
    let _ = portcullis_crypto::password::hash("a warm-up passphrase");
    let start = Instant::now();
    let mut runs = 0u32;
    while runs < 8 || start.elapsed().as_secs_f64() < seconds {
        let _ = portcullis_crypto::password::hash(&format!("a long benchmark passphrase {runs}"));
        runs += 1;
    }
    let argon2_ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(runs);
    Ok(Limits {
        sign_per_sec,
        argon2_ms,
    })
}

const M2M_SECRET: &str = "bench-secret-0123456789abcdefghijklmnop";
/// Users in the main database (seeded in bulk, see `seed_users`).
const USERS: usize = 1_000;

fn tenant_yaml() -> String {
    let mut y = String::from(
        "clients:\n  - name: Bench Machine\n    app_type: non_interactive\n    client_id: bench-m2m\n",
    );
    let _ = writeln!(y, "    client_secret: {M2M_SECRET}");
    let _ = write!(
        y,
        "  - name: Bench Web\n    app_type: regular_web\n    client_id: {}\n    client_secret: {}\n    callbacks: [\"{}\"]\n    grant_types: [authorization_code, refresh_token]\n    refresh_token: {{rotation_type: rotating}}\n",
        drive::WEB_CLIENT,
        drive::WEB_SECRET,
        drive::CALLBACK
    );
    y.push_str("resourceServers:\n");
    for (name, alg) in [("rs", "RS256"), ("es", "ES256"), ("ed", "EdDSA")] {
        let _ = write!(
            y,
            "  - name: Bench {alg}\n    identifier: https://{name}.bench.example\n    signing_alg: {alg}\n    allow_offline_access: true\n    scopes: [{{value: read:things}}]\n"
        );
    }
    // Many failed logins come from this one IP (the enumeration timing): suspicious-IP
    // throttling stays on, with room for them.
    y.push_str(
        "attackProtection:\n  suspiciousIpThrottling:\n    stage:\n      pre-login: {max_attempts: 2500, rate: 34560}\n",
    );
    y.push_str("clientGrants:\n");
    for name in ["rs", "es", "ed"] {
        let _ = write!(
            y,
            "  - client_id: bench-m2m\n    audience: https://{name}.bench.example\n    scope: [read:things]\n"
        );
    }
    y
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory(pid: u32) -> (u64, u64) {
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

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Load {
    rps: f64,
    non_2xx: u64,
    p99_ms: f64,
}

/// Runs `wrk` on core 1 against `url`, with an optional Lua script.
fn wrk(url: &str, script: Option<&Path>, seconds: u64, connections: u32) -> anyhow::Result<Load> {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "1", "wrk", "-t1", "--latency"])
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"));
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let out = cmd
        .arg(url)
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let number = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().last().map(str::to_owned))
    };
    let rps: f64 = number("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .context("wrk printed no Requests/sec")?;
    let non_2xx = number("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let p99_ms = number("99%").map_or(0.0, |v| duration_ms(&v));
    Ok(Load {
        rps,
        non_2xx,
        p99_ms,
    })
}

/// `1000000` as `1,000,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// wrk's latency (`1.23ms`, `850.00us`, `1.02s`) in milliseconds.
fn duration_ms(v: &str) -> f64 {
    let (num, factor) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().map_or(0.0, |n| n * factor)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

#[derive(clap::Args, Debug)]
struct RunOptions {
    /// The release `portcullis` binary.
    #[arg(long)]
    portcullis: PathBuf,
    /// Where the markdown report goes.
    #[arg(long, default_value = "docs/benchmarks.md")]
    out: PathBuf,
    /// Seconds per load phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Keep-alive connections of the load generator.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Users in the large database of the scale phases.
    #[arg(long, default_value_t = 1_000_000)]
    large_users: usize,
    /// A PostgreSQL server for the scale phases (a database is created and dropped).
    #[arg(long, env = "PORTCULLIS_BENCH_POSTGRES_URL")]
    postgres: Option<String>,
    /// Says that the PostgreSQL server runs pinned to core 0 (for the report).
    #[arg(long, env = "PORTCULLIS_BENCH_POSTGRES_PINNED")]
    postgres_pinned: bool,
}

/// Adds `count` users (`user{i}@bench.example`, all with `drive::USER_PASSWORD`) in bulk
/// and answers the seconds it took. They share one argon2id hash, computed once: hashing a
/// million passwords would take hours and measures nothing the login phase does not.
async fn seed_users(database: &str, count: usize) -> anyhow::Result<f64> {
    use portcullis_core::store::Store as _;
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
const SEED_BATCH: usize = 10_000;

/// An empty PostgreSQL database named `name` on the server of `url`; answers its URL.
async fn fresh_pg_database(url: &str, name: &str) -> anyhow::Result<String> {
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

async fn drop_pg_database(url: &str, name: &str) {
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
struct Setup {
    server: Server,
    issuer: String,
    seed_s: f64,
}

fn with_common(c: &mut Command, database: &str, issuer: &str, dir: &Path) {
    c.args(["--database", database, "--issuer", issuer])
        .arg("--data-dir")
        .arg(dir)
        .env("PORTCULLIS_LOG_FORMAT", "json")
        .env("RUST_LOG", "warn");
}

/// Applies the bench tenant to `database` and seeds `users` users; answers the port the
/// server will listen on and the seconds the seeding took.
async fn prepare(
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
async fn start(
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

async fn set_up(
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

/// Runs the load driver pinned to core 1.
fn drive_child(
    issuer: &str,
    mode: &str,
    workers: usize,
    seconds: u64,
    users: usize,
) -> anyhow::Result<drive::DriveResult> {
    let out = Command::new("taskset")
        .args(["-c", "1"])
        .arg(std::env::current_exe()?)
        .args(["drive", "--issuer", issuer, "--mode", mode])
        .args(["--workers", &workers.to_string()])
        .args(["--seconds", &seconds.to_string()])
        .args(["--users", &users.to_string()])
        .output()
        .context("running the load driver")?;
    if !out.status.success() {
        bail!(
            "the {mode} driver failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn basic_m2m() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("bench-m2m:{M2M_SECRET}"))
}

/// Client-credentials grants for the API `name` (`rs`, `es`, `ed`), checked once, then
/// loaded with wrk.
async fn client_credentials(
    dir: &Path,
    issuer: &str,
    name: &str,
    seconds: u64,
    connections: u32,
) -> anyhow::Result<Load> {
    let basic = basic_m2m();
    let body = format!("grant_type=client_credentials&audience=https%3A%2F%2F{name}.bench.example");
    let first = reqwest::Client::new()
        .post(format!("{issuer}oauth/token"))
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await?;
    if !first.status().is_success() {
        bail!("client credentials for {name}: {}", first.text().await?);
    }
    let script = dir.join(format!("cc-{name}.lua"));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = \"{body}\"\nwrk.headers[\"Content-Type\"] = \"application/x-www-form-urlencoded\"\nwrk.headers[\"Authorization\"] = \"Basic {basic}\"\n"
        ),
    )?;
    wrk(
        &format!("{issuer}oauth/token"),
        Some(&script),
        seconds,
        connections,
    )
}

/// One row of the scale table: each figure with its ratio to the limit measured around it.
struct ScaleRow {
    backend: &'static str,
    users: usize,
    seed_s: f64,
    client_credentials: (f64, f64),
    logins: (f64, f64),
    refreshes: (f64, f64),
    errors: u64,
}

/// Seconds of each limit measurement between loads.
fn bracket_seconds(seconds: u64) -> u64 {
    (seconds / 5).max(1)
}

async fn scale_row(
    portcullis: &Path,
    dir: &Path,
    backend: &'static str,
    database: &str,
    users: usize,
    seconds: u64,
    connections: u32,
) -> anyhow::Result<ScaleRow> {
    let setup = set_up(portcullis, dir, database, users).await?;
    let mut b = Brackets::start(&setup.issuer, bracket_seconds(seconds), connections)?;
    let cc = client_credentials(dir, &setup.issuer, "es", seconds, connections).await?;
    let cc_limit = b.close()?.grant("ES256");
    let login = drive_child(&setup.issuer, "login", 4, seconds, users)?;
    let login_limit = b.close()?.login();
    let refresh = drive_child(&setup.issuer, "refresh", 16, seconds, users)?;
    let refresh_limit = b.close()?.grant("RS256");
    drop(setup.server);
    Ok(ScaleRow {
        backend,
        users,
        seed_s: setup.seed_s,
        client_credentials: (cc.rps, cc.rps / cc_limit),
        logins: (login.per_sec, login.per_sec / login_limit),
        refreshes: (refresh.per_sec, refresh.per_sec / refresh_limit),
        errors: cc.non_2xx + login.errors + refresh.errors,
    })
}

#[allow(clippy::too_many_lines)]
async fn run(options: RunOptions) -> anyhow::Result<()> {
    let RunOptions {
        portcullis,
        out,
        seconds,
        connections,
        large_users,
        postgres,
        postgres_pinned,
    } = options;
    let started = time::OffsetDateTime::now_utc();
    // 1. A SQLite database with the bench tenant and 1,000 users, the server on core 0.
    let root = std::env::temp_dir().join(format!("portcullis-bench-{}", std::process::id()));
    let dir = root.join("main");
    std::fs::create_dir_all(&dir)?;
    let db = format!("sqlite://{}/bench.db", dir.display());
    let (port, _) = prepare(&portcullis, &dir, &db, USERS).await?;
    let (server, issuer, startup_ms) = start(&portcullis, &dir, &db, port).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = server.child.id();
    let (idle_kib, _) = memory(pid);

    // 2. Loads without a limit of their own, each response checked by a first call and
    // wrk's non-2xx count: the floor, then the static answers and /userinfo against it.
    let mut phases: Vec<(String, Load, u64)> = Vec::new();
    let health = format!("{issuer}health");
    let floor = wrk(&health, None, seconds, connections)?;
    phases.push(("GET /health (HTTP floor)".into(), floor, memory(pid).1));
    for (label, path) in [
        ("GET /.well-known/jwks.json", ".well-known/jwks.json"),
        (
            "GET /.well-known/openid-configuration",
            ".well-known/openid-configuration",
        ),
    ] {
        let load = wrk(&format!("{issuer}{path}"), None, seconds, connections)?;
        phases.push((label.into(), load, memory(pid).1));
    }
    // /userinfo with a user's access token from one login.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let tokens = drive::login(
        &http,
        &issuer,
        "user0@bench.example",
        0,
        "openid profile email offline_access",
    )
    .await?;
    let access = tokens["access_token"].as_str().unwrap_or_default();
    let info = http
        .get(format!("{issuer}userinfo"))
        .bearer_auth(access)
        .send()
        .await?;
    if !info.status().is_success() {
        bail!("/userinfo answered {}", info.status());
    }
    let script = dir.join("userinfo.lua");
    std::fs::write(
        &script,
        format!("wrk.headers[\"Authorization\"] = \"Bearer {access}\"\n"),
    )?;
    let load = wrk(
        &format!("{issuer}userinfo"),
        Some(&script),
        seconds,
        connections,
    )?;
    phases.push(("GET /userinfo".into(), load, memory(pid).1));

    // 3. Grants and logins, each held against the limits measured just before and just
    // after it. Logins and refreshes are driven from core 1 by this binary.
    let mut b = Brackets::start(&issuer, bracket_seconds(seconds), connections)?;
    let first = b.last.clone();
    // Client credentials per algorithm: (algorithm, load, peak KiB, limits around it).
    let mut held: Vec<(&str, Load, u64, Local)> = Vec::new();
    for (name, alg) in [("rs", "RS256"), ("es", "ES256"), ("ed", "EdDSA")] {
        let load = client_credentials(&dir, &issuer, name, seconds, connections).await?;
        let hwm = memory(pid).1;
        held.push((alg, load, hwm, b.close()?));
    }
    let mut driven: Vec<(String, drive::DriveResult, u64, Local)> = Vec::new();
    for (mode, workers, label) in [
        ("login", 4, "complete password logins"),
        ("refresh", 16, "refresh_token grants (rotating)"),
    ] {
        let result = drive_child(&issuer, mode, workers, seconds, USERS)?;
        let hwm = memory(pid).1;
        driven.push((label.to_owned(), result, hwm, b.close()?));
    }
    let last = b.last.clone();
    let (_, peak_kib) = memory(pid);
    let attempts = if seconds <= 1 { 20 } else { 200 };
    let enumeration = enumeration::measure(&issuer, attempts).await?;
    drop(server);

    // 4. Scale: 1,000 and `large_users` users, on SQLite and on PostgreSQL.
    let mut scale = Vec::new();
    for users in [USERS, large_users] {
        let d = root.join(format!("sqlite-{users}"));
        let db = format!("sqlite://{}/bench.db", d.display());
        scale.push(scale_row(&portcullis, &d, "SQLite", &db, users, seconds, connections).await?);
    }
    if let Some(url) = &postgres {
        for users in [USERS, large_users] {
            let name = format!("portcullis_bench_{}_{users}", std::process::id());
            let db = fresh_pg_database(url, &name).await?;
            let d = root.join(format!("pg-{users}"));
            let row = scale_row(
                &portcullis,
                &d,
                "PostgreSQL",
                &db,
                users,
                seconds,
                connections,
            )
            .await;
            drop_pg_database(url, &name).await;
            scale.push(row?);
        }
    }
    let _ = std::fs::remove_dir_all(&root);

    // 5. The report.
    let floor_s = 1.0 / phases[0].1.rps;
    let mut report = String::new();
    let _ = writeln!(report, "# Benchmarks\n");
    let _ = writeln!(
        report,
        "Generated by `scripts/bench.sh` on {} ({}). The server runs pinned to core 0 and \
         `wrk` to core 1, over {connections} keep-alive connections, {seconds} s per phase, \
         against a release build on SQLite with {} users. Every figure is from this one run; ratios compare \
         figures measured side by side, so they hold better than the absolute numbers on a \
         noisy machine.\n",
        started.date(),
        machine(),
        thousands(USERS)
    );
    let _ = writeln!(report, "## Limits of this machine (core 0)\n");
    let _ = writeln!(
        report,
        "The limits are measured again between loads ({} s of `/health` through the idle \
         server, then the signing rates and the argon2id time in a child on core 0), and each \
         grant or login is held against the mean of the measurements just before and just \
         after it. This machine's speed drifts within minutes; the first and last \
         measurements show by how much.\n",
        bracket_seconds(seconds)
    );
    let _ = writeln!(report, "| limit | first | last |\n|---|---|---|");
    for ((alg, a), (_, z)) in first
        .limits
        .sign_per_sec
        .iter()
        .zip(&last.limits.sign_per_sec)
    {
        let _ = writeln!(
            report,
            "| {alg} signatures/s (aws-lc-rs, key parsed once) | {a:.0} | {z:.0} |"
        );
    }
    let _ = writeln!(
        report,
        "| argon2id hash (m=19 MiB, t=2, p=1) | {:.1} ms | {:.1} ms |",
        first.limits.argon2_ms, last.limits.argon2_ms
    );
    let _ = writeln!(
        report,
        "| HTTP floor: `GET /health` requests/s | {:.0} | {:.0} |\n",
        first.floor_rps, last.floor_rps
    );
    let _ = writeln!(report, "## Throughput against the limits\n");
    let _ = writeln!(
        report,
        "| load | requests/s | p99 | non-2xx | limit | ratio | target |\n|---|---|---|---|---|---|---|"
    );
    for (label, load, _) in &phases {
        let (limit, ratio, target) = if label.contains("/health") {
            ("—".to_owned(), "—".to_owned(), "(the floor)")
        } else {
            (
                format!("{:.0}", 1.0 / floor_s),
                format!("{:.2}", load.rps * floor_s),
                "—",
            )
        };
        let _ = writeln!(
            report,
            "| {label} | {:.0} | {:.2} ms | {} | {limit} | {ratio} | {target} |",
            load.rps, load.p99_ms, load.non_2xx
        );
    }
    for (alg, load, _, around) in &held {
        let limit = around.grant(alg);
        let _ = writeln!(
            report,
            "| client_credentials {alg} | {:.0} | {:.2} ms | {} | {limit:.0} | {:.2} | ≥ 0.85 |",
            load.rps,
            load.p99_ms,
            load.non_2xx,
            load.rps / limit
        );
    }
    for (label, result, _, around) in &driven {
        let (limit, target) = if label.contains("login") {
            (around.login(), "≥ 0.85")
        } else {
            (around.grant("RS256"), "≥ 0.7")
        };
        let _ = writeln!(
            report,
            "| {label} (RS256) | {:.0} | — | {} | {limit:.0} | {:.2} | {target} |",
            result.per_sec,
            result.errors,
            result.per_sec / limit
        );
    }
    let jwks = phases
        .iter()
        .find(|(l, _, _)| l.contains("jwks"))
        .map_or(1.0, |(_, l, _)| l.rps);
    let strict: Vec<String> = held
        .iter()
        .map(|(alg, load, _, around)| {
            format!(
                "{alg} {:.2}",
                load.rps * (1.0 / jwks + 1.0 / around.sign_rate(alg))
            )
        })
        .collect();
    let _ = writeln!(
        report,
        "\n`/health` answers after a database ping (it is the readiness check a load balancer \
         calls), which costs about as much as the HTTP exchange itself. Held against the \
         fastest static answer instead (JWKS, {jwks:.0}/s), the client-credentials ratios \
         would be {}.",
        strict.join(", ")
    );
    let _ = writeln!(
        report,
        "\nThe limit of a token grant is `1 / (HTTP floor time + signing time)` on one core; a \
         password login's is `1 / (argon2id time + two signing times + 3 HTTP floor times)`, \
         each from the limits measured around that load. JWKS, discovery and `/userinfo` are \
         held against the floor of the `/health` phase. Logins and refreshes are driven \
         by `portcullis-bench drive` (4 and 16 concurrent workers), which checks every \
         response; the errors column counts wrong answers.\n"
    );
    write_enumeration(&mut report, &enumeration);
    let _ = writeln!(report, "## Memory and start-up\n");
    let _ = writeln!(report, "| figure | value | target |\n|---|---|---|");
    let _ = writeln!(
        report,
        "| resident set at idle, after start (before any password hash) | {:.1} MiB | ≤ 20 MiB |",
        idle_kib as f64 / 1024.0
    );
    let _ = writeln!(
        report,
        "| peak resident set under these loads | {:.1} MiB | ≤ 100 MiB |",
        peak_kib as f64 / 1024.0
    );
    let _ = writeln!(
        report,
        "| start to first 200 on `/health` (existing SQLite database) | {startup_ms:.0} ms | ≤ 50 ms |"
    );
    let _ = writeln!(
        report,
        "\nA password hashing thread keeps its 19 MiB of argon2id memory once it has hashed \
         (one thread per core), so a server that has served logins idles that much higher."
    );
    let _ = writeln!(
        report,
        "\nPeak after each phase (KiB): {}.",
        phases
            .iter()
            .map(|(l, _, hwm)| format!("{l}: {hwm}"))
            .chain(
                held.iter()
                    .map(|(alg, _, hwm, _)| format!("client_credentials {alg}: {hwm}")),
            )
            .chain(driven.iter().map(|(l, _, hwm, _)| format!("{l}: {hwm}")))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let _ = writeln!(
        report,
        "\n## Scale: 1,000 and {} users\n",
        thousands(large_users)
    );
    let _ = writeln!(
        report,
        "Each row is a fresh database with the bench tenant and that many users, seeded in bulk \
         (one shared argon2id hash), and a fresh server. Logins pick users all over the table. \
         Each figure is followed by its ratio to the limit measured around it, as above. The \
         last column compares those ratios with the same backend's 1,000-user ones, so the \
         machine's drift between rows cancels out (target: within 10%, so ≥ 0.90).\n"
    );
    let _ = writeln!(
        report,
        "| backend | users | seeding | client_credentials ES256/s | logins/s | refresh grants/s | errors | against 1,000 users (cc / logins / refresh) |\n|---|---|---|---|---|---|---|---|"
    );
    for row in &scale {
        let base = scale
            .iter()
            .find(|b| b.backend == row.backend && b.users == USERS);
        let ratio = match base {
            Some(b) if row.users != USERS => format!(
                "{:.2} / {:.2} / {:.2}",
                row.client_credentials.1 / b.client_credentials.1,
                row.logins.1 / b.logins.1,
                row.refreshes.1 / b.refreshes.1
            ),
            _ => "—".to_owned(),
        };
        let _ = writeln!(
            report,
            "| {} | {} | {:.1} s | {:.0} ({:.2}) | {:.1} ({:.2}) | {:.0} ({:.2}) | {} | {ratio} |",
            row.backend,
            thousands(row.users),
            row.seed_s,
            row.client_credentials.0,
            row.client_credentials.1,
            row.logins.0,
            row.logins.1,
            row.refreshes.0,
            row.refreshes.1,
            row.errors
        );
    }
    if postgres.is_none() {
        let _ = writeln!(
            report,
            "\nPostgreSQL was not measured: no server was given (`--postgres` or \
             `PORTCULLIS_BENCH_POSTGRES_URL`)."
        );
    } else if postgres_pinned {
        let _ = writeln!(
            report,
            "\nPostgreSQL runs on this machine, pinned to core 0 beside the server (it started \
             with `scripts/bench.sh`), over TCP on loopback."
        );
    } else {
        let _ = writeln!(
            report,
            "\nPostgreSQL runs on this machine and is not pinned: it shares both cores with \
             the server and the load generator, so its rows compare with each other, not with \
             SQLite's."
        );
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, &report)?;
    println!("{report}");
    if phases.iter().any(|(_, l, _)| l.non_2xx > 0)
        || held.iter().any(|(_, l, _, _)| l.non_2xx > 0)
        || driven.iter().any(|(_, r, _, _)| r.errors > 0)
        || scale.iter().any(|r| r.errors > 0)
    {
        let first = driven
            .iter()
            .find_map(|(_, r, _, _)| r.first_error.clone())
            .unwrap_or_default();
        bail!("some responses were wrong (see the report): {first}");
    }
    Ok(())
}

/// The report's section on refused logins: an unknown email against a wrong password.
fn write_enumeration(report: &mut String, t: &enumeration::Timings) {
    use enumeration::quantile;
    let _ = writeln!(report, "## Unknown email versus wrong password\n");
    let _ = writeln!(
        report,
        "{} refused logins of each kind, alternating, one at a time from core 1: a wrong \
         password for an existing user, and an email with no account (verified against a \
         dummy argon2id hash). Each is the time of the form post, seen by the client. The \
         answers are byte-identical apart from ids (`tests/it/attacks.rs`).\n",
        t.wrong_password.len()
    );
    let _ = writeln!(report, "| attempt | median | p90 |\n|---|---|---|");
    for (label, samples) in [
        ("wrong password, existing user", &t.wrong_password),
        ("unknown email", &t.unknown_email),
    ] {
        let _ = writeln!(
            report,
            "| {label} | {:.2} ms | {:.2} ms |",
            quantile(samples, 0.5),
            quantile(samples, 0.9)
        );
    }
    let (known, unknown) = (
        quantile(&t.wrong_password, 0.5),
        quantile(&t.unknown_email, 0.5),
    );
    let _ = writeln!(
        report,
        "\nDifference of the medians: {:+.2} ms ({:+.1}% of the wrong-password median); of \
         the p90s: {:+.2} ms.\n",
        unknown - known,
        (unknown - known) / known * 100.0,
        quantile(&t.unknown_email, 0.9) - quantile(&t.wrong_password, 0.9)
    );
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Limits { seconds } => {
            println!("{}", serde_json::to_string(&measure_limits(seconds)?)?);
            Ok(())
        }
        Cmd::Drive {
            issuer,
            mode,
            seconds,
            workers,
            users,
        } => {
            let result = tokio::runtime::Runtime::new()?
                .block_on(drive::drive(&issuer, &mode, seconds, workers, users))?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(())
        }
        Cmd::Tenant => {
            print!("{}", tenant_yaml());
            Ok(())
        }
        Cmd::Seed { database, users } => {
            let seconds = tokio::runtime::Runtime::new()?.block_on(seed_users(&database, users))?;
            eprintln!("seeded {users} users in {seconds:.1} s");
            Ok(())
        }
        Cmd::Run(options) => tokio::runtime::Runtime::new()?.block_on(run(options)),
    }
}
