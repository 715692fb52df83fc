//! A short-lived cache of the configuration that the token endpoint, `/authorize` and the
//! login pages read on every request: applications, APIs, client grants, the tenant's
//! settings and the settings documents (attack protection, the database connection's
//! options, log streams). A change made through this process (the Management API, `apply`)
//! empties it at once; a change made by another replica or by the CLI is seen within the
//! time to live (one second by default). Unknown ids are cached too, so a flood of made-up
//! client ids cannot reach the database on every request.

use crate::model::{Client, ClientGrant, ResourceServer, Tenant};
use crate::service::Portcullis;
use crate::store::StoreError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Entries per map at most; past it the map starts again empty.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
pub struct ConfigCache {
    ttl: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    clients: HashMap<String, (Instant, Option<Client>)>,
    apis: HashMap<String, (Instant, Option<ResourceServer>)>,
    grants: Option<(Instant, Arc<Vec<ClientGrant>>)>,
    tenant: Option<(Instant, Tenant)>,
    settings: HashMap<String, (Instant, Option<serde_json::Value>)>,
    /// Bumped by every invalidation, so a read that raced a change is not stored.
    generation: u64,
}

impl ConfigCache {
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets everything (after a configuration change).
    pub fn invalidate(&self) {
        let mut state = self.lock();
        let generation = state.generation + 1;
        *state = State {
            generation,
            ..State::default()
        };
    }

    fn fresh(&self, at: Instant) -> bool {
        at.elapsed() < self.ttl
    }
}

impl Default for ConfigCache {
    fn default() -> Self {
        Self::new(Duration::from_secs(1))
    }
}

impl Portcullis {
    /// `key`'s entry of the map `entries` picks, from the cache when fresh; otherwise what
    /// `load` reads, stored unless the configuration changed meanwhile.
    async fn cached_entry<V, F>(
        &self,
        entries: fn(&mut State) -> &mut HashMap<String, (Instant, V)>,
        key: &str,
        load: impl FnOnce() -> F,
    ) -> Result<V, StoreError>
    where
        V: Clone,
        F: std::future::Future<Output = Result<V, StoreError>>,
    {
        let generation = {
            let mut state = self.config_cache.lock();
            if let Some((at, value)) = entries(&mut state).get(key)
                && self.config_cache.fresh(*at)
            {
                return Ok(value.clone());
            }
            state.generation
        };
        let value = load().await?;
        let mut state = self.config_cache.lock();
        if state.generation == generation {
            let map = entries(&mut state);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(key.to_owned(), (Instant::now(), value.clone()));
        }
        Ok(value)
    }

    /// An application, from the cache when fresh.
    pub async fn cached_client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        self.cached_entry(
            |s| &mut s.clients,
            client_id,
            || self.store.find_client(self.tenant_id(), client_id),
        )
        .await
    }

    /// An API by identifier, from the cache when fresh.
    pub async fn cached_resource_server(
        &self,
        identifier: &str,
    ) -> Result<Option<ResourceServer>, StoreError> {
        self.cached_entry(
            |s| &mut s.apis,
            identifier,
            || {
                self.store
                    .find_resource_server(self.tenant_id(), identifier)
            },
        )
        .await
    }

    /// Every client grant, from the cache when fresh.
    pub async fn cached_client_grants(&self) -> Result<Arc<Vec<ClientGrant>>, StoreError> {
        let generation = {
            let state = self.config_cache.lock();
            if let Some((at, grants)) = &state.grants
                && self.config_cache.fresh(*at)
            {
                return Ok(Arc::clone(grants));
            }
            state.generation
        };
        let grants = Arc::new(self.store.list_client_grants(self.tenant_id()).await?);
        let mut state = self.config_cache.lock();
        if state.generation == generation {
            state.grants = Some((Instant::now(), Arc::clone(&grants)));
        }
        Ok(grants)
    }

    /// The tenant's settings, from the cache when fresh.
    pub async fn tenant(&self) -> Result<Tenant, StoreError> {
        let generation = {
            let state = self.config_cache.lock();
            if let Some((at, tenant)) = &state.tenant
                && self.config_cache.fresh(*at)
            {
                return Ok(tenant.clone());
            }
            state.generation
        };
        let tenant = self
            .store
            .find_tenant(self.tenant_id())
            .await?
            .unwrap_or_else(|| Tenant::new_default(self.tenant_id()));
        let mut state = self.config_cache.lock();
        if state.generation == generation {
            state.tenant = Some((Instant::now(), tenant.clone()));
        }
        Ok(tenant)
    }

    /// A settings document by name (`None` when none is stored), from the cache when fresh.
    pub async fn cached_setting(
        &self,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.cached_entry(
            |s| &mut s.settings,
            name,
            || self.store.find_setting(self.tenant_id(), name),
        )
        .await
    }

    /// Tells the cache the configuration changed.
    pub fn config_changed(&self) {
        self.config_cache.invalidate();
    }
}
