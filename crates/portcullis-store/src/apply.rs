//! The changes of a tenant file, written in one transaction through the same statements
//! the capability files use for each aggregate.

use portcullis_core::model::Timestamp;
use portcullis_core::store::{Change, StoreError};
use sqlx::AnyConnection;

pub(crate) async fn apply_one(
    conn: &mut AnyConnection,
    tenant_id: &str,
    change: &Change,
    now: Timestamp,
) -> Result<(), StoreError> {
    match change {
        Change::Tenant(t) => crate::settings::update_tenant(conn, tenant_id, t, now).await,
        Change::Client(c) => crate::clients::upsert_client(conn, tenant_id, c, now).await,
        Change::ResourceServer(r) => {
            crate::clients::upsert_resource_server(conn, tenant_id, r, now).await
        }
        Change::ClientGrant(g) => {
            crate::clients::upsert_client_grant(conn, tenant_id, g, now).await
        }
        Change::Role(r) => {
            crate::roles::upsert(conn, tenant_id, r, now).await?;
            crate::roles::replace_permissions(conn, tenant_id, r).await
        }
        Change::User { user, role_ids } => {
            crate::users::upsert(conn, tenant_id, user, now).await?;
            crate::roles::replace_user_roles(conn, tenant_id, user, role_ids).await
        }
        Change::Setting { name, value } => {
            crate::settings::save_setting(&mut *conn, tenant_id, name, value, now).await
        }
    }
}
