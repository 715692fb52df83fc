//! Login transactions: the `/authorize` request that a login page works on.
//!
//! An abandoned login costs nothing to keep, because `GET /authorize` stores nothing: the
//! transaction travels sealed in the login page's `state` parameter, as
//! `{id}.{epoch}.{sealed}`. `sealed` is the transaction (request, CSRF hash, expiry) under
//! AES-256-GCM, with the issuer, the tenant and the id bound in as AAD, so it can be neither
//! read, forged, moved to another id, nor taken to another deployment that shares the master
//! key. The key is derived from the master key for this purpose and for the day (`epoch`),
//! so the random nonces of keys that anyone can make the server use are never many; a
//! transaction opens under its own day's key or, past midnight, the day before's. `id` names
//! the transaction's CSRF cookie.
//!
//! A row is written only once the page is answered: when the transaction is spent (its id
//! is recorded, so a replayed form post finds it and fails), or when it pauses after
//! authentication for another step (consent today). A paused transaction is referred to by
//! its bare id from then on.

use crate::model::{LoginTransaction, Timestamp};
use crate::service::Portcullis;
use crate::store::StoreError;
use portcullis_crypto::token::hash_token;
use serde::{Deserialize, Serialize};

/// What the sealed part carries.
#[derive(Serialize, Deserialize)]
struct Sealed {
    csrf_hash: String,
    request: crate::model::AuthorizeRequest,
    created_at: Timestamp,
    expires_at: Timestamp,
}

/// Seconds each sealing key is used for (a day). A transaction lives far less.
const EPOCH_SECONDS: i64 = 86_400;
/// The longest reference a login page carries: what a URL holds through browsers and
/// proxies (8 KB request lines are common).
pub const MAX_REFERENCE_LEN: usize = 6144;

/// The id part of a page's `state` reference: what names its CSRF cookie. Only letters and
/// digits, as ids are made; anything else is no id.
#[must_use]
pub fn transaction_id(reference: &str) -> Option<&str> {
    let id = reference.split('.').next().unwrap_or_default();
    (!id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(id)
}

impl Portcullis {
    /// The key that seals the transactions of `epoch`.
    fn sealing_key(&self, epoch: i64) -> portcullis_crypto::aead::MasterKey {
        self.master
            .derive(&format!("portcullis login transactions v1, day {epoch}"))
    }

    /// What a sealed transaction is bound to: this deployment, this tenant, this id.
    fn purpose(&self, id: &str) -> String {
        format!(
            "login_transaction:{}:{}:{id}",
            self.settings.issuer,
            self.tenant_id()
        )
    }

    /// The reference a login page carries for a transaction in progress.
    pub(crate) fn seal_transaction(&self, tx: &LoginTransaction) -> String {
        let sealed = Sealed {
            csrf_hash: tx.csrf_hash.clone(),
            request: tx.request.clone(),
            created_at: tx.created_at,
            expires_at: tx.expires_at,
        };
        let json = serde_json::to_vec(&sealed).expect("a transaction serializes");
        let epoch = tx.created_at.div_euclid(EPOCH_SECONDS);
        let blob = self.sealing_key(epoch).seal(&self.purpose(&tx.id), &json);
        format!("{}.{epoch}.{}", tx.id, portcullis_crypto::b64url(&blob))
    }

    /// The live transaction a page's `state` refers to: a sealed one not yet spent or
    /// paused, or a paused one by its id. `None` for anything expired, used, forged or
    /// unknown.
    pub(crate) async fn find_transaction(
        &self,
        reference: &str,
    ) -> Result<Option<LoginTransaction>, StoreError> {
        let tenant = self.tenant_id();
        let now = self.now();
        let Some(id) = transaction_id(reference) else {
            return Ok(None);
        };
        let Some((_, sealed_part)) = reference.split_once('.') else {
            return self.store.find_login_transaction(tenant, id, now).await;
        };
        let today = now.div_euclid(EPOCH_SECONDS);
        let Some(sealed) = sealed_part
            .split_once('.')
            .and_then(|(epoch, blob)| Some((epoch.parse::<i64>().ok()?, blob)))
            .filter(|(epoch, _)| *epoch == today || *epoch == today - 1)
            .and_then(|(epoch, blob)| {
                let bytes = portcullis_crypto::b64url_decode(blob)?;
                self.sealing_key(epoch).open(&self.purpose(id), &bytes).ok()
            })
            .and_then(|json| serde_json::from_slice::<Sealed>(&json).ok())
            .filter(|s| s.expires_at > now)
        else {
            return Ok(None);
        };
        if self.store.login_transaction_recorded(tenant, id).await? {
            return Ok(None);
        }
        Ok(Some(LoginTransaction {
            tenant_id: tenant.to_owned(),
            id: id.to_owned(),
            csrf_hash: sealed.csrf_hash,
            request: sealed.request,
            authenticated: None,
            created_at: sealed.created_at,
            expires_at: sealed.expires_at,
        }))
    }

    /// Spends a transaction in progress: records its id as finished. `false` if another
    /// post of the same page got there first.
    pub(crate) async fn spend_transaction(
        &self,
        tx: &LoginTransaction,
    ) -> Result<bool, StoreError> {
        self.store
            .insert_login_transaction(tx, Some(self.now()))
            .await
    }

    /// Stores a transaction that waits, after authentication, for another step. `false` if
    /// its id was spent or paused already.
    pub(crate) async fn pause_transaction(
        &self,
        tx: &LoginTransaction,
    ) -> Result<bool, StoreError> {
        self.store.insert_login_transaction(tx, None).await
    }
}

/// Whether `csrf` is the token whose hash the transaction holds.
pub(crate) fn csrf_matches(tx: &LoginTransaction, csrf: &str) -> bool {
    portcullis_crypto::ct_eq(hash_token(csrf).as_bytes(), tx.csrf_hash.as_bytes())
}

/// Whether the form's token matches the cookie's and the transaction's hash.
pub(crate) fn csrf_ok(tx: &LoginTransaction, field: &str, cookie: Option<&str>) -> bool {
    let cookie_matches =
        cookie.is_some_and(|c| portcullis_crypto::ct_eq(c.as_bytes(), field.as_bytes()));
    csrf_matches(tx, field) && cookie_matches
}

#[cfg(test)]
mod tests {
    use super::transaction_id;

    #[test]
    fn the_id_is_the_part_before_the_seal_and_only_alphanumeric() {
        assert_eq!(transaction_id("abc123.20833.sealedpart"), Some("abc123"));
        assert_eq!(transaction_id("abc123"), Some("abc123"));
        assert_eq!(transaction_id(".x"), None);
        assert_eq!(transaction_id("a;b.x"), None);
        assert_eq!(transaction_id(""), None);
    }
}
