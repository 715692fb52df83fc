//! The `portcullis` command.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use portcullis_core::clock::SystemClock;
use portcullis_crypto::jose::SigningAlg;
use portcullis_server::config::{GlobalArgs, ServeArgs, Settings};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "portcullis",
    version,
    about = "A self-hosted OpenID Connect provider with Auth0's endpoints"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Apply a declarative tenant file (Auth0 Deploy CLI names); a second apply changes nothing.
    Apply {
        /// The tenant YAML file; ${VAR} is replaced by the environment variable VAR.
        file: PathBuf,
    },
    /// Applications.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ClientsCommand {
    /// Show an application by name or client_id, with its secret.
    Get {
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Add a new signing key; it is published at once and signs after --activate-in seconds.
    Rotate {
        /// RS256, ES256, EdDSA or all.
        #[arg(long, default_value = "all")]
        alg: String,
        /// Seconds between publishing the key and signing with it, so relying parties that
        /// cache the JWKS see it first.
        #[arg(long, default_value_t = 600)]
        activate_in: i64,
    },
    /// List the published keys.
    List,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let serve_args = match &cli.command {
        Command::Serve(a) => a.clone(),
        _ => ServeArgs::default(),
    };
    let settings = Settings::resolve(&cli.global, &serve_args)?;
    let is_serve = matches!(cli.command, Command::Serve(_));
    portcullis_server::telemetry::init_logging(settings.log_json && is_serve);
    match cli.command {
        Command::Serve(_) => portcullis_server::serve(settings).await,
        Command::Apply { file } => apply(&settings, &file).await,
        Command::Clients {
            command: ClientsCommand::Get { name, json },
        } => get_client(&settings, &name, json).await,
        Command::Keys { command } => keys(&settings, command).await,
    }
}

async fn apply(settings: &Settings, file: &PathBuf) -> anyhow::Result<()> {
    use portcullis_core::tenant_file;
    let raw =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let text = tenant_file::interpolate(&raw, |name| std::env::var(name).ok())
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let parsed =
        tenant_file::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let core = portcullis_server::open_core(settings, Arc::new(SystemClock)).await?;
    let report = portcullis_core::apply::apply(&core, parsed, &text)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if report.changes.is_empty() {
        println!("No changes: the tenant already matches {}.", file.display());
    } else {
        for line in &report.changes {
            println!("{line}");
        }
        println!(
            "Applied {} change(s) from {}.",
            report.changes.len(),
            file.display()
        );
    }
    Ok(())
}

async fn get_client(settings: &Settings, name: &str, json: bool) -> anyhow::Result<()> {
    let core = portcullis_server::open_core(settings, Arc::new(SystemClock)).await?;
    let clients = core.store.list_clients(core.tenant_id()).await?;
    let Some(client) = clients
        .iter()
        .find(|c| c.name == name || c.client_id == name)
    else {
        bail!("no application named {name:?}");
    };
    let secret = portcullis_core::apply::open_client_secret(&core.master, client);
    if client.secret_sealed.is_some() && secret.is_none() {
        bail!("the client secret cannot be decrypted with this master key");
    }
    let value = serde_json::json!({
        "name": client.name,
        "client_id": client.client_id,
        "client_secret": secret,
        "app_type": client.app_type.as_str(),
        "token_endpoint_auth_method": client.token_endpoint_auth_method.as_str(),
        "callbacks": client.callbacks,
        "allowed_logout_urls": client.allowed_logout_urls,
        "grant_types": client.grant_types,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("name:          {}", client.name);
        println!("client_id:     {}", client.client_id);
        if let Some(s) = value["client_secret"].as_str() {
            println!("client_secret: {s}");
        }
        println!("app_type:      {}", client.app_type.as_str());
    }
    Ok(())
}

async fn keys(settings: &Settings, command: KeysCommand) -> anyhow::Result<()> {
    let core = portcullis_server::open_core(settings, Arc::new(SystemClock)).await?;
    match command {
        KeysCommand::Rotate { alg, activate_in } => {
            if activate_in < 0 {
                bail!("--activate-in cannot be negative");
            }
            let algs: Vec<SigningAlg> = if alg.eq_ignore_ascii_case("all") {
                SigningAlg::ALL.to_vec()
            } else {
                vec![SigningAlg::parse(&alg).with_context(|| {
                    format!("unknown algorithm {alg:?}: use RS256, ES256, EdDSA or all")
                })?]
            };
            for alg in algs {
                let kid = core.rotate_key(alg, activate_in).await?;
                println!("{alg}: new key {kid} published now, signing in {activate_in} s");
            }
        }
        KeysCommand::List => {
            for record in core.store.list_signing_keys(core.tenant_id()).await? {
                println!(
                    "{} {} active_from={} retired_at={} expires_at={}",
                    record.kid,
                    record.alg,
                    record.active_from,
                    record
                        .retired_at
                        .map_or_else(|| "-".to_owned(), |t| t.to_string()),
                    record
                        .expires_at
                        .map_or_else(|| "-".to_owned(), |t| t.to_string()),
                );
            }
        }
    }
    Ok(())
}
