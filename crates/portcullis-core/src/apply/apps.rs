//! The tenant file's applications: APIs (resource servers), clients and client grants.

use super::{ApplyError, Plan, build_client, build_resource_server};
use crate::model::ClientGrant;
use crate::store::Change;
use crate::tenant_file::TenantFile;
use std::collections::{HashMap, HashSet};

impl Plan<'_> {
    /// `resource_servers:`, by identifier. Answers every API identifier there will be.
    pub(super) async fn plan_resource_servers(
        &mut self,
        file: &TenantFile,
    ) -> Result<HashSet<String>, ApplyError> {
        let existing_apis = self.store().list_resource_servers(self.tenant_id).await?;
        let mut api_identifiers: HashSet<String> =
            existing_apis.iter().map(|a| a.identifier.clone()).collect();
        let mut seen = HashSet::new();
        for entry in &file.resource_servers {
            if !seen.insert(entry.identifier.clone()) {
                return Err(self.err(
                    "identifier",
                    &entry.identifier,
                    format!("resource server {:?} is listed twice", entry.identifier),
                ));
            }
            let current = existing_apis
                .iter()
                .find(|a| a.identifier == entry.identifier);
            let next = build_resource_server(self.tenant_id, entry, current)
                .map_err(|e| self.err(e.key, &e.value, e.message))?;
            if current != Some(&next) {
                self.record(
                    current.is_some(),
                    format!("API {}", next.identifier),
                    Change::ResourceServer(next),
                );
            }
            api_identifiers.insert(entry.identifier.clone());
        }
        Ok(api_identifiers)
    }

    /// `clients:`, by client_id when given, else by name. Answers the client ids by name.
    pub(super) async fn plan_clients(
        &mut self,
        file: &TenantFile,
    ) -> Result<HashMap<String, String>, ApplyError> {
        let existing_clients = self.store().list_clients(self.tenant_id).await?;
        let mut client_ids_by_name: HashMap<String, String> = existing_clients
            .iter()
            .map(|c| (c.name.clone(), c.client_id.clone()))
            .collect();
        let mut seen = HashSet::new();
        for entry in &file.clients {
            if !seen.insert(entry.name.clone()) {
                return Err(self.err(
                    "name",
                    &entry.name,
                    format!("client {:?} is listed twice", entry.name),
                ));
            }
            let current = match &entry.client_id {
                Some(id) => existing_clients.iter().find(|c| &c.client_id == id),
                None => existing_clients.iter().find(|c| c.name == entry.name),
            };
            let next = build_client(&self.core.master, self.tenant_id, entry, current)
                .map_err(|e| self.err(e.key, &e.value, e.message))?;
            let client_id = next.client_id.clone();
            if current != Some(&next) {
                self.record(
                    current.is_some(),
                    format!("client {}", next.name),
                    Change::Client(next),
                );
            }
            client_ids_by_name.insert(entry.name.clone(), client_id);
        }
        Ok(client_ids_by_name)
    }

    /// `client_grants:`, by (client, audience).
    pub(super) async fn plan_client_grants(
        &mut self,
        file: &TenantFile,
        client_ids_by_name: &HashMap<String, String>,
        api_identifiers: &HashSet<String>,
    ) -> Result<(), ApplyError> {
        let existing_grants = self.store().list_client_grants(self.tenant_id).await?;
        let known_client_ids: HashSet<&String> = client_ids_by_name.values().collect();
        for entry in &file.client_grants {
            let client_id = match client_ids_by_name.get(&entry.client_id) {
                Some(id) => id.clone(),
                None if known_client_ids.contains(&entry.client_id) => entry.client_id.clone(),
                None => {
                    return Err(self.err(
                        "client_id",
                        &entry.client_id,
                        format!("client grant: no client named {:?}", entry.client_id),
                    ));
                }
            };
            if entry.audience == self.core.settings.management_audience() {
                if let Some(bad) = entry
                    .scope
                    .iter()
                    .find(|s| !crate::management::ALL_SCOPES.contains(&s.as_str()))
                {
                    return Err(self.err(
                        "audience",
                        &entry.audience,
                        format!("client grant: the Management API has no scope {bad:?}"),
                    ));
                }
            } else if !api_identifiers.contains(&entry.audience) {
                return Err(self.err(
                    "audience",
                    &entry.audience,
                    format!("client grant: no API with identifier {:?}", entry.audience),
                ));
            }
            let current = existing_grants
                .iter()
                .find(|g| g.client_id == client_id && g.audience == entry.audience);
            let next = ClientGrant {
                tenant_id: self.tenant_id.to_owned(),
                id: current.map_or_else(
                    || format!("cgr_{}", portcullis_crypto::token::random_alphanumeric(16)),
                    |g| g.id.clone(),
                ),
                client_id,
                audience: entry.audience.clone(),
                scope: entry.scope.clone(),
            };
            if current != Some(&next) {
                self.record(
                    current.is_some(),
                    format!("client grant for {}", next.audience),
                    Change::ClientGrant(next),
                );
            }
        }
        Ok(())
    }
}
