//! The changes of a tenant file, written in one transaction.

use crate::rows::{b, to_json};
use portcullis_core::model::Timestamp;
use portcullis_core::store::Change;
use sqlx::AnyConnection;

pub(crate) async fn apply_one(
    conn: &mut AnyConnection,
    tenant_id: &str,
    change: &Change,
    now: Timestamp,
) -> Result<(), sqlx::Error> {
    match change {
        Change::Tenant(t) => {
            sqlx::query(
                "UPDATE tenants SET friendly_name = $2, session_lifetime_hours = $3, \
                 idle_session_lifetime_hours = $4, roles_claim = $5, updated_at = $6, \
                 log_retention_days = $7 WHERE id = $1",
            )
            .bind(tenant_id)
            .bind(&t.friendly_name)
            .bind(t.session_lifetime_hours)
            .bind(t.idle_session_lifetime_hours)
            .bind(t.roles_claim.as_deref())
            .bind(now)
            .bind(t.log_retention_days)
            .execute(&mut *conn)
            .await?;
        }
        Change::Client(c) => {
            sqlx::query(
                "INSERT INTO clients (tenant_id, client_id, name, app_type, secret_sealed, \
                 token_endpoint_auth_method, callbacks, allowed_logout_urls, web_origins, \
                 grant_types, refresh_token, is_first_party, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) \
                 ON CONFLICT (tenant_id, client_id) DO UPDATE SET name = excluded.name, \
                 app_type = excluded.app_type, secret_sealed = excluded.secret_sealed, \
                 token_endpoint_auth_method = excluded.token_endpoint_auth_method, \
                 callbacks = excluded.callbacks, allowed_logout_urls = excluded.allowed_logout_urls, \
                 web_origins = excluded.web_origins, grant_types = excluded.grant_types, \
                 refresh_token = excluded.refresh_token, is_first_party = excluded.is_first_party, \
                 updated_at = excluded.updated_at",
            )
            .bind(tenant_id)
            .bind(&c.client_id)
            .bind(&c.name)
            .bind(c.app_type.as_str())
            .bind(c.secret_sealed.as_deref())
            .bind(c.token_endpoint_auth_method.as_str())
            .bind(to_json(&c.callbacks))
            .bind(to_json(&c.allowed_logout_urls))
            .bind(to_json(&c.web_origins))
            .bind(to_json(&c.grant_types))
            .bind(to_json(&c.refresh_token))
            .bind(b(c.is_first_party))
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        Change::ResourceServer(r) => {
            sqlx::query(
                "INSERT INTO resource_servers (tenant_id, id, identifier, name, scopes, \
                 enforce_policies, token_dialect, token_lifetime, signing_alg, \
                 allow_offline_access, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
                 ON CONFLICT (tenant_id, id) DO UPDATE SET identifier = excluded.identifier, \
                 name = excluded.name, scopes = excluded.scopes, \
                 enforce_policies = excluded.enforce_policies, \
                 token_dialect = excluded.token_dialect, token_lifetime = excluded.token_lifetime, \
                 signing_alg = excluded.signing_alg, \
                 allow_offline_access = excluded.allow_offline_access, \
                 updated_at = excluded.updated_at",
            )
            .bind(tenant_id)
            .bind(&r.id)
            .bind(&r.identifier)
            .bind(&r.name)
            .bind(to_json(&r.scopes))
            .bind(b(r.enforce_policies))
            .bind(&r.token_dialect)
            .bind(r.token_lifetime)
            .bind(r.signing_alg.as_str())
            .bind(b(r.allow_offline_access))
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        Change::ClientGrant(g) => {
            sqlx::query(
                "INSERT INTO client_grants (tenant_id, id, client_id, audience, scope, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (tenant_id, id) DO UPDATE SET scope = excluded.scope",
            )
            .bind(tenant_id)
            .bind(&g.id)
            .bind(&g.client_id)
            .bind(&g.audience)
            .bind(to_json(&g.scope))
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        Change::Role(r) => {
            sqlx::query(
                "INSERT INTO roles (tenant_id, id, name, description, created_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name, \
                 description = excluded.description",
            )
            .bind(tenant_id)
            .bind(&r.id)
            .bind(&r.name)
            .bind(&r.description)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            sqlx::query("DELETE FROM role_permissions WHERE tenant_id = $1 AND role_id = $2")
                .bind(tenant_id)
                .bind(&r.id)
                .execute(&mut *conn)
                .await?;
            for p in &r.permissions {
                sqlx::query(
                    "INSERT INTO role_permissions (tenant_id, role_id, resource_server_identifier, \
                     permission_name) VALUES ($1, $2, $3, $4)",
                )
                .bind(tenant_id)
                .bind(&r.id)
                .bind(&p.resource_server_identifier)
                .bind(&p.permission_name)
                .execute(&mut *conn)
                .await?;
            }
        }
        Change::User { user: u, role_ids } => {
            let query = sqlx::query(
                "INSERT INTO users (tenant_id, user_id, connection, email, email_normalized, \
                 email_verified, name, nickname, picture, password_hash, user_metadata, \
                 app_metadata, blocked, created_at, updated_at, last_login, logins_count) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, NULL, 0) \
                 ON CONFLICT (tenant_id, user_id) DO UPDATE SET email = excluded.email, \
                 email_normalized = excluded.email_normalized, \
                 email_verified = excluded.email_verified, name = excluded.name, \
                 nickname = excluded.nickname, picture = excluded.picture, \
                 password_hash = excluded.password_hash, user_metadata = excluded.user_metadata, \
                 app_metadata = excluded.app_metadata, blocked = excluded.blocked, \
                 updated_at = excluded.updated_at",
            );
            crate::users::bind_profile(
                query.bind(tenant_id).bind(&u.user_id).bind(&u.connection),
                u,
            )
            .bind(now)
            .execute(&mut *conn)
            .await?;
            sqlx::query("DELETE FROM user_roles WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant_id)
                .bind(&u.user_id)
                .execute(&mut *conn)
                .await?;
            for role_id in role_ids {
                sqlx::query(
                    "INSERT INTO user_roles (tenant_id, user_id, role_id) VALUES ($1, $2, $3)",
                )
                .bind(tenant_id)
                .bind(&u.user_id)
                .bind(role_id)
                .execute(&mut *conn)
                .await?;
            }
        }
        Change::Setting { name, value } => {
            sqlx::query(
                "INSERT INTO tenant_settings (tenant_id, name, value, updated_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, name) DO UPDATE SET value = $3, updated_at = $4",
            )
            .bind(tenant_id)
            .bind(name)
            .bind(to_json(value))
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}
