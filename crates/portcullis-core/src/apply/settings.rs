//! The tenant file's settings: the tenant itself, attack protection, the database
//! connection and log streams.

use super::{ApplyError, Plan};
use crate::model::Tenant;
use crate::store::Change;
use crate::tenant_file::TenantFile;

impl Plan<'_> {
    /// `tenant:`: the tenant's own settings.
    pub(super) async fn plan_tenant(&mut self, file: &TenantFile) -> Result<(), ApplyError> {
        if let Some(section) = &file.tenant {
            let current = self
                .store()
                .find_tenant(self.tenant_id)
                .await?
                .unwrap_or_else(|| Tenant::new_default(self.tenant_id));
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
                return Err(self.err(
                    "idle_session_lifetime",
                    &next.idle_session_lifetime_hours.to_string(),
                    "idle_session_lifetime cannot exceed session_lifetime".to_owned(),
                ));
            }
            if next != current {
                self.update("updated tenant settings".to_owned(), Change::Tenant(next));
            }
        }
        Ok(())
    }

    /// `attackProtection:`, `databases:` and `logStreams:`: settings documents.
    pub(super) async fn plan_settings(&mut self, file: &TenantFile) -> Result<(), ApplyError> {
        if let Some(attack) = &file.attack_protection {
            attack
                .validate()
                .map_err(|m| self.err("attackProtection", "", m))?;
            let current: crate::protection::AttackProtection = self
                .core
                .setting(crate::protection::ATTACK_PROTECTION)
                .await?;
            if &current != attack {
                self.update(
                    "updated attack protection".to_owned(),
                    Change::Setting {
                        name: crate::protection::ATTACK_PROTECTION.to_owned(),
                        value: serde_json::to_value(attack).map_err(|e| {
                            ApplyError::Internal(crate::error::Internal::with(
                                "encoding a setting",
                                e,
                            ))
                        })?,
                    },
                );
            }
        }
        for db in &file.databases {
            if db.name != crate::model::DATABASE_CONNECTION
                || db.strategy.as_deref().is_some_and(|s| s != "auth0")
            {
                return Err(self.err(
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
                .map_err(|m| self.err("name", &db.name, m))?;
            let current: crate::protection::policy::ConnectionOptions = self
                .core
                .setting(crate::protection::DATABASE_CONNECTION)
                .await?;
            if current != db.options {
                self.update(
                    format!("updated database connection {}", db.name),
                    Change::Setting {
                        name: crate::protection::DATABASE_CONNECTION.to_owned(),
                        value: serde_json::to_value(&db.options).map_err(|e| {
                            ApplyError::Internal(crate::error::Internal::with(
                                "encoding a setting",
                                e,
                            ))
                        })?,
                    },
                );
            }
        }
        if !file.log_streams.is_empty() {
            let streams = crate::log_stream::validate(&file.log_streams)
                .map_err(|m| self.err("logStreams", "", m))?;
            let current = self.core.log_streams().await?;
            if current != streams {
                let sealed = self
                    .core
                    .seal_log_streams(&streams)
                    .map_err(|e| ApplyError::Internal(crate::error::Internal::new(e)))?;
                self.update(
                    "updated log streams".to_owned(),
                    Change::Setting {
                        name: crate::log_stream::LOG_STREAMS.to_owned(),
                        value: serde_json::to_value(&sealed).map_err(|e| {
                            ApplyError::Internal(crate::error::Internal::with(
                                "encoding a setting",
                                e,
                            ))
                        })?,
                    },
                );
            }
        }
        Ok(())
    }
}
