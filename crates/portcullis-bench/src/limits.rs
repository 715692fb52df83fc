//! The limits of this machine that every load is held against: the signing rates and the
//! argon2id time (measured in a child pinned to core 0), and the HTTP floor (`/health`
//! through the idle server), measured again between loads.

use crate::wrk;
use anyhow::{Context, bail};
use portcullis_crypto::jose::{SigningAlg, SigningKey};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Limits {
    /// Signatures per second on one core, by algorithm.
    pub(crate) sign_per_sec: Vec<(String, f64)>,
    /// Milliseconds per argon2id hash at the configured parameters.
    pub(crate) argon2_ms: f64,
}

impl Limits {
    /// Each figure's mean over two measurements.
    pub(crate) fn mean(&self, other: &Limits) -> Limits {
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
pub(crate) fn measure_limits_child(me: &Path, seconds: f64) -> anyhow::Result<Limits> {
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
pub(crate) struct Local {
    pub(crate) floor_rps: f64,
    pub(crate) limits: Limits,
}

impl Local {
    pub(crate) fn mean(&self, other: &Local) -> Local {
        Local {
            floor_rps: f64::midpoint(self.floor_rps, other.floor_rps),
            limits: self.limits.mean(&other.limits),
        }
    }

    pub(crate) fn sign_rate(&self, alg: &str) -> f64 {
        self.limits
            .sign_per_sec
            .iter()
            .find(|(a, _)| a == alg)
            .map_or(f64::NAN, |(_, r)| *r)
    }

    /// A token grant's limit: `1 / (HTTP floor time + signing time)`.
    pub(crate) fn grant(&self, alg: &str) -> f64 {
        1.0 / (1.0 / self.floor_rps + 1.0 / self.sign_rate(alg))
    }

    /// A password login's limit: `1 / (argon2id time + two RS256 signing times + three
    /// HTTP floor times)`.
    pub(crate) fn login(&self) -> f64 {
        1.0 / (self.limits.argon2_ms / 1000.0
            + 2.0 / self.sign_rate("RS256")
            + 3.0 / self.floor_rps)
    }
}

/// The limits now: `seconds` of `/health` (the floor), then the child's signing rates and
/// argon2id time, a quarter of `seconds` each.
pub(crate) fn measure_local(
    me: &Path,
    health: &str,
    seconds: u64,
    connections: u32,
) -> anyhow::Result<Local> {
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
pub(crate) struct Brackets {
    pub(crate) me: PathBuf,
    pub(crate) health: String,
    pub(crate) seconds: u64,
    pub(crate) connections: u32,
    /// The latest measurement, taken after the last load.
    pub(crate) last: Local,
}

impl Brackets {
    /// Takes the first measurement. Each one lasts about `2 * seconds`.
    pub(crate) fn start(issuer: &str, seconds: u64, connections: u32) -> anyhow::Result<Self> {
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
    pub(crate) fn close(&mut self) -> anyhow::Result<Local> {
        let now = measure_local(&self.me, &self.health, self.seconds, self.connections)?;
        let around = self.last.mean(&now);
        self.last = now;
        Ok(around)
    }
}

pub(crate) fn measure_limits(seconds: f64) -> anyhow::Result<Limits> {
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
