//! The store's statements. Every one is tenant-scoped.

use crate::rows::{self, backend_err, to_json};
use async_trait::async_trait;
use portcullis_core::model::{
    AuthorizationCode, Client, ClientGrant, CodeGrant, Grant, LoginTransaction, Permission,
    RefreshToken, ResourceServer, Role, Session, SigningKeyRecord, Tenant, Timestamp, User,
};
use portcullis_core::store::{
    AccessRecord, Change, RefreshTokenContext, Store, StoreError, UserAccess,
};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Row};
use std::collections::BTreeMap;
use std::sync::LazyLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool to SQLite or PostgreSQL, migrated on connect.
#[derive(Clone, Debug)]
pub struct SqlStore {
    /// Reads. On SQLite these connections refuse writes (`query_only`).
    pool: AnyPool,
    /// Writes, and reads inside a write transaction. One connection on SQLite.
    writer: AnyPool,
    backend: Backend,
}

/// Pool settings for `max` connections; `readers` makes SQLite connections refuse writes.
fn pool_options(backend: Backend, max: u32, readers: bool) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        // A pooled SQLite connection is a thread of this process and cannot drop while
        // idle; pinging it before each use only adds a hand-off to every statement. The
        // pool still pings every connection it takes back. A PostgreSQL connection can
        // die idle (a server restart, a failover), so it is tested before use.
        .test_before_acquire(backend == Backend::Postgres)
        .after_connect(move |conn: &mut AnyConnection, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers proceed while the writer commits; the busy timeout
                    // makes another process's writer wait instead of failing.
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA busy_timeout = 5000",
                        "PRAGMA foreign_keys = ON",
                        "PRAGMA synchronous = NORMAL",
                    ] {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    if readers {
                        sqlx::query("PRAGMA query_only = ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                Ok(())
            })
        })
}

static MIGRATE_SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static MIGRATE_POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

impl SqlStore {
    /// Connects to `url` (`sqlite://file.db` or `postgres://…`), creating a missing SQLite
    /// file, and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if url.starts_with("sqlite:") {
            let url = if url.contains("mode=") {
                url.to_owned()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::Backend(
                "the database URL must start with sqlite: or postgres://".to_owned(),
            ));
        };
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        // SQLite takes one writer at a time. Writers queued on one connection wait their
        // turn in this process instead of sleeping in SQLite's busy handler, and that
        // connection's page cache stays valid, as no other connection writes. Readers get
        // their own connections, which refuse writes. An in-memory SQLite database exists
        // per connection: it has exactly one, for both.
        let writer = pool_options(
            backend,
            if backend == Backend::Sqlite { 1 } else { 16 },
            false,
        )
        .connect(&url)
        .await
        .map_err(backend_err)?;
        let migrator = match backend {
            Backend::Sqlite => &MIGRATE_SQLITE,
            Backend::Postgres => &MIGRATE_POSTGRES,
        };
        migrator
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend(format!("migration failed: {e}")))?;
        let pool = if backend == Backend::Sqlite && !memory {
            pool_options(backend, 8, true)
                .connect(&url)
                .await
                .map_err(backend_err)?
        } else {
            writer.clone()
        };
        Ok(Self {
            pool,
            writer,
            backend,
        })
    }

    /// The pool for statements that write. On PostgreSQL it is the same pool as for reads.
    fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Closes the pools, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }

    async fn role_permissions(
        &self,
        tenant_id: &str,
    ) -> Result<BTreeMap<String, Vec<portcullis_core::model::Permission>>, StoreError> {
        let rows = sqlx::query(
            "SELECT role_id, resource_server_identifier, permission_name FROM role_permissions \
             WHERE tenant_id = $1 ORDER BY role_id, resource_server_identifier, permission_name",
        )
        .bind(tenant_id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend_err)?;
        let mut map: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for row in rows {
            let role_id: String = row.try_get("role_id").map_err(backend_err)?;
            map.entry(role_id)
                .or_default()
                .push(portcullis_core::model::Permission {
                    resource_server_identifier: row
                        .try_get("resource_server_identifier")
                        .map_err(backend_err)?,
                    permission_name: row.try_get("permission_name").map_err(backend_err)?,
                });
        }
        Ok(map)
    }

    fn roles_from_rows(
        rows: &[AnyRow],
        perms: &mut BTreeMap<String, Vec<portcullis_core::model::Permission>>,
    ) -> Result<Vec<Role>, StoreError> {
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id").map_err(backend_err)?;
                Ok(Role {
                    tenant_id: row.try_get("tenant_id").map_err(backend_err)?,
                    permissions: perms.remove(&id).unwrap_or_default(),
                    id,
                    name: row.try_get("name").map_err(backend_err)?,
                    description: row.try_get("description").map_err(backend_err)?,
                })
            })
            .collect()
    }
}

fn b(v: bool) -> i64 {
    i64::from(v)
}

async fn apply_one(
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

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend_err)
    }

    async fn ensure_tenant(&self, t: &Tenant, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO tenants (id, friendly_name, session_lifetime_hours, \
             idle_session_lifetime_hours, roles_claim, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&t.id)
        .bind(&t.friendly_name)
        .bind(t.session_lifetime_hours)
        .bind(t.idle_session_lifetime_hours)
        .bind(t.roles_claim.as_deref())
        .bind(now)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn find_tenant(&self, tenant_id: &str) -> Result<Option<Tenant>, StoreError> {
        sqlx::query("SELECT * FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_err)?
            .map(|r| rows::tenant(&r))
            .transpose()
    }

    async fn list_signing_keys(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<SigningKeyRecord>, StoreError> {
        sqlx::query("SELECT * FROM signing_keys WHERE tenant_id = $1 ORDER BY active_from, kid")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?
            .iter()
            .map(rows::signing_key)
            .collect()
    }

    async fn add_signing_key(
        &self,
        key: &SigningKeyRecord,
        old_keys_expire_at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = crate::rows::begin_write(self.writer()).await?;
        sqlx::query(
            "UPDATE signing_keys SET retired_at = $3, expires_at = $4 \
             WHERE tenant_id = $1 AND alg = $2 AND retired_at IS NULL",
        )
        .bind(&key.tenant_id)
        .bind(key.alg.as_str())
        .bind(key.active_from)
        .bind(old_keys_expire_at)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        sqlx::query(
            "INSERT INTO signing_keys (tenant_id, kid, alg, private_key_sealed, created_at, \
             active_from, retired_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)",
        )
        .bind(&key.tenant_id)
        .bind(&key.kid)
        .bind(key.alg.as_str())
        .bind(&key.private_key_sealed)
        .bind(key.created_at)
        .bind(key.active_from)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)
    }

    async fn find_client(
        &self,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<Option<Client>, StoreError> {
        sqlx::query("SELECT * FROM clients WHERE tenant_id = $1 AND client_id = $2")
            .bind(tenant_id)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_err)?
            .map(|r| rows::client(&r))
            .transpose()
    }

    async fn list_clients(&self, tenant_id: &str) -> Result<Vec<Client>, StoreError> {
        sqlx::query("SELECT * FROM clients WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?
            .iter()
            .map(rows::client)
            .collect()
    }

    async fn list_resource_servers(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<ResourceServer>, StoreError> {
        sqlx::query("SELECT * FROM resource_servers WHERE tenant_id = $1 ORDER BY identifier")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?
            .iter()
            .map(rows::resource_server)
            .collect()
    }

    async fn find_resource_server(
        &self,
        tenant_id: &str,
        identifier: &str,
    ) -> Result<Option<ResourceServer>, StoreError> {
        sqlx::query("SELECT * FROM resource_servers WHERE tenant_id = $1 AND identifier = $2")
            .bind(tenant_id)
            .bind(identifier)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_err)?
            .map(|r| rows::resource_server(&r))
            .transpose()
    }

    async fn list_client_grants(&self, tenant_id: &str) -> Result<Vec<ClientGrant>, StoreError> {
        sqlx::query("SELECT * FROM client_grants WHERE tenant_id = $1 ORDER BY client_id, audience")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?
            .iter()
            .map(rows::client_grant)
            .collect()
    }

    async fn list_roles(&self, tenant_id: &str) -> Result<Vec<Role>, StoreError> {
        let mut perms = self.role_permissions(tenant_id).await?;
        let rows = sqlx::query("SELECT * FROM roles WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?;
        Self::roles_from_rows(&rows, &mut perms)
    }

    async fn delete_resource_server(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
        crate::cascade::delete_cascade(
            self.writer(),
            tenant_id,
            id,
            &[
                "DELETE FROM client_grants WHERE tenant_id = $1 AND audience = \
                 (SELECT identifier FROM resource_servers WHERE tenant_id = $1 AND id = $2)",
                "DELETE FROM role_permissions WHERE tenant_id = $1 AND resource_server_identifier = \
                 (SELECT identifier FROM resource_servers WHERE tenant_id = $1 AND id = $2)",
                "DELETE FROM user_permissions WHERE tenant_id = $1 AND resource_server_identifier = \
                 (SELECT identifier FROM resource_servers WHERE tenant_id = $1 AND id = $2)",
                "DELETE FROM resource_servers WHERE tenant_id = $1 AND id = $2",
            ],
        )
        .await
    }

    async fn delete_client(
        &self,
        tenant_id: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut tx = crate::rows::begin_write(self.writer()).await?;
        // Its grants stay, revoked, so access tokens it was issued stop at /userinfo too.
        sqlx::query(
            "UPDATE grants SET revoked_at = $3 WHERE tenant_id = $1 AND client_id = $2 \
             AND revoked_at IS NULL",
        )
        .bind(tenant_id)
        .bind(client_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        let mut last = 0;
        for statement in [
            "DELETE FROM client_grants WHERE tenant_id = $1 AND client_id = $2",
            "DELETE FROM refresh_tokens WHERE tenant_id = $1 AND client_id = $2",
            "DELETE FROM consents WHERE tenant_id = $1 AND client_id = $2",
            "DELETE FROM clients WHERE tenant_id = $1 AND client_id = $2",
        ] {
            last = sqlx::query(statement)
                .bind(tenant_id)
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(backend_err)?
                .rows_affected();
        }
        tx.commit().await.map_err(backend_err)?;
        Ok(last > 0)
    }

    async fn delete_client_grant(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError> {
        crate::cascade::delete_cascade(
            self.writer(),
            tenant_id,
            id,
            &["DELETE FROM client_grants WHERE tenant_id = $1 AND id = $2"],
        )
        .await
    }

    async fn find_role(&self, tenant_id: &str, role_id: &str) -> Result<Option<Role>, StoreError> {
        let rows = sqlx::query("SELECT * FROM roles WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(role_id)
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut perms = self.role_permissions(tenant_id).await?;
        Ok(Self::roles_from_rows(&rows, &mut perms)?.pop())
    }

    async fn insert_role(&self, role: &Role, now: Timestamp) -> Result<(), StoreError> {
        crate::roles::insert(self.writer(), role, now).await
    }

    async fn update_role(&self, role: &Role) -> Result<(), StoreError> {
        crate::roles::update(self.writer(), role).await
    }

    async fn delete_role(&self, tenant_id: &str, role_id: &str) -> Result<bool, StoreError> {
        crate::roles::delete(self.writer(), tenant_id, role_id).await
    }

    async fn change_role_permissions(
        &self,
        tenant_id: &str,
        role_id: &str,
        permissions: &[Permission],
        add: bool,
    ) -> Result<(), StoreError> {
        crate::roles::change_permissions(self.writer(), tenant_id, role_id, permissions, add).await
    }

    async fn change_user_roles(
        &self,
        tenant_id: &str,
        user_id: &str,
        role_ids: &[String],
        add: bool,
    ) -> Result<(), StoreError> {
        crate::roles::change_user_roles(self.writer(), tenant_id, user_id, role_ids, add).await
    }

    async fn list_user_permissions(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Vec<Permission>, StoreError> {
        crate::roles::user_permissions(&self.pool, tenant_id, user_id).await
    }

    async fn change_user_permissions(
        &self,
        tenant_id: &str,
        user_id: &str,
        permissions: &[Permission],
        add: bool,
    ) -> Result<(), StoreError> {
        crate::roles::change_user_permissions(self.writer(), tenant_id, user_id, permissions, add)
            .await
    }

    async fn list_role_users(
        &self,
        tenant_id: &str,
        role_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<User>, i64), StoreError> {
        crate::roles::users(&self.pool, tenant_id, role_id, offset, limit).await
    }

    async fn apply_changes(
        &self,
        tenant_id: &str,
        changes: &[Change],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = crate::rows::begin_write(self.writer()).await?;
        for change in changes {
            apply_one(&mut tx, tenant_id, change, now)
                .await
                .map_err(backend_err)?;
        }
        tx.commit().await.map_err(backend_err)
    }

    async fn find_user(&self, tenant_id: &str, user_id: &str) -> Result<Option<User>, StoreError> {
        sqlx::query("SELECT * FROM users WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_err)?
            .map(|r| rows::user(&r))
            .transpose()
    }

    async fn find_user_by_email(
        &self,
        tenant_id: &str,
        connection: &str,
        email: &str,
    ) -> Result<Option<User>, StoreError> {
        sqlx::query(
            "SELECT * FROM users WHERE tenant_id = $1 AND connection = $2 AND email_normalized = $3",
        )
        .bind(tenant_id)
        .bind(connection)
        .bind(portcullis_core::model::normalize_email(email))
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?
        .map(|r| rows::user(&r))
        .transpose()
    }

    async fn user_with_access(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Option<UserAccess>, StoreError> {
        // One connection for both reads: one hand-off to the pool instead of two.
        let mut conn = self.pool.acquire().await.map_err(backend_err)?;
        read_user_with_access(&mut conn, tenant_id, user_id).await
    }

    async fn list_user_roles(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Vec<Role>, StoreError> {
        Ok(read_user_access(&self.pool, tenant_id, user_id).await?.0)
    }

    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        crate::users::insert(self.writer(), user).await
    }

    async fn insert_users(&self, users: &[User]) -> Result<(), StoreError> {
        crate::users::insert_many(self.writer(), users).await
    }

    async fn update_user(&self, user: &User) -> Result<(), StoreError> {
        crate::users::update(self.writer(), user).await
    }

    async fn delete_user(&self, tenant_id: &str, user_id: &str) -> Result<bool, StoreError> {
        crate::users::delete(self.writer(), tenant_id, user_id).await
    }

    async fn end_user_sessions(
        &self,
        tenant_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        crate::users::end_sessions(self.writer(), tenant_id, user_id, now).await
    }

    async fn search_users(
        &self,
        tenant_id: &str,
        search: &portcullis_core::management::query::UserSearch,
    ) -> Result<(Vec<User>, i64), StoreError> {
        let dialect = match self.backend {
            Backend::Sqlite => crate::users::Dialect::Sqlite,
            Backend::Postgres => crate::users::Dialect::Postgres,
        };
        crate::users::search(&self.pool, dialect, tenant_id, search).await
    }

    async fn record_login(
        &self,
        tenant_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET last_login = $3, logins_count = logins_count + 1 \
             WHERE tenant_id = $1 AND user_id = $2",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(now)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn insert_login_transaction(
        &self,
        t: &LoginTransaction,
        completed_at: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        let (user_id, session_id) = match &t.authenticated {
            Some(who) => (Some(who.user_id.as_str()), Some(who.session_id.as_str())),
            None => (None, None),
        };
        let done = sqlx::query(
            "INSERT INTO login_transactions (tenant_id, id, csrf_hash, request, user_id, \
             session_id, created_at, expires_at, completed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, id) DO NOTHING",
        )
        .bind(&t.tenant_id)
        .bind(&t.id)
        .bind(&t.csrf_hash)
        .bind(to_json(&t.request))
        .bind(user_id)
        .bind(session_id)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(completed_at)
        .execute(self.writer())
        .await
        .map_err(backend_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn login_transaction_recorded(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM login_transactions WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend_err)?
                .is_some(),
        )
    }

    async fn find_login_transaction(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<LoginTransaction>, StoreError> {
        sqlx::query(
            "SELECT * FROM login_transactions WHERE tenant_id = $1 AND id = $2 \
             AND expires_at > $3 AND completed_at IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?
        .map(|r| rows::login_transaction(&r))
        .transpose()
    }

    async fn find_consent(
        &self,
        tenant_id: &str,
        user_id: &str,
        client_id: &str,
        audience: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let row = sqlx::query(
            "SELECT scopes FROM consents WHERE tenant_id = $1 AND user_id = $2 \
             AND client_id = $3 AND audience = $4",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(client_id)
        .bind(audience)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?;
        match row {
            Some(row) => {
                let text: String = row.try_get("scopes").map_err(backend_err)?;
                serde_json::from_str(&text)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt(format!("consent scopes: {e}")))
            }
            None => Ok(None),
        }
    }

    async fn save_consent(
        &self,
        tenant_id: &str,
        user_id: &str,
        client_id: &str,
        audience: &str,
        scopes: &[String],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO consents (tenant_id, user_id, client_id, audience, scopes, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (tenant_id, user_id, client_id, audience) \
             DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(user_id)
        .bind(client_id)
        .bind(audience)
        .bind(to_json(&scopes))
        .bind(now)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn find_session(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        sqlx::query(
            "SELECT * FROM sessions WHERE tenant_id = $1 AND id = $2 \
             AND revoked_at IS NULL AND expires_at > $3 AND idle_expires_at > $3",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?
        .map(|r| rows::session(&r))
        .transpose()
    }

    async fn consume_login_transaction(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE login_transactions SET completed_at = $3 \
             WHERE tenant_id = $1 AND id = $2 AND completed_at IS NULL AND expires_at > $3",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .execute(self.writer())
        .await
        .map_err(backend_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_session(&self, s: &Session, secret_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (tenant_id, id, secret_hash, user_id, auth_time, created_at, \
             last_seen_at, expires_at, idle_expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
        )
        .bind(&s.tenant_id)
        .bind(&s.id)
        .bind(secret_hash)
        .bind(&s.user_id)
        .bind(s.auth_time)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .bind(s.idle_expires_at)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn find_session_by_secret(
        &self,
        tenant_id: &str,
        secret_hash: &str,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError> {
        sqlx::query(
            "SELECT * FROM sessions WHERE tenant_id = $1 AND secret_hash = $2 \
             AND revoked_at IS NULL AND expires_at > $3 AND idle_expires_at > $3",
        )
        .bind(tenant_id)
        .bind(secret_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?
        .map(|r| rows::session(&r))
        .transpose()
    }

    async fn touch_session(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET last_seen_at = $3, idle_expires_at = $4 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .bind(idle_expires_at)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn revoke_session(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sessions SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 \
             AND revoked_at IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn create_grant(&self, g: &Grant) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO grants (tenant_id, id, client_id, user_id, session_id, created_at, \
             revoked_at) VALUES ($1, $2, $3, $4, $5, $6, NULL)",
        )
        .bind(&g.tenant_id)
        .bind(&g.id)
        .bind(&g.client_id)
        .bind(&g.user_id)
        .bind(g.session_id.as_deref())
        .bind(g.created_at)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn find_grant(&self, tenant_id: &str, id: &str) -> Result<Option<Grant>, StoreError> {
        sqlx::query("SELECT * FROM grants WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_err)?
            .map(|r| rows::grant(&r))
            .transpose()
    }

    async fn revoke_grant(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = crate::rows::begin_write(self.writer()).await?;
        sqlx::query(
            "UPDATE grants SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 \
             AND revoked_at IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $3 WHERE tenant_id = $1 AND grant_id = $2 \
             AND revoked_at IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)
    }

    async fn create_authorization_code(
        &self,
        tenant_id: &str,
        code_hash: &str,
        grant_id: &str,
        grant: &CodeGrant,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO authorization_codes (tenant_id, code_hash, grant_id, client_id, \
             request, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        )
        .bind(tenant_id)
        .bind(code_hash)
        .bind(grant_id)
        .bind(&grant.request.client_id)
        .bind(to_json(grant))
        .bind(now)
        .bind(expires_at)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn consume_authorization_code(
        &self,
        tenant_id: &str,
        code_hash: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Option<AuthorizationCode>, StoreError> {
        let fresh = sqlx::query(
            "UPDATE authorization_codes SET used_at = $3 \
             WHERE tenant_id = $1 AND code_hash = $2 AND client_id = $4 AND used_at IS NULL \
             RETURNING grant_id, request, expires_at",
        )
        .bind(tenant_id)
        .bind(code_hash)
        .bind(now)
        .bind(client_id)
        .fetch_optional(self.writer())
        .await
        .map_err(backend_err)?;
        match fresh {
            Some(row) => rows::authorization_code(tenant_id, &row, false).map(Some),
            None => Ok(self
                .find_authorization_code(tenant_id, code_hash, client_id)
                .await?
                .map(|code| AuthorizationCode {
                    used_before: true,
                    ..code
                })),
        }
    }

    async fn find_authorization_code(
        &self,
        tenant_id: &str,
        code_hash: &str,
        client_id: &str,
    ) -> Result<Option<AuthorizationCode>, StoreError> {
        let row = sqlx::query(
            "SELECT grant_id, request, expires_at, used_at FROM authorization_codes \
             WHERE tenant_id = $1 AND code_hash = $2 AND client_id = $3",
        )
        .bind(tenant_id)
        .bind(code_hash)
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let used_at: Option<i64> = row.try_get("used_at").map_err(backend_err)?;
        rows::authorization_code(tenant_id, &row, used_at.is_some()).map(Some)
    }

    async fn create_refresh_token(&self, t: &RefreshToken) -> Result<(), StoreError> {
        insert_refresh_token(self.writer(), t).await
    }

    async fn find_refresh_token_and_grant(
        &self,
        tenant_id: &str,
        token_hash: &str,
    ) -> Result<Option<(RefreshToken, Option<Grant>)>, StoreError> {
        read_refresh_token_and_grant(&self.pool, tenant_id, token_hash).await
    }

    async fn find_refresh_token_context(
        &self,
        tenant_id: &str,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenContext>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend_err)?;
        let Some((token, grant)) =
            read_refresh_token_and_grant(&mut *conn, tenant_id, token_hash).await?
        else {
            return Ok(None);
        };
        let user = read_user_with_access(&mut conn, tenant_id, &token.user_id).await?;
        Ok(Some(RefreshTokenContext { token, grant, user }))
    }

    async fn find_refresh_token(
        &self,
        tenant_id: &str,
        token_hash: &str,
    ) -> Result<Option<RefreshToken>, StoreError> {
        sqlx::query("SELECT * FROM refresh_tokens WHERE tenant_id = $1 AND token_hash = $2")
            .bind(tenant_id)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_err)?
            .map(|r| rows::refresh_token(&r))
            .transpose()
    }

    async fn rotate_refresh_token(
        &self,
        tenant_id: &str,
        old_hash: &str,
        new: &RefreshToken,
        access: &AccessRecord,
        now: Timestamp,
        allow_reuse_since: Option<Timestamp>,
    ) -> Result<bool, StoreError> {
        // One round trip: the new token and the access record are written only when the old
        // token was spent, by the same statement on PostgreSQL and by one script on SQLite
        // that opens and commits its own transaction (`changes()` is what the statement
        // before it wrote). On SQLite every round trip is a hand-off to the connection's
        // thread, so `BEGIN` and `COMMIT` travel with the statements.
        const SPEND: &str = "UPDATE refresh_tokens SET used_at = COALESCE(used_at, $3) \
             WHERE tenant_id = $1 AND token_hash = $2 AND revoked_at IS NULL \
             AND (used_at IS NULL OR used_at >= $4)";
        const STORE: &str = "INSERT INTO refresh_tokens (tenant_id, token_hash, id, grant_id, \
             client_id, user_id, scope, audience, auth_time, created_at, expires_at, \
             idle_expires_at, used_at, revoked_at) \
             SELECT $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, NULL, NULL";
        const RECORD: &str = "INSERT INTO access_tokens (tenant_id, jti, grant_id, expires_at) SELECT $1, $17, $18, $19";
        static SQLITE: LazyLock<String> = LazyLock::new(|| {
            format!(
                "BEGIN IMMEDIATE; {SPEND}; {STORE} WHERE changes() = 1; \
                 {RECORD} WHERE changes() = 1; SELECT changes() AS rotated; COMMIT"
            )
        });
        static POSTGRES: LazyLock<String> = LazyLock::new(|| {
            format!(
                "WITH spent AS ({SPEND} RETURNING 1), \
                 fresh AS ({STORE} WHERE EXISTS (SELECT 1 FROM spent) RETURNING 1) \
                 {RECORD} WHERE EXISTS (SELECT 1 FROM fresh)"
            )
        });
        fn bind<'q>(
            sql: &'q str,
            tenant_id: &'q str,
            old_hash: &'q str,
            new: &'q RefreshToken,
            access: &'q AccessRecord,
            now: Timestamp,
            allow_reuse_since: Option<Timestamp>,
        ) -> rows::AnyQuery<'q> {
            let query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant_id)
                .bind(old_hash)
                .bind(now)
                .bind(allow_reuse_since.unwrap_or(i64::MAX));
            bind_refresh_token(query, new)
                .bind(&access.jti)
                .bind(&access.grant_id)
                .bind(access.expires_at)
        }
        if self.backend == Backend::Postgres {
            let query = bind(
                POSTGRES.as_str(),
                tenant_id,
                old_hash,
                new,
                access,
                now,
                allow_reuse_since,
            );
            let done = query.execute(self.writer()).await.map_err(backend_err)?;
            return Ok(done.rows_affected() == 1);
        }
        // The script runs in a task of its own: were this request dropped part-way, the
        // connection's thread would stop at the next statement and leave the transaction
        // open on a pooled connection. The task runs it to the end.
        let writer = self.writer().clone();
        let (tenant_id, old_hash) = (tenant_id.to_owned(), old_hash.to_owned());
        let (new, access) = (new.clone(), access.clone());
        let written = tokio::spawn(async move {
            let mut conn = writer.acquire().await?;
            let query = bind(
                SQLITE.as_str(),
                &tenant_id,
                &old_hash,
                &new,
                &access,
                now,
                allow_reuse_since,
            );
            match query.fetch_all(&mut *conn).await {
                Ok(rows) => match rows.first() {
                    Some(row) => row.try_get::<i64, _>("rotated"),
                    None => Err(sqlx::Error::RowNotFound),
                },
                Err(e) => {
                    // A statement failed after `BEGIN`: undo what the script wrote. This
                    // fails harmlessly when `BEGIN` itself was what failed.
                    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                    Err(e)
                }
            }
        })
        .await
        .map_err(|e| StoreError::Backend(format!("refresh-token rotation task: {e}")))?
        .map_err(backend_err)?;
        // Each insert runs only when the statement before it wrote its row, so the access
        // record (the last) was written exactly when the old token was spent.
        Ok(written == 1)
    }

    async fn touch_refresh_token(
        &self,
        tenant_id: &str,
        token_hash: &str,
        idle_expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE refresh_tokens SET idle_expires_at = $3 \
             WHERE tenant_id = $1 AND token_hash = $2",
        )
        .bind(tenant_id)
        .bind(token_hash)
        .bind(idle_expires_at)
        .execute(self.writer())
        .await
        .map(|_| ())
        .map_err(backend_err)
    }

    async fn record_access_token(
        &self,
        tenant_id: &str,
        jti: &str,
        grant_id: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let record = AccessRecord {
            jti: jti.to_owned(),
            grant_id: grant_id.to_owned(),
            expires_at,
        };
        insert_access_record(self.writer(), tenant_id, &record).await
    }

    async fn find_access_token_grant(
        &self,
        tenant_id: &str,
        jti: &str,
    ) -> Result<Option<Grant>, StoreError> {
        sqlx::query(
            "SELECT g.* FROM access_tokens a JOIN grants g \
             ON g.tenant_id = a.tenant_id AND g.id = a.grant_id \
             WHERE a.tenant_id = $1 AND a.jti = $2",
        )
        .bind(tenant_id)
        .bind(jti)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?
        .map(|r| rows::grant(&r))
        .transpose()
    }

    async fn insert_log_events(
        &self,
        events: &[portcullis_core::audit::LogEvent],
    ) -> Result<(), StoreError> {
        crate::logs::insert_many(self.writer(), events).await
    }

    async fn insert_log_event(
        &self,
        event: &portcullis_core::audit::LogEvent,
    ) -> Result<(), StoreError> {
        crate::logs::insert(self.writer(), event).await
    }

    async fn find_log_event(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<portcullis_core::audit::LogEvent>, StoreError> {
        crate::logs::find(&self.pool, tenant_id, id).await
    }

    async fn search_log_events(
        &self,
        tenant_id: &str,
        filter: &portcullis_core::audit::LogFilter,
    ) -> Result<(Vec<portcullis_core::audit::LogEvent>, i64), StoreError> {
        crate::logs::search(&self.pool, tenant_id, filter).await
    }

    async fn purge_log_events(&self, tenant_id: &str, before_ms: i64) -> Result<u64, StoreError> {
        crate::logs::purge(self.writer(), tenant_id, before_ms).await
    }

    async fn find_setting(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        crate::security::find_setting(&self.pool, tenant_id, name).await
    }

    async fn save_setting(
        &self,
        tenant_id: &str,
        name: &str,
        value: &serde_json::Value,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        crate::security::save_setting(self.writer(), tenant_id, name, value, now).await
    }

    async fn throttle_hit(
        &self,
        tenant_id: &str,
        bucket: &str,
        now_ms: i64,
        interval_ms: i64,
        window_ms: i64,
    ) -> Result<(bool, i64), StoreError> {
        crate::security::throttle_hit(
            self.writer(),
            tenant_id,
            bucket,
            now_ms,
            interval_ms,
            window_ms,
        )
        .await
    }

    async fn throttle_peek(
        &self,
        tenant_id: &str,
        bucket: &str,
    ) -> Result<Option<i64>, StoreError> {
        crate::security::throttle_peek(&self.pool, tenant_id, bucket).await
    }

    async fn count_login_attempt(
        &self,
        tenant_id: &str,
        user_id: &str,
        ip: &str,
        now: Timestamp,
        max_attempts: i64,
        enforce: bool,
    ) -> Result<portcullis_core::model::LoginFailures, StoreError> {
        crate::security::count_login_attempt(
            self.writer(),
            tenant_id,
            user_id,
            ip,
            now,
            max_attempts,
            enforce,
        )
        .await
    }

    async fn claim_block_notice(
        &self,
        tenant_id: &str,
        user_id: &str,
        ip: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        crate::security::claim_block_notice(self.writer(), tenant_id, user_id, ip, now).await
    }

    async fn throttle_refund(
        &self,
        tenant_id: &str,
        bucket: &str,
        interval_ms: i64,
    ) -> Result<(), StoreError> {
        crate::security::throttle_refund(self.writer(), tenant_id, bucket, interval_ms).await
    }

    async fn mark_email_verified(
        &self,
        tenant_id: &str,
        user_id: &str,
        email_normalized: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        crate::security::mark_email_verified(
            self.writer(),
            tenant_id,
            user_id,
            email_normalized,
            now,
        )
        .await
    }

    async fn login_blocked(
        &self,
        tenant_id: &str,
        user_id: &str,
        ip: &str,
    ) -> Result<bool, StoreError> {
        crate::security::login_blocked(&self.pool, tenant_id, user_id, ip).await
    }

    async fn clear_login_failures(
        &self,
        tenant_id: &str,
        user_id: &str,
        ip: &str,
    ) -> Result<(), StoreError> {
        crate::security::clear_login_failures(self.writer(), tenant_id, user_id, ip).await
    }

    async fn list_login_blocks(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Vec<portcullis_core::model::LoginBlock>, StoreError> {
        crate::security::list_login_blocks(&self.pool, tenant_id, user_id).await
    }

    async fn release_login_blocks(
        &self,
        tenant_id: &str,
        user_id: &str,
        ip: Option<&str>,
    ) -> Result<u64, StoreError> {
        crate::security::release_login_blocks(self.writer(), tenant_id, user_id, ip).await
    }

    async fn create_ticket(
        &self,
        ticket: &portcullis_core::model::Ticket,
    ) -> Result<(), StoreError> {
        crate::security::create_ticket(self.writer(), ticket).await
    }

    async fn find_ticket(
        &self,
        tenant_id: &str,
        ticket_hash: &str,
        kind: portcullis_core::model::TicketKind,
        now: Timestamp,
    ) -> Result<Option<portcullis_core::model::Ticket>, StoreError> {
        crate::security::find_ticket(&self.pool, tenant_id, ticket_hash, kind, now).await
    }

    async fn consume_ticket(
        &self,
        tenant_id: &str,
        ticket_hash: &str,
        kind: portcullis_core::model::TicketKind,
        now: Timestamp,
    ) -> Result<Option<portcullis_core::model::Ticket>, StoreError> {
        crate::security::consume_ticket(self.writer(), tenant_id, ticket_hash, kind, now).await
    }

    async fn password_history(
        &self,
        tenant_id: &str,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        crate::security::password_history(&self.pool, tenant_id, user_id, limit).await
    }

    async fn change_password(
        &self,
        tenant_id: &str,
        user_id: &str,
        new_hash: &str,
        keep: usize,
        verify_email: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        crate::security::change_password(
            self.writer(),
            tenant_id,
            user_id,
            new_hash,
            keep,
            verify_email,
            now,
        )
        .await
    }

    async fn log_stream_checkpoint(
        &self,
        tenant_id: &str,
        stream_id: &str,
    ) -> Result<Option<String>, StoreError> {
        crate::security::log_stream_checkpoint(&self.pool, tenant_id, stream_id).await
    }

    async fn advance_log_stream(
        &self,
        tenant_id: &str,
        stream_id: &str,
        previous: Option<&str>,
        last: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        crate::security::advance_log_stream(
            self.writer(),
            tenant_id,
            stream_id,
            previous,
            last,
            now,
        )
        .await
    }

    async fn log_events_after(
        &self,
        tenant_id: &str,
        after_id: &str,
        before_id: &str,
        limit: i64,
    ) -> Result<Vec<portcullis_core::audit::LogEvent>, StoreError> {
        crate::logs::after(&self.pool, tenant_id, after_id, before_id, limit).await
    }

    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        // A margin keeps rows a little past expiry, so a late replay is still recognised.
        let before = now - 3600;
        let mut total = 0;
        for statement in [
            "DELETE FROM authorization_codes WHERE expires_at < $1",
            "DELETE FROM login_transactions WHERE expires_at < $1",
            "DELETE FROM access_tokens WHERE expires_at < $1",
            "DELETE FROM sessions WHERE expires_at < $1 OR idle_expires_at < $1 OR revoked_at < $1",
            "DELETE FROM refresh_tokens WHERE expires_at < $1 OR idle_expires_at < $1 \
             OR revoked_at < $1",
            "DELETE FROM tickets WHERE expires_at < $1",
            "DELETE FROM throttles WHERE tat_ms < $1 * 1000",
            // Counts that never led to a block are forgotten after 30 days.
            "DELETE FROM login_failures WHERE blocked_at IS NULL AND last_failure_at < $1 - 2592000",
            "DELETE FROM grants WHERE revoked_at < $1 AND NOT EXISTS (SELECT 1 FROM \
             refresh_tokens r WHERE r.tenant_id = grants.tenant_id AND r.grant_id = grants.id) \
             AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.tenant_id = grants.tenant_id \
             AND a.grant_id = grants.id)",
        ] {
            total += sqlx::query(statement)
                .bind(before)
                .execute(self.writer())
                .await
                .map_err(backend_err)?
                .rows_affected();
        }
        Ok(total)
    }
}

async fn insert_refresh_token<'e, E>(executor: E, t: &RefreshToken) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    bind_refresh_token(
        sqlx::query(
            "INSERT INTO refresh_tokens (tenant_id, token_hash, id, grant_id, client_id, \
             user_id, scope, audience, auth_time, created_at, expires_at, idle_expires_at, \
             used_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, NULL)",
        ),
        t,
    )
    .execute(executor)
    .await
    .map(|_| ())
    .map_err(backend_err)
}

async fn insert_access_record<'e, E>(
    executor: E,
    tenant_id: &str,
    record: &AccessRecord,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO access_tokens (tenant_id, jti, grant_id, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(tenant_id)
    .bind(&record.jti)
    .bind(&record.grant_id)
    .bind(record.expires_at)
    .execute(executor)
    .await
    .map(|_| ())
    .map_err(backend_err)
}

/// A user and their access, read on one connection (`None` when the user is gone).
async fn read_user_with_access(
    conn: &mut AnyConnection,
    tenant_id: &str,
    user_id: &str,
) -> Result<Option<UserAccess>, StoreError> {
    let Some(user) = sqlx::query("SELECT * FROM users WHERE tenant_id = $1 AND user_id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend_err)?
        .map(|r| rows::user(&r))
        .transpose()?
    else {
        return Ok(None);
    };
    let (roles, direct) = read_user_access(&mut *conn, tenant_id, user_id).await?;
    Ok(Some((user, roles, direct)))
}

/// A refresh token and its grant (`None` when the grant is gone), in one statement.
async fn read_refresh_token_and_grant<'e, E>(
    executor: E,
    tenant_id: &str,
    token_hash: &str,
) -> Result<Option<(RefreshToken, Option<Grant>)>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let Some(row) = sqlx::query(
        "SELECT rt.*, g.id AS g_id, g.client_id AS g_client_id, g.user_id AS g_user_id, \
         g.session_id AS g_session_id, g.created_at AS g_created_at, \
         g.revoked_at AS g_revoked_at \
         FROM refresh_tokens rt LEFT JOIN grants g \
         ON g.tenant_id = rt.tenant_id AND g.id = rt.grant_id \
         WHERE rt.tenant_id = $1 AND rt.token_hash = $2",
    )
    .bind(tenant_id)
    .bind(token_hash)
    .fetch_optional(executor)
    .await
    .map_err(backend_err)?
    else {
        return Ok(None);
    };
    let token = rows::refresh_token(&row)?;
    let grant_id: Option<String> = row.try_get("g_id").map_err(backend_err)?;
    let grant = match grant_id {
        None => None,
        Some(id) => Some(Grant {
            tenant_id: token.tenant_id.clone(),
            id,
            client_id: row.try_get("g_client_id").map_err(backend_err)?,
            user_id: row.try_get("g_user_id").map_err(backend_err)?,
            session_id: row.try_get("g_session_id").map_err(backend_err)?,
            created_at: row.try_get("g_created_at").map_err(backend_err)?,
            revoked_at: row.try_get("g_revoked_at").map_err(backend_err)?,
        }),
    };
    Ok(Some((token, grant)))
}

/// A user's roles (each with its permissions) and direct permissions, in one statement.
async fn read_user_access<'e, E>(
    executor: E,
    tenant_id: &str,
    user_id: &str,
) -> Result<(Vec<Role>, Vec<Permission>), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    // Three parts in one statement: `a` the roles, `b` their permissions, `c` the
    // direct permissions; unused columns are empty strings so both backends agree on
    // the types.
    let rows = sqlx::query(
        "SELECT 'a' AS part, r.id AS role_id, r.name AS role_name, \
         r.description AS role_description, '' AS rs, '' AS perm \
         FROM roles r JOIN user_roles ur ON ur.tenant_id = r.tenant_id AND ur.role_id = r.id \
         WHERE ur.tenant_id = $1 AND ur.user_id = $2 \
         UNION ALL \
         SELECT 'b', rp.role_id, '', '', rp.resource_server_identifier, rp.permission_name \
         FROM role_permissions rp JOIN user_roles ur \
         ON ur.tenant_id = rp.tenant_id AND ur.role_id = rp.role_id \
         WHERE ur.tenant_id = $1 AND ur.user_id = $2 \
         UNION ALL \
         SELECT 'c', '', '', '', up.resource_server_identifier, up.permission_name \
         FROM user_permissions up WHERE up.tenant_id = $1 AND up.user_id = $2 \
         ORDER BY part, role_name, role_id, rs, perm",
    )
    .bind(tenant_id)
    .bind(user_id)
    .fetch_all(executor)
    .await
    .map_err(backend_err)?;
    let mut roles = Vec::new();
    let mut role_perms: BTreeMap<String, Vec<Permission>> = BTreeMap::new();
    let mut direct = Vec::new();
    for row in &rows {
        let part: String = row.try_get("part").map_err(backend_err)?;
        let permission = || -> Result<Permission, StoreError> {
            Ok(Permission {
                resource_server_identifier: row.try_get("rs").map_err(backend_err)?,
                permission_name: row.try_get("perm").map_err(backend_err)?,
            })
        };
        match part.as_str() {
            "a" => roles.push(Role {
                tenant_id: tenant_id.to_owned(),
                id: row.try_get("role_id").map_err(backend_err)?,
                name: row.try_get("role_name").map_err(backend_err)?,
                description: row.try_get("role_description").map_err(backend_err)?,
                permissions: Vec::new(),
            }),
            "b" => role_perms
                .entry(row.try_get("role_id").map_err(backend_err)?)
                .or_default()
                .push(permission()?),
            _ => direct.push(permission()?),
        }
    }
    for role in &mut roles {
        role.permissions = role_perms.remove(&role.id).unwrap_or_default();
    }
    Ok((roles, direct))
}

/// Binds a new refresh token's twelve stored values, in the column order of
/// `INSERT INTO refresh_tokens` (tenant, hash, id, grant, client, user, scope, audience,
/// auth time, creation, expiry, idle expiry).
fn bind_refresh_token<'q>(query: rows::AnyQuery<'q>, t: &'q RefreshToken) -> rows::AnyQuery<'q> {
    query
        .bind(&t.tenant_id)
        .bind(&t.token_hash)
        .bind(&t.id)
        .bind(&t.grant_id)
        .bind(&t.client_id)
        .bind(&t.user_id)
        .bind(to_json(&t.scope))
        .bind(t.audience.as_deref())
        .bind(t.auth_time)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.idle_expires_at)
}
