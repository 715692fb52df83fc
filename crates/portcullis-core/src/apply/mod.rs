//! Turns a parsed tenant file into the changes it implies against the stored state, then
//! applies them in one transaction. Applying the same file twice changes nothing.

use crate::model::{
    AppType, Client, ClientGrant, DATABASE_CONNECTION, RefreshTokenPolicy, ResourceServer, Role,
    RotationType, Tenant, TokenEndpointAuthMethod, User,
};
use crate::passwords::PasswordPool;
use crate::service::Portcullis;
use crate::store::{Change, Store, StoreError};
use crate::tenant_file::{FileError, TenantFile, locate};
use portcullis_crypto::aead::MasterKey;
use std::collections::{HashMap, HashSet};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    File(#[from] FileError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// What an apply did, one line per created or updated object.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub changes: Vec<String>,
}

/// Seals a client secret for storage.
#[must_use]
pub fn seal_client_secret(master: &MasterKey, client_id: &str, secret: &str) -> Vec<u8> {
    master.seal(&client_secret_purpose(client_id), secret.as_bytes())
}

/// Opens a stored client secret.
#[must_use]
pub fn open_client_secret(master: &MasterKey, client: &Client) -> Option<String> {
    let sealed = client.secret_sealed.as_ref()?;
    let plain = master
        .open(&client_secret_purpose(&client.client_id), sealed)
        .ok()?;
    String::from_utf8(plain).ok()
}

fn client_secret_purpose(client_id: &str) -> String {
    format!("client_secret:{client_id}")
}

fn new_client_secret() -> String {
    portcullis_crypto::b64url(&portcullis_crypto::random_bytes::<48>())
}

fn err(text: &str, key: &str, value: &str, message: String) -> ApplyError {
    ApplyError::File(FileError {
        line: locate(text, key, value),
        message,
    })
}

/// Plans and applies `file` (already interpolated; `text` is its source, for error lines).
pub async fn apply(
    core: &Portcullis,
    file: TenantFile,
    text: &str,
) -> Result<ApplyReport, ApplyError> {
    let store: &dyn Store = core.store.as_ref();
    let master: &MasterKey = &core.master;
    let passwords: &PasswordPool = &core.passwords;
    let tenant_id = core.tenant_id();
    let now = core.now();
    let management_audience = core.settings.management_audience();
    store
        .ensure_tenant(&Tenant::new_default(tenant_id), now)
        .await?;
    let mut changes = Vec::new();
    let mut report = ApplyReport::default();

    // Tenant settings.
    if let Some(section) = &file.tenant {
        let current = store
            .find_tenant(tenant_id)
            .await?
            .unwrap_or_else(|| Tenant::new_default(tenant_id));
        let mut next = current.clone();
        if let Some(name) = &section.friendly_name {
            next.friendly_name.clone_from(name);
        }
        if let Some(h) = section.session_lifetime {
            next.session_lifetime_hours = h.0;
        }
        if let Some(h) = section.idle_session_lifetime {
            next.idle_session_lifetime_hours = h.0;
        }
        if let Some(days) = section.log_retention_days {
            next.log_retention_days = days.0;
        }
        if let Some(claim) = &section.roles_claim {
            next.roles_claim = Some(claim.0.clone());
        }
        if next.idle_session_lifetime_hours > next.session_lifetime_hours {
            return Err(err(
                text,
                "idle_session_lifetime",
                &next.idle_session_lifetime_hours.to_string(),
                "idle_session_lifetime cannot exceed session_lifetime".to_owned(),
            ));
        }
        if next != current {
            report.changes.push("updated tenant settings".to_owned());
            changes.push(Change::Tenant(next));
        }
    }

    // Settings documents: attack protection, the database connection, log streams.
    if let Some(attack) = &file.attack_protection {
        attack
            .validate()
            .map_err(|m| err(text, "attackProtection", "", m))?;
        let current: crate::protection::AttackProtection =
            core.setting(crate::protection::ATTACK_PROTECTION).await?;
        if &current != attack {
            report.changes.push("updated attack protection".to_owned());
            changes.push(Change::Setting {
                name: crate::protection::ATTACK_PROTECTION.to_owned(),
                value: serde_json::to_value(attack)
                    .map_err(|e| ApplyError::Internal(e.to_string()))?,
            });
        }
    }
    for db in &file.databases {
        if db.name != crate::model::DATABASE_CONNECTION
            || db.strategy.as_deref().is_some_and(|s| s != "auth0")
        {
            return Err(err(
                text,
                "name",
                &db.name,
                format!(
                    "only the database connection {} (strategy auth0) is supported",
                    crate::model::DATABASE_CONNECTION
                ),
            ));
        }
        db.options
            .validate()
            .map_err(|m| err(text, "name", &db.name, m))?;
        let current: crate::protection::policy::ConnectionOptions =
            core.setting(crate::protection::DATABASE_CONNECTION).await?;
        if current != db.options {
            report
                .changes
                .push(format!("updated database connection {}", db.name));
            changes.push(Change::Setting {
                name: crate::protection::DATABASE_CONNECTION.to_owned(),
                value: serde_json::to_value(&db.options)
                    .map_err(|e| ApplyError::Internal(e.to_string()))?,
            });
        }
    }
    if !file.log_streams.is_empty() {
        let streams = crate::log_stream::validate(&file.log_streams)
            .map_err(|m| err(text, "logStreams", "", m))?;
        let current = core.log_streams().await?;
        if current != streams {
            let sealed = core
                .seal_log_streams(&streams)
                .map_err(ApplyError::Internal)?;
            report.changes.push("updated log streams".to_owned());
            changes.push(Change::Setting {
                name: crate::log_stream::LOG_STREAMS.to_owned(),
                value: serde_json::to_value(&sealed)
                    .map_err(|e| ApplyError::Internal(e.to_string()))?,
            });
        }
    }

    // Resource servers, by identifier.
    let existing_apis = store.list_resource_servers(tenant_id).await?;
    let mut api_identifiers: HashSet<String> =
        existing_apis.iter().map(|a| a.identifier.clone()).collect();
    let mut seen = HashSet::new();
    for entry in &file.resource_servers {
        if !seen.insert(entry.identifier.clone()) {
            return Err(err(
                text,
                "identifier",
                &entry.identifier,
                format!("resource server {:?} is listed twice", entry.identifier),
            ));
        }
        let current = existing_apis
            .iter()
            .find(|a| a.identifier == entry.identifier);
        let next = build_resource_server(tenant_id, entry, current)
            .map_err(|e| err(text, e.key, &e.value, e.message))?;
        if current != Some(&next) {
            report.changes.push(format!(
                "{} API {}",
                if current.is_some() {
                    "updated"
                } else {
                    "created"
                },
                next.identifier
            ));
            changes.push(Change::ResourceServer(next));
        }
        api_identifiers.insert(entry.identifier.clone());
    }

    // Clients, by client_id when given, else by name.
    let existing_clients = store.list_clients(tenant_id).await?;
    let mut client_ids_by_name: HashMap<String, String> = existing_clients
        .iter()
        .map(|c| (c.name.clone(), c.client_id.clone()))
        .collect();
    let mut seen = HashSet::new();
    for entry in &file.clients {
        if !seen.insert(entry.name.clone()) {
            return Err(err(
                text,
                "name",
                &entry.name,
                format!("client {:?} is listed twice", entry.name),
            ));
        }
        let current = match &entry.client_id {
            Some(id) => existing_clients.iter().find(|c| &c.client_id == id),
            None => existing_clients.iter().find(|c| c.name == entry.name),
        };
        let next = build_client(master, tenant_id, entry, current)
            .map_err(|e| err(text, e.key, &e.value, e.message))?;
        let client_id = next.client_id.clone();
        if current != Some(&next) {
            report.changes.push(format!(
                "{} client {}",
                if current.is_some() {
                    "updated"
                } else {
                    "created"
                },
                next.name
            ));
            changes.push(Change::Client(next));
        }
        client_ids_by_name.insert(entry.name.clone(), client_id);
    }

    // Client grants, by (client, audience).
    let existing_grants = store.list_client_grants(tenant_id).await?;
    let known_client_ids: HashSet<&String> = client_ids_by_name.values().collect();
    for entry in &file.client_grants {
        let client_id = match client_ids_by_name.get(&entry.client_id) {
            Some(id) => id.clone(),
            None if known_client_ids.contains(&entry.client_id) => entry.client_id.clone(),
            None => {
                return Err(err(
                    text,
                    "client_id",
                    &entry.client_id,
                    format!("client grant: no client named {:?}", entry.client_id),
                ));
            }
        };
        if entry.audience == management_audience {
            if let Some(bad) = entry
                .scope
                .iter()
                .find(|s| !crate::management::ALL_SCOPES.contains(&s.as_str()))
            {
                return Err(err(
                    text,
                    "audience",
                    &entry.audience,
                    format!("client grant: the Management API has no scope {bad:?}"),
                ));
            }
        } else if !api_identifiers.contains(&entry.audience) {
            return Err(err(
                text,
                "audience",
                &entry.audience,
                format!("client grant: no API with identifier {:?}", entry.audience),
            ));
        }
        let current = existing_grants
            .iter()
            .find(|g| g.client_id == client_id && g.audience == entry.audience);
        let next = ClientGrant {
            tenant_id: tenant_id.to_owned(),
            id: current.map_or_else(
                || format!("cgr_{}", portcullis_crypto::token::random_alphanumeric(16)),
                |g| g.id.clone(),
            ),
            client_id,
            audience: entry.audience.clone(),
            scope: entry.scope.clone(),
        };
        if current != Some(&next) {
            report.changes.push(format!(
                "{} client grant for {}",
                if current.is_some() {
                    "updated"
                } else {
                    "created"
                },
                next.audience
            ));
            changes.push(Change::ClientGrant(next));
        }
    }

    // Roles, by name.
    let existing_roles = store.list_roles(tenant_id).await?;
    let mut role_ids: HashMap<String, String> = existing_roles
        .iter()
        .map(|r| (r.name.clone(), r.id.clone()))
        .collect();
    for entry in &file.roles {
        if entry.name.trim().is_empty() {
            return Err(err(
                text,
                "name",
                &entry.name,
                "a role needs a name".to_owned(),
            ));
        }
        for p in &entry.permissions {
            if !api_identifiers.contains(&p.resource_server_identifier) {
                return Err(err(
                    text,
                    "resource_server_identifier",
                    &p.resource_server_identifier,
                    format!(
                        "role {:?}: no API with identifier {:?}",
                        entry.name, p.resource_server_identifier
                    ),
                ));
            }
        }
        let current = existing_roles.iter().find(|r| r.name == entry.name);
        let mut permissions = entry.permissions.clone();
        permissions.sort();
        permissions.dedup();
        let next = Role {
            tenant_id: tenant_id.to_owned(),
            id: current.map_or_else(
                || format!("rol_{}", portcullis_crypto::token::random_alphanumeric(16)),
                |r| r.id.clone(),
            ),
            name: entry.name.clone(),
            description: entry.description.clone(),
            permissions,
        };
        if current != Some(&next) {
            report.changes.push(format!(
                "{} role {}",
                if current.is_some() {
                    "updated"
                } else {
                    "created"
                },
                next.name
            ));
            changes.push(Change::Role(next.clone()));
        }
        role_ids.insert(next.name, next.id);
    }

    // Users of the database connection, by email.
    let mut seen = HashSet::new();
    for entry in &file.users {
        let email = entry.email.0.clone();
        if !seen.insert(crate::model::normalize_email(&email)) {
            return Err(err(
                text,
                "email",
                &email,
                format!("user {email} is listed twice"),
            ));
        }
        let mut wanted_roles = Vec::new();
        for name in &entry.roles {
            match role_ids.get(name) {
                Some(id) => wanted_roles.push(id.clone()),
                None => {
                    return Err(err(
                        text,
                        "email",
                        &email,
                        format!("user {email}: no role named {name:?}"),
                    ));
                }
            }
        }
        wanted_roles.sort();
        wanted_roles.dedup();
        if !entry.user_metadata.is_object() || !entry.app_metadata.is_object() {
            return Err(err(
                text,
                "email",
                &email,
                format!("user {email}: user_metadata and app_metadata must be mappings"),
            ));
        }
        let current = store
            .find_user_by_email(tenant_id, DATABASE_CONNECTION, &email)
            .await?;
        let password_hash = match (&entry.password, &current) {
            (Some(pw), Some(user))
                if passwords
                    .verify(pw.clone(), user.password_hash.clone())
                    .await =>
            {
                user.password_hash.clone()
            }
            (Some(pw), _) => {
                if pw.chars().count() < 8 {
                    return Err(err(
                        text,
                        "email",
                        &email,
                        format!("user {email}: the password must have at least 8 characters"),
                    ));
                }
                Some(
                    passwords
                        .hash(pw.clone())
                        .await
                        .map_err(ApplyError::Internal)?,
                )
            }
            (None, Some(user)) => user.password_hash.clone(),
            (None, None) => None,
        };
        let local = email.split('@').next().unwrap_or_default().to_owned();
        let user_id = current.as_ref().map_or_else(
            || {
                format!(
                    "auth0|{}",
                    portcullis_crypto::token::hex(&portcullis_crypto::random_bytes::<12>())
                )
            },
            |u| u.user_id.clone(),
        );
        let next = User {
            tenant_id: tenant_id.to_owned(),
            user_id: user_id.clone(),
            connection: DATABASE_CONNECTION.to_owned(),
            email: email.clone(),
            email_verified: entry.email_verified,
            name: entry.name.clone().unwrap_or_else(|| email.clone()),
            nickname: entry.nickname.clone().unwrap_or(local),
            picture: entry
                .picture
                .clone()
                .unwrap_or_else(|| default_picture(&email)),
            password_hash,
            user_metadata: entry.user_metadata.clone(),
            app_metadata: entry.app_metadata.clone(),
            blocked: entry.blocked,
            created_at: current.as_ref().map_or(now, |u| u.created_at),
            updated_at: current.as_ref().map_or(now, |u| u.updated_at),
            last_login: current.as_ref().and_then(|u| u.last_login),
            logins_count: current.as_ref().map_or(0, |u| u.logins_count),
        };
        let current_roles = match &current {
            Some(u) => {
                let mut ids: Vec<String> = store
                    .list_user_roles(tenant_id, &u.user_id)
                    .await?
                    .into_iter()
                    .map(|r| r.id)
                    .collect();
                ids.sort();
                ids
            }
            None => Vec::new(),
        };
        if current.as_ref() != Some(&next) || current_roles != wanted_roles {
            report.changes.push(format!(
                "{} user {email}",
                if current.is_some() {
                    "updated"
                } else {
                    "created"
                }
            ));
            changes.push(Change::User {
                user: next,
                role_ids: wanted_roles,
            });
        }
    }

    if !changes.is_empty() {
        store.apply_changes(tenant_id, &changes, now).await?;
        core.config_changed();
    }
    Ok(report)
}

/// An avatar URL like Auth0's default, derived from the email's first letters.
#[must_use]
pub fn default_picture(email: &str) -> String {
    let initials: String = email
        .chars()
        .filter(char::is_ascii_alphabetic)
        .take(2)
        .collect::<String>()
        .to_lowercase();
    format!(
        "https://cdn.auth0.com/avatars/{}.png",
        if initials.is_empty() {
            "un".to_owned()
        } else {
            initials
        }
    )
}

/// A problem with one entry of a tenant file or one Management API body: the key and value
/// that locate it in a file, and the message.
#[derive(Debug)]
pub struct EntryError {
    pub key: &'static str,
    pub value: String,
    pub message: String,
}

fn entry_err(key: &'static str, value: &str, message: String) -> EntryError {
    EntryError {
        key,
        value: value.to_owned(),
        message,
    }
}

/// Builds an API from its declared form, keeping the stored id of `current`.
pub fn build_resource_server(
    tenant_id: &str,
    entry: &crate::tenant_file::ResourceServerEntry,
    current: Option<&ResourceServer>,
) -> Result<ResourceServer, EntryError> {
    if entry.identifier.trim().is_empty() || entry.identifier.ends_with("/api/v2/") {
        return Err(entry_err(
            "identifier",
            &entry.identifier,
            format!("{:?} cannot be used as an API identifier", entry.identifier),
        ));
    }
    let mut scope_names = HashSet::new();
    for s in &entry.scopes {
        if s.value.is_empty()
            || s.value.contains(char::is_whitespace)
            || !scope_names.insert(s.value.clone())
        {
            return Err(entry_err(
                "value",
                &s.value,
                format!(
                    "invalid or repeated scope {:?} in {}",
                    s.value, entry.identifier
                ),
            ));
        }
    }
    Ok(ResourceServer {
        tenant_id: tenant_id.to_owned(),
        id: current.map_or_else(
            || portcullis_crypto::token::hex(&portcullis_crypto::random_bytes::<12>()),
            |c| c.id.clone(),
        ),
        identifier: entry.identifier.clone(),
        name: entry.name.clone(),
        scopes: entry.scopes.clone(),
        enforce_policies: entry.enforce_policies,
        token_dialect: entry
            .token_dialect
            .as_ref()
            .map_or_else(|| "access_token".to_owned(), |d| d.0.clone()),
        token_lifetime: entry.token_lifetime.map_or(86_400, |l| l.0),
        signing_alg: entry.signing_alg.0,
        allow_offline_access: entry.allow_offline_access,
    })
}

/// Builds an application from its declared form. A secret is generated for a new
/// confidential client; `current`'s sealed secret is kept unless the entry sets another.
pub fn build_client(
    master: &MasterKey,
    tenant_id: &str,
    entry: &crate::tenant_file::ClientEntry,
    current: Option<&Client>,
) -> Result<Client, EntryError> {
    if let Some(id) = &entry.client_id
        && (id.len() < 8
            || id.len() > 128
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(entry_err(
            "client_id",
            id,
            "client_id must be 8 to 128 letters, digits, '-', '_' or '.'".to_owned(),
        ));
    }
    if entry.name.trim().is_empty() {
        return Err(entry_err(
            "name",
            &entry.name,
            "an application needs a name".to_owned(),
        ));
    }
    let app_type = entry.app_type.unwrap_or(AppType::RegularWeb);
    let method = entry.token_endpoint_auth_method.unwrap_or(match app_type {
        AppType::Spa | AppType::Native => TokenEndpointAuthMethod::None,
        AppType::RegularWeb | AppType::NonInteractive => TokenEndpointAuthMethod::ClientSecretPost,
    });
    if method == TokenEndpointAuthMethod::None && app_type == AppType::NonInteractive {
        return Err(entry_err(
            "name",
            &entry.name,
            format!(
                "client {:?}: a machine-to-machine application must authenticate with a secret",
                entry.name
            ),
        ));
    }
    if method == TokenEndpointAuthMethod::None && entry.client_secret.is_some() {
        return Err(entry_err(
            "client_secret",
            entry.client_secret.as_deref().unwrap_or_default(),
            format!("client {:?}: a public client has no secret", entry.name),
        ));
    }
    let grant_types: Vec<String> = match &entry.grant_types {
        Some(g) => g.iter().map(|g| g.0.clone()).collect(),
        None => match app_type {
            AppType::NonInteractive => vec!["client_credentials".to_owned()],
            AppType::RegularWeb => vec![
                "authorization_code".to_owned(),
                "refresh_token".to_owned(),
                "client_credentials".to_owned(),
            ],
            AppType::Spa | AppType::Native => {
                vec!["authorization_code".to_owned(), "refresh_token".to_owned()]
            }
        },
    };
    if method == TokenEndpointAuthMethod::None
        && grant_types.iter().any(|g| g == "client_credentials")
    {
        return Err(entry_err(
            "name",
            &entry.name,
            format!(
                "client {:?}: a public client cannot use client_credentials",
                entry.name
            ),
        ));
    }
    let client_id = entry
        .client_id
        .clone()
        .or_else(|| current.map(|c| c.client_id.clone()))
        .unwrap_or_else(|| portcullis_crypto::token::random_alphanumeric(32));
    let secret_sealed = if method == TokenEndpointAuthMethod::None {
        None
    } else {
        let existing_secret = current
            .and_then(|c| open_client_secret(master, c).map(|s| (s, c.secret_sealed.clone())));
        match (&entry.client_secret, existing_secret) {
            (Some(wanted), Some((have, sealed)))
                if portcullis_crypto::ct_eq(wanted.as_bytes(), have.as_bytes()) =>
            {
                sealed
            }
            (Some(wanted), _) => {
                if wanted.len() < 16 {
                    return Err(entry_err(
                        "client_secret",
                        wanted,
                        format!(
                            "client {:?}: client_secret must be at least 16 characters",
                            entry.name
                        ),
                    ));
                }
                Some(seal_client_secret(master, &client_id, wanted))
            }
            (None, Some((_, sealed))) => sealed,
            (None, None) => Some(seal_client_secret(master, &client_id, &new_client_secret())),
        }
    };
    let refresh_token = entry
        .refresh_token
        .clone()
        .unwrap_or_else(|| RefreshTokenPolicy::for_client(app_type, method));
    if method == TokenEndpointAuthMethod::None
        && refresh_token.rotation_type == RotationType::NonRotating
    {
        // RFC 9700 §4.14.2: a refresh token of a public client is either sender-constrained
        // or rotated, and Portcullis does not bind refresh tokens to a key.
        return Err(entry_err(
            "refresh_token",
            "non-rotating",
            format!(
                "client {:?}: a public client (token_endpoint_auth_method none) must rotate its refresh tokens: set refresh_token.rotation_type to rotating",
                entry.name
            ),
        ));
    }
    Ok(Client {
        tenant_id: tenant_id.to_owned(),
        client_id,
        name: entry.name.clone(),
        app_type,
        secret_sealed,
        token_endpoint_auth_method: method,
        callbacks: entry.callbacks.iter().map(|u| u.0.clone()).collect(),
        allowed_logout_urls: entry
            .allowed_logout_urls
            .iter()
            .map(|u| u.0.clone())
            .collect(),
        web_origins: entry.web_origins.iter().map(|u| u.0.clone()).collect(),
        grant_types,
        refresh_token,
        is_first_party: entry.is_first_party.unwrap_or(true),
    })
}

/// A new client secret: 384 random bits.
#[must_use]
pub fn generate_client_secret() -> String {
    new_client_secret()
}
