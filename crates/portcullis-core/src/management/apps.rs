//! Applications (clients), APIs (resource servers) and client grants through the
//! Management API. Bodies are read into the same declared forms the tenant file uses, and
//! built by the same functions, so both paths apply one set of rules.

use super::{
    CreateClientGrants, CreateClients, CreateResourceServers, DeleteClientGrants, DeleteClients,
    DeleteResourceServers, Granted, ManagementError, ReadClientGrants, ReadClients,
    ReadResourceServers, UpdateClientGrants, UpdateClientKeys, UpdateClients,
    UpdateResourceServers, Window,
};
use crate::apply::{
    EntryError, build_client, build_resource_server, open_client_secret, seal_client_secret,
};
use crate::clock::Clock;
use crate::model::{Client, ClientGrant, ResourceServer};
use crate::service::Portcullis;
use crate::store::{Change, ClientStore, Page, StoreError};
use crate::tenant_file::{ClientEntry, ResourceServerEntry};
use portcullis_crypto::aead::MasterKey;
use serde_json::{Map, Value, json};

fn invalid(e: &EntryError) -> ManagementError {
    ManagementError::bad_request(format!("Payload validation error: {}", e.message))
}

fn decode<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ManagementError> {
    serde_json::from_value(value)
        .map_err(|e| ManagementError::bad_request(format!("Payload validation error: {e}")))
}

fn conflict_as(what: &'static str) -> impl Fn(StoreError) -> ManagementError {
    move |e| match e {
        StoreError::Conflict(_) => ManagementError::conflict(format!("{what} already exists")),
        other => other.into(),
    }
}

/// Top-level keys of `patch` replace those of `base`.
fn overlay(mut base: Value, patch: Map<String, Value>) -> Value {
    if let Value::Object(map) = &mut base {
        for (k, v) in patch {
            map.insert(k, v);
        }
    }
    base
}

fn resource_server_entry(rs: &ResourceServer) -> Value {
    json!({
        "name": rs.name,
        "identifier": rs.identifier,
        "scopes": rs.scopes,
        "signing_alg": rs.signing_alg.as_str(),
        "token_lifetime": rs.token_lifetime,
        "enforce_policies": rs.enforce_policies,
        "token_dialect": rs.token_dialect,
        "allow_offline_access": rs.allow_offline_access,
    })
}

/// The application in the tenant file's declared form, which a `PATCH` overlays.
fn client_entry(client: &Client) -> Value {
    json!({
        "name": client.name,
        "app_type": client.app_type.as_str(),
        "callbacks": client.callbacks,
        "allowed_logout_urls": client.allowed_logout_urls,
        "web_origins": client.web_origins,
        "grant_types": client.grant_types,
        "token_endpoint_auth_method": client.token_endpoint_auth_method.as_str(),
        "refresh_token": client.refresh_token,
        "is_first_party": client.is_first_party,
        "client_id": client.client_id,
    })
}

/// An application as the Management API lists it, with its secret for callers allowed
/// to read it.
#[derive(Clone, Debug)]
pub struct ApplicationView {
    pub client: Client,
    pub secret: Option<String>,
}

/// Applications, APIs and client grants: the client store, the master key (client
/// secrets), the configuration cache (emptied after each change) and the clock.
pub struct Applications<'a> {
    clients: &'a dyn ClientStore,
    master: &'a MasterKey,
    cache: &'a crate::config_cache::ConfigCache,
    clock: &'a dyn Clock,
    settings: &'a crate::service::Settings,
    tenant_id: &'a str,
}

impl Portcullis {
    /// The applications service.
    #[must_use]
    pub fn applications(&self) -> Applications<'_> {
        Applications {
            clients: self.store.as_ref(),
            master: &self.master,
            cache: &self.config_cache,
            clock: self.clock.as_ref(),
            settings: &self.settings,
            tenant_id: self.tenant_id(),
        }
    }
}

impl Applications<'_> {
    /// Writes one declared object, as `apply` does, in one transaction.
    async fn save(&self, change: Change) -> Result<(), StoreError> {
        let saved = self
            .clients
            .apply_changes(self.tenant_id, &[change], self.clock.now())
            .await;
        // After the write, so a read racing it cannot cache the old value.
        self.cache.invalidate();
        saved
    }

    async fn api_or_404(&self, id: &str) -> Result<ResourceServer, ManagementError> {
        // Auth0 accepts the id or the identifier.
        let apis = self.clients.list_resource_servers(self.tenant_id).await?;
        apis.into_iter()
            .find(|a| a.id == id || a.identifier == id)
            .ok_or_else(|| {
                ManagementError::new(
                    super::Failure::NotFound,
                    "inexistent_resource_server",
                    "The resource server does not exist",
                )
            })
    }

    async fn client_or_404(&self, id: &str) -> Result<Client, ManagementError> {
        self.clients
            .find_client(self.tenant_id, id)
            .await?
            .ok_or_else(|| {
                ManagementError::new(
                    super::Failure::NotFound,
                    "inexistent_client",
                    "The client does not exist",
                )
            })
    }

    /// `GET /api/v2/resource-servers`.
    pub async fn list_resource_servers_api(
        &self,
        _: Granted<ReadResourceServers>,
        window: Window,
    ) -> Result<Page<ResourceServer>, ManagementError> {
        let apis = self.clients.list_resource_servers(self.tenant_id).await?;
        Ok(window.page(apis))
    }

    /// `GET /api/v2/resource-servers/{id}`.
    pub async fn get_resource_server(
        &self,
        _: Granted<ReadResourceServers>,
        id: &str,
    ) -> Result<ResourceServer, ManagementError> {
        self.api_or_404(id).await
    }

    /// `POST /api/v2/resource-servers`.
    pub async fn create_resource_server(
        &self,
        _: Granted<CreateResourceServers>,
        body: Value,
    ) -> Result<ResourceServer, ManagementError> {
        let entry: ResourceServerEntry = decode(body)?;
        let rs = build_resource_server(self.tenant_id, &entry, None).map_err(|e| invalid(&e))?;
        if self
            .clients
            .find_resource_server(self.tenant_id, &rs.identifier)
            .await?
            .is_some()
        {
            return Err(ManagementError::conflict(
                "A resource server with the same identifier already exists",
            ));
        }
        self.save(Change::ResourceServer(rs.clone()))
            .await
            .map_err(conflict_as("A resource server with the same identifier"))?;
        Ok(rs)
    }

    /// `PATCH /api/v2/resource-servers/{id}`: the identifier cannot change.
    pub async fn update_resource_server(
        &self,
        _: Granted<UpdateResourceServers>,
        id: &str,
        patch: Map<String, Value>,
    ) -> Result<ResourceServer, ManagementError> {
        let current = self.api_or_404(id).await?;
        if patch
            .get("identifier")
            .is_some_and(|v| v.as_str() != Some(current.identifier.as_str()))
        {
            return Err(ManagementError::bad_request(
                "Payload validation error: the identifier cannot be changed",
            ));
        }
        let entry: ResourceServerEntry = decode(overlay(resource_server_entry(&current), patch))?;
        let rs = build_resource_server(self.tenant_id, &entry, Some(&current))
            .map_err(|e| invalid(&e))?;
        self.save(Change::ResourceServer(rs.clone())).await?;
        Ok(rs)
    }

    /// `DELETE /api/v2/resource-servers/{id}`: its client grants and role permissions go too.
    pub async fn delete_resource_server(
        &self,
        _: Granted<DeleteResourceServers>,
        id: &str,
    ) -> Result<(), ManagementError> {
        let api = self.api_or_404(id).await?;
        self.clients
            .delete_resource_server(self.tenant_id, &api.id)
            .await?;
        self.cache.invalidate();
        Ok(())
    }

    /// `GET /api/v2/clients`.
    pub async fn list_clients_api(
        &self,
        _: Granted<ReadClients>,
        with_secrets: bool,
        window: Window,
    ) -> Result<Page<ApplicationView>, ManagementError> {
        let clients = self.clients.list_clients(self.tenant_id).await?;
        let Page { items, total } = window.page(clients);
        let items = items
            .into_iter()
            .map(|client| ApplicationView {
                secret: with_secrets
                    .then(|| open_client_secret(self.master, &client))
                    .flatten(),
                client,
            })
            .collect();
        Ok(Page { items, total })
    }

    /// `GET /api/v2/clients/{id}`.
    pub async fn get_client(
        &self,
        _: Granted<ReadClients>,
        with_secret: bool,
        id: &str,
    ) -> Result<ApplicationView, ManagementError> {
        let client = self.client_or_404(id).await?;
        Ok(ApplicationView {
            secret: with_secret
                .then(|| open_client_secret(self.master, &client))
                .flatten(),
            client,
        })
    }

    /// `POST /api/v2/clients`: a confidential client's new secret is in the answer.
    pub async fn create_client(
        &self,
        _: Granted<CreateClients>,
        body: Value,
    ) -> Result<ApplicationView, ManagementError> {
        let entry: ClientEntry = decode(body)?;
        if let Some(id) = &entry.client_id
            && self
                .clients
                .find_client(self.tenant_id, id)
                .await?
                .is_some()
        {
            return Err(ManagementError::conflict(
                "A client with this client_id already exists",
            ));
        }
        let client =
            build_client(self.master, self.tenant_id, &entry, None).map_err(|e| invalid(&e))?;
        self.save(Change::Client(client.clone()))
            .await
            .map_err(conflict_as("A client with this name"))?;
        Ok(ApplicationView {
            secret: open_client_secret(self.master, &client),
            client,
        })
    }

    /// `PATCH /api/v2/clients/{id}`.
    pub async fn update_client(
        &self,
        _: Granted<UpdateClients>,
        with_secret: bool,
        id: &str,
        patch: Map<String, Value>,
    ) -> Result<ApplicationView, ManagementError> {
        let current = self.client_or_404(id).await?;
        if patch
            .get("client_id")
            .is_some_and(|v| v.as_str() != Some(current.client_id.as_str()))
        {
            return Err(ManagementError::bad_request(
                "Payload validation error: the client_id cannot be changed",
            ));
        }
        let entry: ClientEntry = decode(overlay(client_entry(&current), patch))?;
        let client = build_client(self.master, self.tenant_id, &entry, Some(&current))
            .map_err(|e| invalid(&e))?;
        self.save(Change::Client(client.clone()))
            .await
            .map_err(conflict_as("A client with this name"))?;
        Ok(ApplicationView {
            secret: with_secret
                .then(|| open_client_secret(self.master, &client))
                .flatten(),
            client,
        })
    }

    /// `POST /api/v2/clients/{id}/rotate-secret`: the old secret stops working at once.
    pub async fn rotate_client_secret(
        &self,
        _: Granted<UpdateClientKeys>,
        id: &str,
    ) -> Result<ApplicationView, ManagementError> {
        let mut client = self.client_or_404(id).await?;
        if client.is_public() {
            return Err(ManagementError::bad_request(
                "A public client has no secret to rotate",
            ));
        }
        let secret = crate::apply::generate_client_secret();
        client.secret_sealed = Some(seal_client_secret(self.master, &client.client_id, &secret));
        self.save(Change::Client(client.clone())).await?;
        tracing::info!(client_id = %client.client_id, "client secret rotated");
        Ok(ApplicationView {
            client,
            secret: Some(secret),
        })
    }

    /// `DELETE /api/v2/clients/{id}`: its grants go too, and its tokens stop refreshing.
    pub async fn delete_client(
        &self,
        _: Granted<DeleteClients>,
        id: &str,
    ) -> Result<(), ManagementError> {
        let client = self.client_or_404(id).await?;
        self.clients
            .delete_client(self.tenant_id, &client.client_id, self.clock.now())
            .await?;
        self.cache.invalidate();
        Ok(())
    }

    /// `GET /api/v2/client-grants`.
    pub async fn list_client_grants_api(
        &self,
        _: Granted<ReadClientGrants>,
        audience: Option<&str>,
        client_id: Option<&str>,
        window: Window,
    ) -> Result<Page<ClientGrant>, ManagementError> {
        let grants: Vec<ClientGrant> = self
            .clients
            .list_client_grants(self.tenant_id)
            .await?
            .into_iter()
            .filter(|g| audience.is_none_or(|a| g.audience == a))
            .filter(|g| client_id.is_none_or(|c| g.client_id == c))
            .collect();
        Ok(window.page(grants))
    }

    async fn check_grant_scopes(
        &self,
        audience: &str,
        scope: &[String],
    ) -> Result<(), ManagementError> {
        let allowed: Vec<String> = if audience == self.settings.management_audience() {
            super::ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect()
        } else {
            self.clients
                .find_resource_server(self.tenant_id, audience)
                .await?
                .ok_or_else(|| {
                    ManagementError::new(
                        super::Failure::NotFound,
                        "inexistent_resource_server",
                        "No resource server with this audience",
                    )
                })?
                .scopes
                .into_iter()
                .map(|s| s.value)
                .collect()
        };
        if let Some(bad) = scope.iter().find(|s| !allowed.contains(s)) {
            return Err(ManagementError::bad_request(format!(
                "Payload validation error: the API has no scope {bad:?}"
            )));
        }
        Ok(())
    }

    /// `POST /api/v2/client-grants`.
    pub async fn create_client_grant(
        &self,
        _: Granted<CreateClientGrants>,
        client_id: &str,
        audience: String,
        scope: Vec<String>,
    ) -> Result<ClientGrant, ManagementError> {
        let client = self.client_or_404(client_id).await?;
        self.check_grant_scopes(&audience, &scope).await?;
        let exists = self
            .clients
            .list_client_grants(self.tenant_id)
            .await?
            .iter()
            .any(|g| g.client_id == client.client_id && g.audience == audience);
        if exists {
            return Err(ManagementError::conflict(
                "A client grant for this client and audience already exists",
            ));
        }
        let grant = ClientGrant {
            tenant_id: self.tenant_id.to_owned(),
            id: format!("cgr_{}", portcullis_crypto::token::random_alphanumeric(16)),
            client_id: client.client_id,
            audience,
            scope,
        };
        self.save(Change::ClientGrant(grant.clone())).await?;
        Ok(grant)
    }

    /// `PATCH /api/v2/client-grants/{id}`.
    pub async fn update_client_grant(
        &self,
        _: Granted<UpdateClientGrants>,
        id: &str,
        scope: Vec<String>,
    ) -> Result<ClientGrant, ManagementError> {
        let mut grant = self
            .clients
            .list_client_grants(self.tenant_id)
            .await?
            .into_iter()
            .find(|g| g.id == id)
            .ok_or_else(|| {
                ManagementError::new(
                    super::Failure::NotFound,
                    "inexistent_client_grant",
                    "The client grant does not exist",
                )
            })?;
        self.check_grant_scopes(&grant.audience, &scope).await?;
        grant.scope = scope;
        self.save(Change::ClientGrant(grant.clone())).await?;
        Ok(grant)
    }

    /// `DELETE /api/v2/client-grants/{id}`.
    pub async fn delete_client_grant(
        &self,
        _: Granted<DeleteClientGrants>,
        id: &str,
    ) -> Result<(), ManagementError> {
        let deleted = self.clients.delete_client_grant(self.tenant_id, id).await?;
        self.cache.invalidate();
        if !deleted {
            return Err(ManagementError::new(
                super::Failure::NotFound,
                "inexistent_client_grant",
                "The client grant does not exist",
            ));
        }
        Ok(())
    }

    /// The application named `name`, or with client id `name` (the command line's way to
    /// name one).
    pub async fn find(&self, name: &str) -> Result<Option<Client>, StoreError> {
        Ok(self
            .clients
            .list_clients(self.tenant_id)
            .await?
            .into_iter()
            .find(|c| c.name == name || c.client_id == name))
    }

    /// The client secret of `client`, opened (`None` without one, or under another key).
    #[must_use]
    pub fn secret(&self, client: &Client) -> Option<String> {
        open_client_secret(self.master, client)
    }
}
