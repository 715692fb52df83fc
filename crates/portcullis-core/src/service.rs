//! The service object every surface (HTTP, CLI, tests) calls into. It owns the store, the
//! clock, the keys and the password pool; the OAuth rules live in `crate::oauth`.

use crate::clock::Clock;
use crate::keys::{KeyError, Keyring};
use crate::model::{Tenant, Timestamp};
use crate::passwords::PasswordPool;
use crate::store::{Store, StoreError};
use portcullis_crypto::aead::MasterKey;
use std::sync::Arc;

/// Settings the services need. The issuer always ends with `/`.
#[derive(Clone, Debug)]
pub struct Settings {
    pub issuer: String,
    pub tenant_id: String,
    /// Seconds an authorization code lives.
    pub code_lifetime: i64,
    /// Seconds a login page stays valid.
    pub login_lifetime: i64,
    /// Seconds an ID token lives (Auth0's default is 36000).
    pub id_token_lifetime: i64,
    /// Seconds an access token for `/userinfo` only lives.
    pub userinfo_token_lifetime: i64,
}

impl Settings {
    /// Defaults for `issuer` (a trailing `/` is added when missing).
    #[must_use]
    pub fn new(issuer: &str) -> Self {
        let issuer = if issuer.ends_with('/') {
            issuer.to_owned()
        } else {
            format!("{issuer}/")
        };
        Self {
            issuer,
            tenant_id: crate::model::DEFAULT_TENANT.to_owned(),
            code_lifetime: 300,
            login_lifetime: 1800,
            id_token_lifetime: 36_000,
            userinfo_token_lifetime: 86_400,
        }
    }

    /// `{issuer}userinfo`, the audience that means "no API" in Auth0.
    #[must_use]
    pub fn userinfo_audience(&self) -> String {
        format!("{}userinfo", self.issuer)
    }

    /// `{issuer}api/v2/`, the Management API's audience.
    #[must_use]
    pub fn management_audience(&self) -> String {
        format!("{}api/v2/", self.issuer)
    }

    /// An absolute URL for `path` (without its leading `/`) under the issuer.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path.trim_start_matches('/'))
    }
}

/// Everything a request needs, shared behind an `Arc`.
pub struct Portcullis {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) master: Arc<MasterKey>,
    pub(crate) keys: Keyring,
    pub(crate) passwords: PasswordPool,
    pub(crate) settings: Settings,
    /// Delivers account emails (verification, reset, unblock, breach notices).
    pub(crate) mailer: Arc<dyn crate::accounts::mailer::Mailer>,
    /// The offline list of breached passwords.
    pub(crate) breached: Arc<crate::protection::breached::BreachedList>,
    /// The queue of the batched audit writer, when one runs (`with_batched_audit`).
    pub(crate) audit_queue: Option<crate::audit::AuditQueue>,
    /// Applications, APIs and client grants, briefly cached for the token endpoint.
    pub(crate) config_cache: crate::config_cache::ConfigCache,
    /// Shares of rate-limit buckets held by this process.
    pub(crate) leases: crate::protection::throttle::Leases,
}

impl std::fmt::Debug for Portcullis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Portcullis")
            .field("issuer", &self.settings.issuer)
            .field("backend", &self.store.backend())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

impl Portcullis {
    /// Prepares the default tenant and its keys.
    pub async fn start(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        master: Arc<MasterKey>,
        passwords: PasswordPool,
        settings: Settings,
    ) -> Result<Self, StartError> {
        let now = clock.now();
        store
            .ensure_tenant(&Tenant::new_default(&settings.tenant_id), now)
            .await?;
        let keys = Keyring::open(store.as_ref(), &master, &settings.tenant_id, now).await?;
        Ok(Self {
            store,
            clock,
            master,
            keys,
            passwords,
            settings,
            mailer: Arc::new(crate::accounts::mailer::NoMailer),
            breached: Arc::new(crate::protection::breached::BreachedList::embedded()),
            audit_queue: None,
            config_cache: crate::config_cache::ConfigCache::default(),
            leases: crate::protection::throttle::Leases::default(),
        })
    }

    /// Writes audit events in batches from a background task (the server does this; call
    /// `flush_audit` before shutting down). Needs a running tokio runtime.
    #[must_use]
    pub fn with_batched_audit(mut self) -> Self {
        self.audit_queue = Some(crate::audit::AuditQueue::start(Arc::clone(&self.store)));
        self
    }

    /// Delivers account emails through `mailer`.
    #[must_use]
    pub fn with_mailer(mut self, mailer: Arc<dyn crate::accounts::mailer::Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    /// Checks passwords against `list`.
    #[must_use]
    pub fn with_breached_list(mut self, list: crate::protection::breached::BreachedList) -> Self {
        self.breached = Arc::new(list);
        self
    }

    /// The deployment's settings (issuer, lifetimes).
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Which database backend serves this deployment (`sqlite` or `postgres`).
    #[must_use]
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Readiness: whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }

    /// The public signing keys, as `/.well-known/jwks.json` publishes them.
    #[must_use]
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.current().jwks().clone()
    }

    /// The signing keys in use, for verifying our own tokens.
    #[must_use]
    pub fn keyring(&self) -> &Keyring {
        &self.keys
    }

    /// The password hashing pool (shared; cloning is cheap).
    #[must_use]
    pub fn password_pool(&self) -> PasswordPool {
        self.passwords.clone()
    }

    #[must_use]
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    #[must_use]
    pub fn tenant_id(&self) -> &str {
        &self.settings.tenant_id
    }

    /// Whether `origin` is one of any application's Allowed Web Origins (for CORS on the
    /// endpoints a browser application calls).
    pub async fn origin_allowed(&self, origin: &str) -> Result<bool, StoreError> {
        let origin = origin.trim_end_matches('/');
        Ok(self
            .store
            .list_clients(self.tenant_id())
            .await?
            .iter()
            .any(|c| {
                c.web_origins
                    .iter()
                    .any(|w| w.trim_end_matches('/') == origin)
            }))
    }

    /// The signing keys, published and retired.
    pub async fn signing_keys(&self) -> Result<Vec<crate::model::SigningKeyRecord>, StoreError> {
        self.store.list_signing_keys(self.tenant_id()).await
    }

    /// Housekeeping: deletes rows that can no longer be used (expired codes, transactions,
    /// sessions, tokens).
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        self.store.purge_expired(self.now()).await
    }

    /// Re-reads signing keys (run periodically so CLI rotations reach running servers).
    pub async fn reload_keys(&self) -> Result<(), KeyError> {
        self.keys
            .reload(
                self.store.as_ref(),
                &self.master,
                self.tenant_id(),
                self.now(),
            )
            .await
    }

    /// Rotates the signing key of `alg`: the new key is published now and signs from
    /// `now + activate_in`; old keys stay published until the longest-lived token they
    /// could have signed has expired.
    pub async fn rotate_key(
        &self,
        alg: portcullis_crypto::jose::SigningAlg,
        activate_in: i64,
    ) -> Result<String, KeyError> {
        let now = self.now();
        let apis = self.store.list_resource_servers(self.tenant_id()).await?;
        let longest = apis
            .iter()
            .map(|a| a.token_lifetime)
            .chain([
                self.settings.id_token_lifetime,
                self.settings.userinfo_token_lifetime,
            ])
            .max()
            .unwrap_or(86_400);
        let active_from = now + activate_in;
        let kid = crate::keys::add_key(
            self.store.as_ref(),
            &self.master,
            self.tenant_id(),
            alg,
            now,
            activate_in,
            active_from + longest,
        )
        .await?;
        self.reload_keys().await?;
        Ok(kid)
    }
}
