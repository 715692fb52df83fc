//! Rate-limit buckets (GCRA, in unix milliseconds) and brute-force counters.

use super::{StoreError, ThrottleHit};
use crate::model::{LoginBlock, LoginFailures, Timestamp};
use async_trait::async_trait;

/// Rate-limit buckets (GCRA, in unix milliseconds) and brute-force counters.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
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
    ) -> Result<ThrottleHit, StoreError>;

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
}
