//! Connecting: the backend named by the URL, the pools and the migrations. The statements
//! live beside the capability they serve; every one is tenant-scoped.

use crate::rows::backend_err;
use async_trait::async_trait;
use portcullis_core::model::Timestamp;
use portcullis_core::store::{Store, StoreError};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool};

/// The database a URL names. The URL's scheme is the only place the backend is read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of `url` (`sqlite:…`, `postgres://…` or `postgresql://…`).
    #[must_use]
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }

    /// `sqlite` or `postgres`, for logs and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    /// The product's name, for messages.
    #[must_use]
    pub fn product(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

/// A connection pool to SQLite or PostgreSQL, migrated on connect.
#[derive(Clone, Debug)]
pub struct SqlStore {
    /// Reads. On SQLite these connections refuse writes (`query_only`).
    pub(crate) pool: AnyPool,
    /// Writes, and reads inside a write transaction. One connection on SQLite.
    pub(crate) writer: AnyPool,
    pub(crate) backend: Backend,
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
        let backend = Backend::of_url(url).ok_or_else(|| {
            StoreError::Backend("the database URL must start with sqlite: or postgres://".into())
        })?;
        let url = if backend == Backend::Postgres || url.contains("mode=") {
            url.to_owned()
        } else if url.contains('?') {
            format!("{url}&mode=rwc")
        } else {
            format!("{url}?mode=rwc")
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
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
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
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Whether this is SQLite.
    pub(crate) fn is_sqlite(&self) -> bool {
        self.backend == Backend::Sqlite
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a transaction that reads before it writes then waits out a concurrent
    /// writer (the busy timeout) instead of failing when it upgrades its lock mid-way.
    pub(crate) async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        self.writer
            .begin_with(if self.is_sqlite() {
                "BEGIN IMMEDIATE"
            } else {
                "BEGIN"
            })
            .await
            .map_err(backend_err)
    }

    /// Closes the pools, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> &'static str {
        self.backend.as_str()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend_err)
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
