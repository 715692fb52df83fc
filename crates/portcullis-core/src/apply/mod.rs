//! Turns a parsed tenant file into the changes it implies against the stored state, then
//! applies them in one transaction. Applying the same file twice changes nothing.

use crate::model::{ClientGrant, DATABASE_CONNECTION, Role, Tenant, User};
use crate::passwords::PasswordPool;
use crate::service::Portcullis;
use crate::store::{Change, Store, StoreError};
use crate::tenant_file::{FileError, TenantFile, locate};
use portcullis_crypto::aead::MasterKey;
use std::collections::{HashMap, HashSet};

mod entries;

pub use entries::{
    EntryError, build_client, build_resource_server, default_picture, generate_client_secret,
    open_client_secret, seal_client_secret,
};

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
