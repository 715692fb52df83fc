//! Settings, layered: command-line flags, then `PORTCULLIS_*` environment variables, then a
//! TOML file (`--config`), then defaults. A secret setting can also be read from a file
//! named by `PORTCULLIS_<NAME>_FILE`, the way container platforms mount secrets.

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Global settings, accepted by every subcommand. `Debug` hides the secrets.
#[derive(Args, Clone, Default)]
pub struct GlobalArgs {
    /// TOML file with settings (flags and environment variables override it).
    #[arg(long, global = true, env = "PORTCULLIS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://portcullis.db (default) or postgres://user:pass@host/db.
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_DATABASE_URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    /// Directory for the generated development master key (default: the SQLite file's
    /// directory, else the current directory).
    #[arg(long, global = true, env = "PORTCULLIS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The master key (64 hex characters) that encrypts secrets at rest.
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_MASTER_KEY",
        hide_env_values = true
    )]
    pub master_key: Option<String>,
    /// Public issuer URL; always ends with '/'.
    #[arg(long, global = true, env = "PORTCULLIS_ISSUER")]
    pub issuer: Option<String>,
    /// Log format: json (default) or text.
    #[arg(long, global = true, env = "PORTCULLIS_LOG_FORMAT")]
    pub log_format: Option<String>,
}

impl std::fmt::Debug for GlobalArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalArgs")
            .field("config", &self.config)
            .field("database", &self.database.as_deref().map(redact_url))
            .field("data_dir", &self.data_dir)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// A database URL with its password replaced by `***`.
#[must_use]
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Settings of `portcullis serve`.
#[derive(Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PORTCULLIS_LISTEN")]
    pub listen: Option<String>,
    /// PEM certificate chain, to serve HTTPS.
    #[arg(long, env = "PORTCULLIS_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "PORTCULLIS_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Directory of templates overriding the built-in pages (same file names).
    #[arg(long, env = "PORTCULLIS_TEMPLATES_DIR")]
    pub templates_dir: Option<PathBuf>,
    /// SMTP server for account emails: smtp://host:25, smtp://user:pass@host:587?tls=required
    /// (STARTTLS) or smtps://user:pass@host:465 (TLS). Without it, emails go to the outbox
    /// directory (development).
    #[arg(long, env = "PORTCULLIS_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender of account emails, such as "Example <no-reply@example.com>".
    #[arg(long, env = "PORTCULLIS_EMAIL_FROM")]
    pub email_from: Option<String>,
    /// Where emails are written when no SMTP server is set (default: <data dir>/outbox).
    #[arg(long, env = "PORTCULLIS_OUTBOX_DIR")]
    pub outbox_dir: Option<PathBuf>,
    /// Extra breached passwords, one per line, besides the built-in list.
    #[arg(long, env = "PORTCULLIS_BREACHED_PASSWORDS_FILE")]
    pub breached_passwords_file: Option<PathBuf>,
    /// Proxies (IPs or CIDR ranges, comma-separated) whose X-Forwarded-For is believed.
    #[arg(long, env = "PORTCULLIS_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Request limits per minute, such as token_per_ip=300,login_form_per_ip=30.
    #[arg(long, env = "PORTCULLIS_RATE_LIMITS")]
    pub rate_limits: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    issuer: Option<String>,
    database: Option<String>,
    data_dir: Option<PathBuf>,
    master_key_file: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    templates_dir: Option<PathBuf>,
    log_format: Option<String>,
    smtp_url_file: Option<PathBuf>,
    email_from: Option<String>,
    outbox_dir: Option<PathBuf>,
    breached_passwords_file: Option<PathBuf>,
    trusted_proxies: Option<Vec<String>>,
    rate_limits: Option<String>,
}

/// The resolved settings. `Debug` hides the database password.
#[derive(Clone)]
pub struct Settings {
    pub listen: String,
    pub issuer: String,
    pub database: String,
    pub data_dir: PathBuf,
    pub master_key: MasterKeySource,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub templates_dir: Option<PathBuf>,
    pub log_json: bool,
    pub smtp_url: Option<String>,
    pub email_from: String,
    pub outbox_dir: PathBuf,
    pub breached_passwords_file: Option<PathBuf>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub rate_limits: crate::ratelimit::RateLimits,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("issuer", &self.issuer)
            .field("database", &redact_url(&self.database))
            .field("data_dir", &self.data_dir)
            .field("master_key", &self.master_key)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// Where the master key comes from. `Debug` never shows a key.
#[derive(Clone)]
pub enum MasterKeySource {
    Value(String),
    File(PathBuf),
    /// Generated on first start into this file (development only).
    Generated(PathBuf),
}

impl std::fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(_) => f.write_str("Value(<redacted>)"),
            Self::File(p) => write!(f, "File({})", p.display()),
            Self::Generated(p) => write!(f, "Generated({})", p.display()),
        }
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_ISSUER: &str = "http://127.0.0.1:8080/";
pub const DEFAULT_DATABASE: &str = "sqlite://portcullis.db";

/// Reads `PORTCULLIS_<NAME>_FILE` when set.
fn from_file_env(name: &str) -> anyhow::Result<Option<String>> {
    let var = format!("PORTCULLIS_{name}_FILE");
    match std::env::var_os(&var) {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {var} ({})", Path::new(&path).display()))?;
            Ok(Some(text.trim().to_owned()))
        }
        None => Ok(None),
    }
}

impl Settings {
    pub fn resolve(global: &GlobalArgs, serve: &ServeArgs) -> anyhow::Result<Self> {
        let file: FileSettings = match &global.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("in config file {}", path.display()))?
            }
            None => FileSettings::default(),
        };
        let database = match global.database.clone() {
            Some(d) => d,
            None => from_file_env("DATABASE_URL")?
                .or(file.database)
                .unwrap_or_else(|| DEFAULT_DATABASE.to_owned()),
        };
        let data_dir = global
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| default_data_dir(&database));
        let master_key = if let Some(v) = global.master_key.clone() {
            MasterKeySource::Value(v)
        } else if let Some(v) = from_file_env("MASTER_KEY")? {
            MasterKeySource::Value(v)
        } else if let Some(p) = file.master_key_file {
            MasterKeySource::File(p)
        } else {
            MasterKeySource::Generated(data_dir.join("master.key"))
        };
        let mut issuer = global
            .issuer
            .clone()
            .or(file.issuer)
            .unwrap_or_else(|| DEFAULT_ISSUER.to_owned());
        let parsed =
            url::Url::parse(&issuer).with_context(|| format!("issuer {issuer:?} is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https")
            || parsed.query().is_some()
            || parsed.fragment().is_some()
        {
            bail!("the issuer must be an http(s) URL without query or fragment");
        }
        if !matches!(parsed.path(), "" | "/") {
            bail!(
                "the issuer must be the root of its host (such as https://id.example.com/); \
                 serving under a path is not supported"
            );
        }
        if !issuer.ends_with('/') {
            issuer.push('/');
        }
        let tls = match (
            serve.tls_cert.clone().or(file.tls_cert),
            serve.tls_key.clone().or(file.tls_key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => bail!("--tls-cert and --tls-key go together"),
        };
        let log_format = global
            .log_format
            .clone()
            .or(file.log_format)
            .unwrap_or_else(|| "json".to_owned());
        let log_json = match log_format.as_str() {
            "json" => true,
            "text" => false,
            other => bail!("log format must be json or text, not {other:?}"),
        };
        let smtp_url = match serve.smtp_url.clone() {
            Some(u) => Some(u),
            None => match from_file_env("SMTP_URL")? {
                Some(u) => Some(u),
                None => match &file.smtp_url_file {
                    Some(p) => Some(
                        std::fs::read_to_string(p)
                            .with_context(|| format!("reading {}", p.display()))?
                            .trim()
                            .to_owned(),
                    ),
                    None => None,
                },
            },
        };
        let host = parsed.host_str().unwrap_or("localhost").to_owned();
        let email_from = serve
            .email_from
            .clone()
            .or(file.email_from)
            .unwrap_or_else(|| format!("no-reply@{host}"));
        let outbox_dir = serve
            .outbox_dir
            .clone()
            .or(file.outbox_dir)
            .unwrap_or_else(|| data_dir.join("outbox"));
        let proxies = match (&serve.trusted_proxies, &file.trusted_proxies) {
            (Some(list), _) => list.clone(),
            (None, Some(list)) => list.join(","),
            (None, None) => String::new(),
        };
        let trusted_proxies =
            crate::client_ip::parse_proxies(&proxies).context("in the trusted proxies setting")?;
        let mut rate_limits = crate::ratelimit::RateLimits::default();
        if let Some(spec) = file.rate_limits.as_deref() {
            rate_limits.apply_overrides(spec)?;
        }
        if let Some(spec) = serve.rate_limits.as_deref() {
            rate_limits.apply_overrides(spec)?;
        }
        Ok(Self {
            smtp_url,
            email_from,
            outbox_dir,
            breached_passwords_file: serve
                .breached_passwords_file
                .clone()
                .or(file.breached_passwords_file),
            trusted_proxies,
            rate_limits,
            listen: serve
                .listen
                .clone()
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
            issuer,
            database,
            data_dir,
            master_key,
            tls,
            templates_dir: serve.templates_dir.clone().or(file.templates_dir),
            log_json,
        })
    }

    /// Loads (or, in development, generates) the master key.
    pub fn load_master_key(&self) -> anyhow::Result<portcullis_crypto::aead::MasterKey> {
        use portcullis_crypto::aead::MasterKey;
        let hex = match &self.master_key {
            MasterKeySource::Value(v) => v.clone(),
            MasterKeySource::File(p) => std::fs::read_to_string(p)
                .with_context(|| format!("reading master key file {}", p.display()))?,
            MasterKeySource::Generated(p) => {
                if p.exists() {
                    std::fs::read_to_string(p)
                        .with_context(|| format!("reading master key file {}", p.display()))?
                } else {
                    let hex = MasterKey::generate_hex();
                    write_private_file(p, &hex)?;
                    tracing::warn!(
                        path = %p.display(),
                        "GENERATED A NEW MASTER KEY. It encrypts every signing key and client secret: \
                         back it up, and in production set PORTCULLIS_MASTER_KEY_FILE instead. \
                         Losing it makes the stored secrets unreadable."
                    );
                    hex
                }
            }
        };
        MasterKey::from_hex(&hex).context("the master key must be 64 hex characters (32 bytes)")
    }
}

fn default_data_dir(database: &str) -> PathBuf {
    if let Some(rest) = database.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or_default();
        if !path.is_empty()
            && path != ":memory:"
            && let Some(parent) = Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            return parent.to_path_buf();
        }
    }
    PathBuf::from(".")
}

fn write_private_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_defaults_to_the_sqlite_files_directory() {
        assert_eq!(
            default_data_dir("sqlite:///tmp/x/p.db"),
            PathBuf::from("/tmp/x")
        );
        assert_eq!(
            default_data_dir("sqlite://portcullis.db"),
            PathBuf::from(".")
        );
        assert_eq!(default_data_dir("postgres://u@h/db"), PathBuf::from("."));
    }

    #[test]
    fn issuer_gets_a_trailing_slash_and_must_be_http() {
        let g = GlobalArgs {
            issuer: Some("https://id.example.com".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&g, &ServeArgs::default()).unwrap();
        assert_eq!(s.issuer, "https://id.example.com/");
        let g = GlobalArgs {
            issuer: Some("ftp://x".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&g, &ServeArgs::default()).is_err());
    }

    #[test]
    fn an_issuer_under_a_path_is_refused() {
        let g = GlobalArgs {
            issuer: Some("https://x.example/auth/".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&g, &ServeArgs::default()).is_err());
    }

    #[test]
    fn debug_output_hides_database_passwords() {
        let g = GlobalArgs {
            database: Some("postgres://u:hunter2@h/db".into()),
            ..Default::default()
        };
        let s = Settings::resolve(&g, &ServeArgs::default()).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{g:?}").contains("hunter2"));
    }
}
