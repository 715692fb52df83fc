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
mod limits;
mod report;
mod server;

use limits::{Brackets, Local, measure_limits};
use report::ScaleRow;
use server::{drop_pg_database, fresh_pg_database, memory, prepare, seed_users, set_up, start};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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

/// Loads without a limit of their own, each response checked by a first call and wrk's
/// non-2xx count: the floor, then the static answers and `/userinfo` against it. Each with
/// the server's peak memory after it.
async fn unlimited_loads(
    issuer: &str,
    dir: &Path,
    pid: u32,
    seconds: u64,
    connections: u32,
) -> anyhow::Result<Vec<(String, Load, u64)>> {
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
        issuer,
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
    Ok(phases)
}

/// The scale rows: 1,000 and `large_users` users, on SQLite and, given a server, on
/// PostgreSQL.
async fn scale_rows(
    portcullis: &Path,
    root: &Path,
    postgres: Option<&str>,
    large_users: usize,
    seconds: u64,
    connections: u32,
) -> anyhow::Result<Vec<ScaleRow>> {
    let mut scale = Vec::new();
    for users in [USERS, large_users] {
        let d = root.join(format!("sqlite-{users}"));
        let db = format!("sqlite://{}/bench.db", d.display());
        scale.push(scale_row(portcullis, &d, "SQLite", &db, users, seconds, connections).await?);
    }
    if let Some(url) = postgres {
        for users in [USERS, large_users] {
            let name = format!("portcullis_bench_{}_{users}", std::process::id());
            let db = fresh_pg_database(url, &name).await?;
            let d = root.join(format!("pg-{users}"));
            let row = scale_row(
                portcullis,
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
    Ok(scale)
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

    // 2. Loads without a limit of their own: the floor, the static answers, /userinfo.
    let phases = unlimited_loads(&issuer, &dir, pid, seconds, connections).await?;

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
    let scale = scale_rows(
        &portcullis,
        &root,
        postgres.as_deref(),
        large_users,
        seconds,
        connections,
    )
    .await?;
    let _ = std::fs::remove_dir_all(&root);

    // 5. The report.
    let results = report::Results {
        started,
        seconds,
        connections,
        large_users,
        first,
        last,
        phases,
        held,
        driven,
        enumeration,
        idle_kib,
        peak_kib,
        startup_ms,
        scale,
        postgres_measured: postgres.is_some(),
        postgres_pinned,
    };
    let report = results.write();
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(out, &report)?;
    println!("{report}");
    if let Some(first) = results.wrong_answers() {
        bail!("some responses were wrong (see the report): {first}");
    }
    Ok(())
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
