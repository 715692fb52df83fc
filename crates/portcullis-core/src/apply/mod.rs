//! Turns a parsed tenant file into the changes it implies against the stored state, then
//! applies them in one transaction. Applying the same file twice changes nothing.

use crate::model::{Tenant, Timestamp};
use crate::service::Portcullis;
use crate::store::{Change, Store, StoreError};
use crate::tenant_file::{FileError, TenantFile, locate};

mod apps;
mod entries;
mod settings;
mod users;

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
    #[error("{}", .0.chain())]
    Internal(#[source] crate::error::Internal),
}

/// What an apply did, one line per created or updated object.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub changes: Vec<String>,
}

/// The changes a tenant file implies, planned section by section against the stored state.
struct Plan<'a> {
    core: &'a Portcullis,
    /// The file's source, for the line numbers of errors.
    text: &'a str,
    tenant_id: &'a str,
    now: Timestamp,
    changes: Vec<Change>,
    report: ApplyReport,
}

impl<'a> Plan<'a> {
    fn new(core: &'a Portcullis, text: &'a str) -> Self {
        Self {
            core,
            text,
            tenant_id: core.tenant_id(),
            now: core.now(),
            changes: Vec::new(),
            report: ApplyReport::default(),
        }
    }

    fn store(&self) -> &'a dyn Store {
        self.core.store.as_ref()
    }

    /// An error in the file, at the line where `key: value` appears.
    fn err(&self, key: &str, value: &str, message: String) -> ApplyError {
        ApplyError::File(FileError {
            line: locate(self.text, key, value),
            message,
        })
    }

    /// A change, reported as `line`.
    fn update(&mut self, line: String, change: Change) {
        self.report.changes.push(line);
        self.changes.push(change);
    }

    /// A created or updated object, reported as `created what` or `updated what`.
    fn record(&mut self, existed: bool, what: String, change: Change) {
        let verb = if existed { "updated" } else { "created" };
        self.update(format!("{verb} {what}"), change);
    }

    /// Applies every planned change in one transaction.
    async fn commit(self) -> Result<ApplyReport, ApplyError> {
        if !self.changes.is_empty() {
            self.store()
                .apply_changes(self.tenant_id, &self.changes, self.now)
                .await?;
            self.core.config_changed();
        }
        Ok(self.report)
    }
}

/// Plans and applies `file` (already interpolated; `text` is its source, for error lines).
pub async fn apply(
    core: &Portcullis,
    file: TenantFile,
    text: &str,
) -> Result<ApplyReport, ApplyError> {
    core.store
        .ensure_tenant(&Tenant::new_default(core.tenant_id()), core.now())
        .await?;
    let mut plan = Plan::new(core, text);
    plan.plan_tenant(&file).await?;
    plan.plan_settings(&file).await?;
    let api_identifiers = plan.plan_resource_servers(&file).await?;
    let client_ids_by_name = plan.plan_clients(&file).await?;
    plan.plan_client_grants(&file, &client_ids_by_name, &api_identifiers)
        .await?;
    let role_ids = plan.plan_roles(&file, &api_identifiers).await?;
    plan.plan_users(&file, &role_ids).await?;
    plan.commit().await
}
