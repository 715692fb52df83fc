//! The storage contract. Each method is one atomic unit of work named for its intent;
//! `find_*` answers `Ok(None)` only when the row is absent, never on an error, and
//! `consume_*` spends a single-use secret in one statement so a replay loses the race.
//!
//! The contract is split by capability, one trait per file (`ClientStore`, `UserStore`,
//! `SessionStore`, `GrantStore`, …); `Store` is all of them together. A service borrows
//! only the capability it needs.

use crate::model::{
    Client, ClientGrant, Grant, Permission, RefreshToken, ResourceServer, Role, Tenant, Timestamp,
    User,
};
use async_trait::async_trait;

/// A storage failure, free of driver types.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (the text names the rule, never the values).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored value could not be read back as the domain type.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database failed or could not be reached.
    #[error("database error")]
    Backend(#[source] crate::error::BoxError),
}

/// A user with what a token needs of their authorization: their roles (each with its
/// permissions) and their direct permissions.
pub type UserAccess = (User, Vec<Role>, Vec<Permission>);

/// What a refresh-token grant reads before it signs.
#[derive(Clone, Debug)]
pub struct RefreshTokenContext {
    pub token: RefreshToken,
    /// `None` when the grant is gone.
    pub grant: Option<Grant>,
    /// The user the token was issued to; `None` when the user is gone.
    pub user: Option<UserAccess>,
}

/// An access token issued under a grant, recorded so that revoking the grant revokes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRecord {
    pub jti: String,
    pub grant_id: String,
    pub expires_at: Timestamp,
}

/// Whether a membership edit adds to a set or removes from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    Add,
    Remove,
}

/// One page of a listing, and how many items match in all.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// What counting one request against a rate-limit bucket found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleHit {
    /// Whether the request fitted (and was counted).
    pub fitted: bool,
    /// The bucket's theoretical arrival time afterwards, in unix milliseconds.
    pub tat_ms: i64,
}

/// One change computed by `portcullis apply`, applied with the others in one transaction.
#[derive(Clone, Debug)]
pub enum Change {
    Tenant(Tenant),
    Client(Client),
    ResourceServer(ResourceServer),
    ClientGrant(ClientGrant),
    /// A role with its full permission set (replaces the stored set).
    Role(Role),
    /// A user with the full set of role ids (replaces the stored set).
    User {
        user: User,
        role_ids: Vec<String>,
    },
    /// A settings document (attack protection, the database connection's options).
    Setting {
        name: String,
        value: serde_json::Value,
    },
}

mod audit;
mod clients;
mod grants;
mod logins;
mod roles;
mod sessions;
mod settings;
mod throttles;
mod tickets;
mod users;

pub use audit::AuditStore;
pub use clients::ClientStore;
pub use grants::GrantStore;
pub use logins::LoginStore;
pub use roles::RoleStore;
pub use sessions::SessionStore;
pub use settings::SettingsStore;
pub use throttles::ThrottleStore;
pub use tickets::TicketStore;
pub use users::UserStore;

/// The whole storage contract: every capability, plus what concerns the database as a whole.
///
/// A service that needs one capability borrows it alone (`&dyn UserStore`, upcast from
/// `&dyn Store`).
#[async_trait]
pub trait Store:
    SettingsStore
    + ClientStore
    + RoleStore
    + UserStore
    + LoginStore
    + SessionStore
    + GrantStore
    + AuditStore
    + ThrottleStore
    + TicketStore
    + Send
    + Sync
    + std::fmt::Debug
{
    /// Which backend this is (`sqlite` or `postgres`), for logs and metrics.
    fn backend(&self) -> &'static str;

    /// Cheap readiness probe.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Deletes rows that can no longer be used: expired codes, login transactions and
    /// recorded access tokens; ended sessions; expired or revoked refresh tokens; revoked
    /// grants with nothing left hanging off them.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// The capability traits, imported unnamed so their methods can be called on a `dyn Store`.
pub mod prelude {
    pub use super::{
        AuditStore as _, ClientStore as _, GrantStore as _, LoginStore as _, RoleStore as _,
        SessionStore as _, SettingsStore as _, Store as _, ThrottleStore as _, TicketStore as _,
        UserStore as _,
    };
}
