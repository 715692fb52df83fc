//! Deleting an object and what hangs off it, in one transaction.

use crate::rows::backend_err;
use crate::sql::SqlStore;
use portcullis_core::store::StoreError;

/// Runs `statements` (each binding `$1` tenant and `$2` key) in one transaction; the last
/// one's row count says whether the object existed.
pub(crate) async fn delete_cascade(
    store: &SqlStore,
    tenant_id: &str,
    key: &str,
    statements: &[&'static str],
) -> Result<bool, StoreError> {
    let mut tx = store.begin_write().await?;
    let mut last = 0;
    for statement in statements {
        last = sqlx::query(*statement)
            .bind(tenant_id)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?
            .rows_affected();
    }
    tx.commit().await.map_err(backend_err)?;
    Ok(last > 0)
}
