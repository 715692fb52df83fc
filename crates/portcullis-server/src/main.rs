//! The `portcullis` command.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use portcullis_core::clock::SystemClock;
use portcullis_core::management::Caller;
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
    /// Users of the database connection (the Management API's rules, from the shell).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Roles and their assignment.
    Roles {
        #[command(subcommand)]
        command: RolesCommand,
    },
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// Create a user; the password is read from standard input (one line).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// Mark the email as verified.
        #[arg(long)]
        verified: bool,
    },
    /// List users, optionally searched with Auth0's query syntax.
    List {
        #[arg(long)]
        q: Option<String>,
        #[arg(long, default_value_t = 0)]
        page: i64,
        #[arg(long, default_value_t = 50)]
        per_page: i64,
    },
    /// Show a user by id or email.
    Get { user: String },
    /// Block a user (ends their sessions and refresh tokens); --unblock lifts it.
    Block {
        user: String,
        #[arg(long)]
        unblock: bool,
    },
    /// Show the IPs brute-force protection blocked from a user; --release lifts the blocks.
    Blocks {
        user: String,
        #[arg(long)]
        release: bool,
    },
    /// Delete a user and their data (the audit trail stays).
    Delete { user: String },
}

#[derive(Subcommand, Debug)]
enum RolesCommand {
    /// List roles.
    List,
    /// Create a role.
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a role by id or name.
    Delete { role: String },
    /// Give a user (id or email) a role (id or name).
    Assign { user: String, role: String },
    /// Take a role from a user.
    Unassign { user: String, role: String },
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
        Command::Users { command } => users(&settings, command).await,
        Command::Roles { command } => roles(&settings, command).await,
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
    let applications = core.applications();
    let Some(client) = applications.find(name).await? else {
        bail!("no application named {name:?}");
    };
    let secret = applications.secret(&client);
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
            for record in core.signing_keys().await? {
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

/// The operator at the shell acts with every Management API scope; their changes are
/// recorded in the audit trail as client `cli`.
fn operator() -> Caller {
    Caller {
        client_id: "cli".to_owned(),
        scopes: portcullis_core::management::ALL_SCOPES
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    }
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn api(e: portcullis_core::management::ManagementError) -> anyhow::Error {
    anyhow::anyhow!("{} ({})", e.message, e.error_code)
}

/// A user id, or the id of the user with this email.
async fn resolve_user(
    core: &portcullis_core::service::Portcullis,
    user: &str,
) -> anyhow::Result<String> {
    if user.contains('|') {
        return Ok(user.to_owned());
    }
    core.user_id_by_email(user)
        .await?
        .with_context(|| format!("no user {user:?}"))
}

async fn resolve_role(
    core: &portcullis_core::service::Portcullis,
    role: &str,
) -> anyhow::Result<String> {
    core.roles()
        .role_id(role)
        .await?
        .with_context(|| format!("no role {role:?}"))
}

async fn record(core: &portcullis_core::service::Portcullis, what: &str) {
    core.audit_management_call(Some("cli"), "CLI", what, 200)
        .await;
}

async fn users(settings: &Settings, command: UsersCommand) -> anyhow::Result<()> {
    use portcullis_core::management::users::{CreateUser, UpdateUser, UserQuery};
    use portcullis_core::management::{CreateUsers, DeleteUsers, ReadUsers, UpdateUsers};
    use portcullis_server::handlers::management::{ListUsersParams, user_json, users_answer};
    let core = portcullis_server::open_core(settings, Arc::new(SystemClock)).await?;
    let caller = operator();
    match command {
        UsersCommand::Create {
            email,
            name,
            verified,
        } => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            let body = CreateUser {
                connection: portcullis_core::model::DATABASE_CONNECTION.to_owned(),
                email,
                password: Some(password),
                email_verified: Some(verified),
                verify_email: None,
                user_id: None,
                name,
                nickname: None,
                given_name: None,
                family_name: None,
                picture: None,
                blocked: None,
                user_metadata: None,
                app_metadata: None,
            };
            let user = core
                .create_user(caller.require::<CreateUsers>().map_err(api)?, body)
                .await
                .map_err(api)?;
            record(&core, "users create").await;
            print_json(&user_json(&user))
        }
        UsersCommand::List { q, page, per_page } => {
            let params = ListUsersParams {
                q,
                page: Some(page),
                per_page: Some(per_page),
                include_totals: Some(true),
                ..Default::default()
            };
            let search = UserQuery {
                q: params.q.as_deref(),
                ..UserQuery::default()
            };
            let found = core
                .list_users(
                    caller.require::<ReadUsers>().map_err(api)?,
                    search,
                    params.page,
                    params.per_page,
                )
                .await
                .map_err(api)?;
            print_json(&users_answer(&found, &params))
        }
        UsersCommand::Get { user } => {
            let id = resolve_user(&core, &user).await?;
            print_json(&user_json(
                &core
                    .get_user(caller.require::<ReadUsers>().map_err(api)?, &id)
                    .await
                    .map_err(api)?,
            ))
        }
        UsersCommand::Block { user, unblock } => {
            let id = resolve_user(&core, &user).await?;
            let patch = UpdateUser {
                blocked: Some(!unblock),
                ..Default::default()
            };
            let out = core
                .update_user(caller.require::<UpdateUsers>().map_err(api)?, &id, patch)
                .await
                .map_err(api)?;
            record(
                &core,
                if unblock {
                    "users unblock"
                } else {
                    "users block"
                },
            )
            .await;
            print_json(&user_json(&out))
        }
        UsersCommand::Blocks { user, release } => {
            let id = resolve_user(&core, &user).await?;
            if release {
                core.delete_user_blocks(
                    caller.require::<UpdateUsers>().map_err(api)?,
                    Some(&id),
                    None,
                )
                .await
                .map_err(api)?;
                record(&core, "users blocks --release").await;
            }
            let (found, blocks) = core
                .get_user_blocks(caller.require::<ReadUsers>().map_err(api)?, Some(&id), None)
                .await
                .map_err(api)?;
            print_json(&portcullis_server::handlers::management::blocks_json(
                &found, &blocks,
            ))
        }
        UsersCommand::Delete { user } => {
            let id = resolve_user(&core, &user).await?;
            core.delete_user(caller.require::<DeleteUsers>().map_err(api)?, &id)
                .await
                .map_err(api)?;
            record(&core, "users delete").await;
            println!("Deleted {id}.");
            Ok(())
        }
    }
}

async fn roles(settings: &Settings, command: RolesCommand) -> anyhow::Result<()> {
    use portcullis_core::management::roles::RoleFields;
    use portcullis_core::management::{
        CreateRoleMembers, CreateRoles, DeleteRoleMembers, DeleteRoles, ReadRoles, Window,
    };
    use portcullis_server::handlers::management::role_json;
    let core = portcullis_server::open_core(settings, Arc::new(SystemClock)).await?;
    let caller = operator();
    match command {
        RolesCommand::List => {
            let window = Window {
                start: 0,
                limit: 100,
            };
            let page = core
                .roles()
                .list_roles_api(caller.require::<ReadRoles>().map_err(api)?, None, window)
                .await
                .map_err(api)?;
            print_json(&serde_json::Value::Array(
                page.items.iter().map(role_json).collect(),
            ))
        }
        RolesCommand::Create { name, description } => {
            let role = core
                .roles()
                .create_role(
                    caller.require::<CreateRoles>().map_err(api)?,
                    RoleFields {
                        name: Some(name),
                        description,
                    },
                )
                .await
                .map_err(api)?;
            record(&core, "roles create").await;
            print_json(&role_json(&role))
        }
        RolesCommand::Delete { role } => {
            let id = resolve_role(&core, &role).await?;
            core.roles()
                .delete_role_api(caller.require::<DeleteRoles>().map_err(api)?, &id)
                .await
                .map_err(api)?;
            record(&core, "roles delete").await;
            println!("Deleted {id}.");
            Ok(())
        }
        RolesCommand::Assign { user, role } => {
            let (user, role) = (
                resolve_user(&core, &user).await?,
                resolve_role(&core, &role).await?,
            );
            core.roles()
                .assign_user_roles(
                    caller.require::<CreateRoleMembers>().map_err(api)?,
                    &user,
                    std::slice::from_ref(&role),
                )
                .await
                .map_err(api)?;
            record(&core, "roles assign").await;
            println!("Assigned {role} to {user}.");
            Ok(())
        }
        RolesCommand::Unassign { user, role } => {
            let (user, role) = (
                resolve_user(&core, &user).await?,
                resolve_role(&core, &role).await?,
            );
            core.roles()
                .remove_user_roles(
                    caller.require::<DeleteRoleMembers>().map_err(api)?,
                    &user,
                    std::slice::from_ref(&role),
                )
                .await
                .map_err(api)?;
            record(&core, "roles unassign").await;
            println!("Removed {role} from {user}.");
            Ok(())
        }
    }
}
