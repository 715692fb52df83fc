//! Login transactions that were answered (spent or paused) and consents to applications.

use super::StoreError;
use crate::model::{LoginTransaction, Timestamp};
use async_trait::async_trait;

/// Login transactions that were answered (spent or paused) and consents to applications.
///
/// A transaction in progress is not stored: it travels sealed in the login page
/// (`oauth::login`). A row is written once the page is answered: when the
/// transaction is spent, or when it pauses for another step.
#[async_trait]
pub trait LoginStore: Send + Sync {
    /// Records `tx` (paused when `tx.authenticated` is set, spent when `completed_at` is);
    /// `false` if a row for its id exists already (a replayed form post).
    async fn insert_login_transaction(
        &self,
        tx: &LoginTransaction,
        completed_at: Option<Timestamp>,
    ) -> Result<bool, StoreError>;

    /// A paused transaction, live and not yet finished.
    async fn find_login_transaction(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<LoginTransaction>, StoreError>;

    /// Whether a row exists for `id` in any state: a sealed transaction with a row was
    /// already spent or paused.
    async fn login_transaction_recorded(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<bool, StoreError>;

    /// Marks a paused transaction finished; `false` if it already was (a replayed form post).
    async fn consume_login_transaction(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// The scopes a user has granted a client for an audience (`""` for none).
    async fn find_consent(
        &self,
        tenant_id: &str,
        user_id: &str,
        client_id: &str,
        audience: &str,
    ) -> Result<Option<Vec<String>>, StoreError>;

    async fn save_consent(
        &self,
        tenant_id: &str,
        user_id: &str,
        client_id: &str,
        audience: &str,
        scopes: &[String],
        now: Timestamp,
    ) -> Result<(), StoreError>;
}
