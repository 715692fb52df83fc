//! The tenant file's roles and users of the database connection.

use super::{ApplyError, Plan, default_picture};
use crate::model::{DATABASE_CONNECTION, Role, User};
use crate::store::Change;
use crate::tenant_file::TenantFile;
use std::collections::{HashMap, HashSet};

impl Plan<'_> {
    /// `roles:`, by name. Answers the role ids by name.
    pub(super) async fn plan_roles(
        &mut self,
        file: &TenantFile,
        api_identifiers: &HashSet<String>,
    ) -> Result<HashMap<String, String>, ApplyError> {
        let existing_roles = self.store().list_roles(self.tenant_id).await?;
        let mut role_ids: HashMap<String, String> = existing_roles
            .iter()
            .map(|r| (r.name.clone(), r.id.clone()))
            .collect();
        for entry in &file.roles {
            if entry.name.trim().is_empty() {
                return Err(self.err("name", &entry.name, "a role needs a name".to_owned()));
            }
            for p in &entry.permissions {
                if !api_identifiers.contains(&p.resource_server_identifier) {
                    return Err(self.err(
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
                tenant_id: self.tenant_id.to_owned(),
                id: current.map_or_else(
                    || format!("rol_{}", portcullis_crypto::token::random_alphanumeric(16)),
                    |r| r.id.clone(),
                ),
                name: entry.name.clone(),
                description: entry.description.clone(),
                permissions,
            };
            if current != Some(&next) {
                self.record(
                    current.is_some(),
                    format!("role {}", next.name),
                    Change::Role(next.clone()),
                );
            }
            role_ids.insert(next.name, next.id);
        }
        Ok(role_ids)
    }

    /// `users:` of the database connection, by email.
    pub(super) async fn plan_users(
        &mut self,
        file: &TenantFile,
        role_ids: &HashMap<String, String>,
    ) -> Result<(), ApplyError> {
        let mut seen = HashSet::new();
        for entry in &file.users {
            let email = entry.email.0.clone();
            if !seen.insert(crate::model::normalize_email(&email)) {
                return Err(self.err("email", &email, format!("user {email} is listed twice")));
            }
            let mut wanted_roles = Vec::new();
            for name in &entry.roles {
                match role_ids.get(name) {
                    Some(id) => wanted_roles.push(id.clone()),
                    None => {
                        return Err(self.err(
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
                return Err(self.err(
                    "email",
                    &email,
                    format!("user {email}: user_metadata and app_metadata must be mappings"),
                ));
            }
            let current = self
                .store()
                .find_user_by_email(self.tenant_id, DATABASE_CONNECTION, &email)
                .await?;
            let password_hash = match (&entry.password, &current) {
                (Some(pw), Some(user))
                    if self
                        .core
                        .passwords
                        .verify(pw.clone(), user.password_hash.clone())
                        .await =>
                {
                    user.password_hash.clone()
                }
                (Some(pw), _) => {
                    if pw.chars().count() < 8 {
                        return Err(self.err(
                            "email",
                            &email,
                            format!("user {email}: the password must have at least 8 characters"),
                        ));
                    }
                    Some(
                        self.core
                            .passwords
                            .hash(pw.clone())
                            .await
                            .map_err(|e| ApplyError::Internal(crate::error::Internal::new(e)))?,
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
                tenant_id: self.tenant_id.to_owned(),
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
                created_at: current.as_ref().map_or(self.now, |u| u.created_at),
                updated_at: current.as_ref().map_or(self.now, |u| u.updated_at),
                last_login: current.as_ref().and_then(|u| u.last_login),
                logins_count: current.as_ref().map_or(0, |u| u.logins_count),
            };
            let current_roles = match &current {
                Some(u) => {
                    let mut ids: Vec<String> = self
                        .store()
                        .list_user_roles(self.tenant_id, &u.user_id)
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
                self.record(
                    current.is_some(),
                    format!("user {email}"),
                    Change::User {
                        user: next,
                        role_ids: wanted_roles,
                    },
                );
            }
        }
        Ok(())
    }
}
