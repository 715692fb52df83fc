//! The storage contract. Each method is one atomic unit of work named for its intent;
//! `find_*` answers `Ok(None)` only when the row is absent, never on an error, and
//! `consume_*` spends a single-use secret in one statement so a replay loses the race.

use crate::model::{
    AuthorizationCode, Client, ClientGrant, CodeGrant, Grant, LoginBlock, LoginFailures,
    LoginTransaction, Permission, RefreshToken, ResourceServer, Role, Session, SigningKeyRecord,
    Tenant, Ticket, TicketKind, Timestamp, User,
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
    #[error("database error: {0}")]
    Backend(String),
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

#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Which backend this is (`sqlite` or `postgres`), for logs and metrics.
    fn backend(&self) -> &'static str;

    /// Cheap readiness probe.
    async fn ping(&self) -> Result<(), StoreError>;

    // Tenants
    async fn ensure_tenant(&self, tenant: &Tenant, now: Timestamp) -> Result<(), StoreError>;
    async fn find_tenant(&self, tenant_id: &str) -> Result<Option<Tenant>, StoreError>;

    // Signing keys
    async fn list_signing_keys(&self, tenant_id: &str)
    -> Result<Vec<SigningKeyRecord>, StoreError>;
    /// Adds `key` and marks every other live key of its algorithm as retired from
    /// `key.active_from`, expiring at `old_keys_expire_at`.
    async fn add_signing_key(
        &self,
        key: &SigningKeyRecord,
        old_keys_expire_at: Timestamp,
    ) -> Result<(), StoreError>;

    // Applications and APIs
    async fn find_client(
        &self,
        tenant_id: &str,
        client_id: &str,
    ) -> Result<Option<Client>, StoreError>;
    async fn list_clients(&self, tenant_id: &str) -> Result<Vec<Client>, StoreError>;
    async fn list_resource_servers(
        &self,
        tenant_id: &str,
    ) -> Result<Vec<ResourceServer>, StoreError>;
    async fn find_resource_server(
        &self,
        tenant_id: &str,
        identifier: &str,
    ) -> Result<Option<ResourceServer>, StoreError>;
    async fn list_client_grants(&self, tenant_id: &str) -> Result<Vec<ClientGrant>, StoreError>;
    async fn list_roles(&self, tenant_id: &str) -> Result<Vec<Role>, StoreError>;

    /// Deletes an API with its client grants and the role permissions on it.
    async fn delete_resource_server(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError>;
    /// Deletes an application with its client grants, refresh tokens and consents, and
    /// revokes its grants.
    async fn delete_client(
        &self,
        tenant_id: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    async fn delete_client_grant(&self, tenant_id: &str, id: &str) -> Result<bool, StoreError>;
    async fn find_role(&self, tenant_id: &str, role_id: &str) -> Result<Option<Role>, StoreError>;
    /// Adds a role (its permissions too); a taken name is a `Conflict`.
    async fn insert_role(&self, role: &Role, now: Timestamp) -> Result<(), StoreError>;
    /// Renames or redescribes a role; a taken name is a `Conflict`.
    async fn update_role(&self, role: &Role) -> Result<(), StoreError>;
    /// Deletes a role with its permissions and assignments; `false` if there was none.
    async fn delete_role(&self, tenant_id: &str, role_id: &str) -> Result<bool, StoreError>;
    /// Adds (`add = true`) or removes permissions of a role, in one transaction.
    async fn change_role_permissions(
        &self,
        tenant_id: &str,
        role_id: &str,
        permissions: &[Permission],
        add: bool,
    ) -> Result<(), StoreError>;
    /// Assigns (`add = true`) or unassigns roles of a user, in one transaction.
    async fn change_user_roles(
        &self,
        tenant_id: &str,
        user_id: &str,
        role_ids: &[String],
        add: bool,
    ) -> Result<(), StoreError>;
    /// Permissions given to a user directly (not through roles).
    async fn list_user_permissions(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Vec<Permission>, StoreError>;
    /// Gives (`add = true`) or takes permissions from a user directly, in one transaction.
    async fn change_user_permissions(
        &self,
        tenant_id: &str,
        user_id: &str,
        permissions: &[Permission],
        add: bool,
    ) -> Result<(), StoreError>;
    /// A page of the users holding a role, and how many hold it.
    async fn list_role_users(
        &self,
        tenant_id: &str,
        role_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<User>, i64), StoreError>;

    /// Applies a tenant file's changes all together or not at all.
    async fn apply_changes(
        &self,
        tenant_id: &str,
        changes: &[Change],
        now: Timestamp,
    ) -> Result<(), StoreError>;

    // Users
    async fn find_user(&self, tenant_id: &str, user_id: &str) -> Result<Option<User>, StoreError>;
    async fn find_user_by_email(
        &self,
        tenant_id: &str,
        connection: &str,
        email: &str,
    ) -> Result<Option<User>, StoreError>;
    /// A user with what a token needs of their authorization (`None` when the user is
    /// gone): their roles (each with its permissions, by name) and their direct permissions,
    /// as `list_user_roles` and `list_user_permissions` answer them.
    async fn user_with_access(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Option<UserAccess>, StoreError>;
    /// Role names and ids of a user.
    async fn list_user_roles(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Vec<Role>, StoreError>;
    /// Adds a user; a taken email is a `Conflict`.
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    /// Adds many users in one transaction, many rows per statement (bulk imports); a taken
    /// email fails the whole batch.
    async fn insert_users(&self, users: &[User]) -> Result<(), StoreError>;
    /// Replaces a user's stored profile.
    async fn update_user(&self, user: &User) -> Result<(), StoreError>;
    /// Erases a user and everything that is theirs (sessions, grants, tokens, consents, role
    /// assignments); `false` if there was no such user.
    async fn delete_user(&self, tenant_id: &str, user_id: &str) -> Result<bool, StoreError>;
    /// Revokes every session and grant (so every refresh token) of a user.
    async fn end_user_sessions(
        &self,
        tenant_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    /// A page of users matching a search, and how many match in all.
    async fn search_users(
        &self,
        tenant_id: &str,
        search: &crate::management::query::UserSearch,
    ) -> Result<(Vec<User>, i64), StoreError>;
    async fn record_login(
        &self,
        tenant_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    // Login transactions. A transaction in progress is not stored: it travels sealed in
    // the login page (`oauth::transaction`). A row is written once the page is answered:
    // when the transaction is spent, or when it pauses for another step.
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

    // Consent to third-party applications
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
    /// Finds a live session by its public id.
    async fn find_session(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError>;

    // SSO sessions
    async fn create_session(&self, session: &Session, secret_hash: &str) -> Result<(), StoreError>;
    /// A live session by its cookie secret's hash (not revoked, not expired at `now`).
    async fn find_session_by_secret(
        &self,
        tenant_id: &str,
        secret_hash: &str,
        now: Timestamp,
    ) -> Result<Option<Session>, StoreError>;
    async fn touch_session(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
        idle_expires_at: Timestamp,
    ) -> Result<(), StoreError>;
    async fn revoke_session(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    // Grants, codes and tokens
    async fn create_grant(&self, grant: &Grant) -> Result<(), StoreError>;
    async fn find_grant(&self, tenant_id: &str, id: &str) -> Result<Option<Grant>, StoreError>;
    /// Revokes a grant and every refresh token hanging off it.
    async fn revoke_grant(
        &self,
        tenant_id: &str,
        id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError>;
    async fn create_authorization_code(
        &self,
        tenant_id: &str,
        code_hash: &str,
        grant_id: &str,
        grant: &CodeGrant,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Spends a code issued to `client_id`. `Some` with `used_before = true` means it had
    /// been spent already; another client's code is `None` and stays unspent.
    async fn consume_authorization_code(
        &self,
        tenant_id: &str,
        code_hash: &str,
        client_id: &str,
        now: Timestamp,
    ) -> Result<Option<AuthorizationCode>, StoreError>;
    /// A code issued to `client_id`, read without spending it (`used_before` says whether it
    /// was spent).
    async fn find_authorization_code(
        &self,
        tenant_id: &str,
        code_hash: &str,
        client_id: &str,
    ) -> Result<Option<AuthorizationCode>, StoreError>;
    async fn create_refresh_token(&self, token: &RefreshToken) -> Result<(), StoreError>;
    /// A refresh token and its grant (`None` when the grant is gone), in one read.
    async fn find_refresh_token_and_grant(
        &self,
        tenant_id: &str,
        token_hash: &str,
    ) -> Result<Option<(RefreshToken, Option<Grant>)>, StoreError>;
    /// A refresh token with its grant and its user's access (as `user_with_access`), read
    /// together for the refresh-token grant: one trip to the database's pool, not two.
    async fn find_refresh_token_context(
        &self,
        tenant_id: &str,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenContext>, StoreError>;
    async fn find_refresh_token(
        &self,
        tenant_id: &str,
        token_hash: &str,
    ) -> Result<Option<RefreshToken>, StoreError>;
    /// Marks `old_hash` used, stores `new` and records the access token issued beside it
    /// (as [`Store::record_access_token`]) in one transaction; `false` when `old_hash` had
    /// already been used (unless `allow_reuse_since` is set and it was used after that time).
    async fn rotate_refresh_token(
        &self,
        tenant_id: &str,
        old_hash: &str,
        new: &RefreshToken,
        access: &AccessRecord,
        now: Timestamp,
        allow_reuse_since: Option<Timestamp>,
    ) -> Result<bool, StoreError>;
    /// Slides a non-rotating token's idle expiry.
    async fn touch_refresh_token(
        &self,
        tenant_id: &str,
        token_hash: &str,
        idle_expires_at: Option<Timestamp>,
    ) -> Result<(), StoreError>;
    async fn record_access_token(
        &self,
        tenant_id: &str,
        jti: &str,
        grant_id: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError>;
    /// The grant a recorded access token was issued under (`None` for unrecorded tokens,
    /// such as machine tokens).
    async fn find_access_token_grant(
        &self,
        tenant_id: &str,
        jti: &str,
    ) -> Result<Option<Grant>, StoreError>;

    // Audit trail
    async fn insert_log_event(&self, event: &crate::audit::LogEvent) -> Result<(), StoreError>;
    /// Stores several events in one transaction.
    async fn insert_log_events(&self, events: &[crate::audit::LogEvent]) -> Result<(), StoreError>;
    async fn find_log_event(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<crate::audit::LogEvent>, StoreError>;
    /// A page of events, newest first unless `ascending`, and how many match.
    async fn search_log_events(
        &self,
        tenant_id: &str,
        filter: &crate::audit::LogFilter,
    ) -> Result<(Vec<crate::audit::LogEvent>, i64), StoreError>;
    /// Deletes events dated before `before_ms` (unix milliseconds).
    async fn purge_log_events(&self, tenant_id: &str, before_ms: i64) -> Result<u64, StoreError>;

    // Settings documents
    async fn find_setting(
        &self,
        tenant_id: &str,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError>;
    async fn save_setting(
        &self,
        tenant_id: &str,
        name: &str,
        value: &serde_json::Value,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    // Throttles (GCRA buckets, in unix milliseconds)
    /// Counts one request against `bucket` when it fits: the bucket's TAT moves to
    /// `max(tat, now_ms) + interval_ms` unless that is more than `window_ms` ahead of
    /// `now_ms`. Answers whether it fitted and the bucket's TAT afterwards, in one statement.
    async fn throttle_hit(
        &self,
        tenant_id: &str,
        bucket: &str,
        now_ms: i64,
        interval_ms: i64,
        window_ms: i64,
    ) -> Result<(bool, i64), StoreError>;
    /// The bucket's TAT, if it has one.
    async fn throttle_peek(&self, tenant_id: &str, bucket: &str)
    -> Result<Option<i64>, StoreError>;
    /// Gives one counted request back (a success that was counted in advance).
    async fn throttle_refund(
        &self,
        tenant_id: &str,
        bucket: &str,
        interval_ms: i64,
    ) -> Result<(), StoreError>;

    // Brute-force protection
    /// Counts a login attempt of `user_id` from `ip` before its password is checked (so
    /// parallel attempts cannot slip past the limit), in one statement. With `enforce`, the
    /// pair is blocked once the count passes `max_attempts`.
    async fn count_login_attempt(
        &self,
        tenant_id: &str,
        user_id: &str,
        ip: &str,
        now: Timestamp,
        max_attempts: i64,
        enforce: bool,
    ) -> Result<LoginFailures, StoreError>;
    /// Marks the pair's user as told about the block; `true` only the first time.
    async fn claim_block_notice(
        &self,
        tenant_id: &str,
        user_id: &str,
        ip: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    async fn login_blocked(
        &self,
        tenant_id: &str,
        user_id: &str,
        ip: &str,
    ) -> Result<bool, StoreError>;
    /// Forgets the failures of a pair that is not blocked (after a successful login).
    async fn clear_login_failures(
        &self,
        tenant_id: &str,
        user_id: &str,
        ip: &str,
    ) -> Result<(), StoreError>;
    async fn list_login_blocks(
        &self,
        tenant_id: &str,
        user_id: &str,
    ) -> Result<Vec<LoginBlock>, StoreError>;
    /// Releases the blocks (and counts) of a user, for one IP or all; how many were blocked.
    async fn release_login_blocks(
        &self,
        tenant_id: &str,
        user_id: &str,
        ip: Option<&str>,
    ) -> Result<u64, StoreError>;

    // Tickets (single-use emailed links)
    async fn create_ticket(&self, ticket: &Ticket) -> Result<(), StoreError>;
    /// A live, unused ticket of `kind`.
    async fn find_ticket(
        &self,
        tenant_id: &str,
        ticket_hash: &str,
        kind: TicketKind,
        now: Timestamp,
    ) -> Result<Option<Ticket>, StoreError>;
    /// Spends a live ticket of `kind` in one statement; `None` if it is unknown, expired or
    /// already spent.
    async fn consume_ticket(
        &self,
        tenant_id: &str,
        ticket_hash: &str,
        kind: TicketKind,
        now: Timestamp,
    ) -> Result<Option<Ticket>, StoreError>;

    // Passwords
    /// The user's earlier password hashes, newest first, at most `limit`.
    async fn password_history(
        &self,
        tenant_id: &str,
        user_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
    /// Sets a new password hash in one transaction: the old hash joins the history (which
    /// keeps `keep` entries), every session and refresh token of the user ends, brute-force
    /// blocks are released, the user's unused password-change and unblock links stop
    /// working, and the email is marked verified when `verify_email`.
    async fn change_password(
        &self,
        tenant_id: &str,
        user_id: &str,
        new_hash: &str,
        keep: usize,
        verify_email: bool,
        now: Timestamp,
    ) -> Result<(), StoreError>;

    // Log streams
    async fn log_stream_checkpoint(
        &self,
        tenant_id: &str,
        stream_id: &str,
    ) -> Result<Option<String>, StoreError>;
    /// Moves a stream's checkpoint from `previous` to `last`; `false` if another replica
    /// moved it first.
    async fn advance_log_stream(
        &self,
        tenant_id: &str,
        stream_id: &str,
        previous: Option<&str>,
        last: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Events with an id after `after_id` and before `before_id`, oldest first.
    async fn log_events_after(
        &self,
        tenant_id: &str,
        after_id: &str,
        before_id: &str,
        limit: i64,
    ) -> Result<Vec<crate::audit::LogEvent>, StoreError>;
    /// Marks the email verified if it is still `email_normalized`; `false` otherwise.
    async fn mark_email_verified(
        &self,
        tenant_id: &str,
        user_id: &str,
        email_normalized: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Deletes rows that can no longer be used: expired codes, login transactions and
    /// recorded access tokens; ended sessions; expired or revoked refresh tokens; revoked
    /// grants with nothing left hanging off them.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;
}
