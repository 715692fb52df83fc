//! Signing keys: generated on first start, sealed at rest, rotated with a publish-first
//! delay, and kept in the JWKS until every token they signed has expired.

use crate::model::{SigningKeyRecord, Timestamp};
use crate::store::{Store, StoreError};
use portcullis_crypto::aead::MasterKey;
use portcullis_crypto::jose::{SigningAlg, SigningKey, Verifier};
use serde_json::{Value, json};
use std::sync::{Arc, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing key {kid} cannot be opened with this master key")]
    Sealed { kid: String },
    #[error("key generation failed")]
    Generate,
    #[error("no active {0} signing key")]
    NoActiveKey(SigningAlg),
}

struct LoadedKey {
    record: SigningKeyRecord,
    key: Arc<SigningKey>,
}

/// The keys loaded at one moment: what signs, what is published, what verifies.
pub struct KeySet {
    keys: Vec<LoadedKey>,
    jwks: Value,
    verifier: Verifier,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field(
                "kids",
                &self.keys.iter().map(|k| &k.record.kid).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl KeySet {
    /// The key that signs for `alg` at `now`: the latest one already active.
    #[must_use]
    pub fn signer(&self, alg: SigningAlg, now: Timestamp) -> Option<Arc<SigningKey>> {
        self.keys
            .iter()
            .filter(|k| k.record.alg == alg && k.record.active_from <= now)
            .filter(|k| k.record.expires_at.is_none_or(|e| e > now))
            .max_by_key(|k| (k.record.active_from, k.record.created_at))
            .map(|k| Arc::clone(&k.key))
    }

    /// `{"keys": [...]}` for `/.well-known/jwks.json`.
    #[must_use]
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    #[must_use]
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }
}

/// Holds the current [`KeySet`] and reloads it from the store.
pub struct Keyring {
    current: RwLock<Arc<KeySet>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").finish_non_exhaustive()
    }
}

impl Keyring {
    /// Loads the tenant's keys, generating one per algorithm if there are none yet.
    pub async fn open(
        store: &dyn Store,
        master: &MasterKey,
        tenant_id: &str,
        now: Timestamp,
    ) -> Result<Self, KeyError> {
        let existing = store.list_signing_keys(tenant_id).await?;
        for alg in SigningAlg::ALL {
            if !existing.iter().any(|k| k.alg == alg) {
                add_key(store, master, tenant_id, alg, now, 0, now).await?;
            }
        }
        let set = load(store, master, tenant_id, now).await?;
        Ok(Self {
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// The keys as last loaded.
    #[must_use]
    pub fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.current.read().expect("keyring lock poisoned"))
    }

    /// Re-reads the keys (picks up rotations done by the CLI or another replica).
    pub async fn reload(
        &self,
        store: &dyn Store,
        master: &MasterKey,
        tenant_id: &str,
        now: Timestamp,
    ) -> Result<(), KeyError> {
        let set = load(store, master, tenant_id, now).await?;
        *self.current.write().expect("keyring lock poisoned") = Arc::new(set);
        Ok(())
    }
}

async fn load(
    store: &dyn Store,
    master: &MasterKey,
    tenant_id: &str,
    now: Timestamp,
) -> Result<KeySet, KeyError> {
    let mut keys = Vec::new();
    for record in store.list_signing_keys(tenant_id).await? {
        if record.expires_at.is_some_and(|e| e <= now) {
            continue;
        }
        let der = master
            .open(&purpose(&record.kid), &record.private_key_sealed)
            .map_err(|_| KeyError::Sealed {
                kid: record.kid.clone(),
            })?;
        let key = SigningKey::from_pkcs8(&record.kid, record.alg, &der).map_err(|_| {
            KeyError::Sealed {
                kid: record.kid.clone(),
            }
        })?;
        keys.push(LoadedKey {
            record,
            key: Arc::new(key),
        });
    }
    let jwks =
        json!({ "keys": keys.iter().map(|k| k.key.public_jwk().clone()).collect::<Vec<_>>() });
    let verifier = Verifier::from_jwks(keys.iter().map(|k| k.key.public_jwk()));
    Ok(KeySet {
        keys,
        jwks,
        verifier,
    })
}

fn purpose(kid: &str) -> String {
    format!("signing_key:{kid}")
}

/// Adds a new key for `alg` that is published at once and signs from `now + activate_in`;
/// the keys it replaces stay published until `old_keys_expire_at`.
pub async fn add_key(
    store: &dyn Store,
    master: &MasterKey,
    tenant_id: &str,
    alg: SigningAlg,
    now: Timestamp,
    activate_in: i64,
    old_keys_expire_at: Timestamp,
) -> Result<String, KeyError> {
    let (key, der) = SigningKey::generate(alg).map_err(|_| KeyError::Generate)?;
    let record = SigningKeyRecord {
        tenant_id: tenant_id.to_owned(),
        kid: key.kid().to_owned(),
        alg,
        private_key_sealed: master.seal(&purpose(key.kid()), &der),
        created_at: now,
        active_from: now + activate_in,
        retired_at: None,
        expires_at: None,
    };
    store.add_signing_key(&record, old_keys_expire_at).await?;
    Ok(record.kid)
}
