//! Counting requests with the generic cell rate algorithm (GCRA): each bucket stores one
//! "theoretical arrival time" (TAT) in the database, so limits hold across a restart and
//! across replicas sharing a database. A bucket allows `burst` requests at once and one
//! more every `interval_ms`; a refused request is not counted.

use crate::clock::Clock;
use crate::service::Portcullis;
use crate::store::{StoreError, ThrottleHit, ThrottleStore};
use std::collections::HashMap;
use std::sync::Mutex;

/// `burst` requests at once, refilled one every `interval_ms` milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub burst: u32,
    pub interval_ms: i64,
}

impl Limit {
    /// `n` requests per `seconds`, all of them usable at once.
    #[must_use]
    pub fn per(n: u32, seconds: i64) -> Self {
        let n = n.max(1);
        Self {
            burst: n,
            interval_ms: (seconds * 1000 / i64::from(n)).max(1),
        }
    }

    fn window_ms(self) -> i64 {
        i64::from(self.burst) * self.interval_ms
    }
}

/// The outcome of counting one request, with what the rate-limit headers report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds at which the bucket is full again (`x-ratelimit-reset`).
    pub reset_at: i64,
    /// Seconds to wait before the next request can pass (`Retry-After`; 0 when allowed).
    pub retry_after: i64,
}

impl Decision {
    /// Reads a decision off the bucket's TAT after the hit (or after the refusal).
    #[must_use]
    pub fn from_tat(limit: Limit, allowed: bool, tat_ms: i64, now_ms: i64) -> Self {
        let tat = tat_ms.max(now_ms);
        let free_ms = now_ms + limit.window_ms() - tat;
        let remaining = u32::try_from((free_ms / limit.interval_ms).max(0)).unwrap_or(0);
        let retry_ms = if allowed {
            0
        } else {
            (tat + limit.interval_ms - limit.window_ms() - now_ms).max(1)
        };
        Self {
            allowed,
            limit: limit.burst,
            remaining: remaining.min(limit.burst),
            reset_at: ceil_div(tat, 1000),
            retry_after: ceil_div(retry_ms, 1000),
        }
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}

/// How long a share taken from a database bucket may be spent in this process.
const LEASE_MS: i64 = 250;
/// The largest share, whatever the limit.
const MAX_SHARE: u32 = 1024;
/// Past this many buckets, shares untouched for a while are forgotten (their unspent
/// requests stay counted, which only makes the limit stricter).
const MAX_BUCKETS: usize = 10_000;

/// Shares of database buckets held by this process (see [`Throttles::count_shared`]),
/// and the buckets the database last found full, so a flood of refused requests is refused
/// here without reaching the database.
#[derive(Debug, Default)]
pub struct Leases {
    map: Mutex<HashMap<String, Lease>>,
    /// A full bucket: its TAT as the database last reported it, and when it may next have
    /// room (`tat + interval - window`).
    full: Mutex<HashMap<String, (i64, i64)>>,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    /// Requests of the share still to spend.
    left: u32,
    /// Requests spent since the share was taken.
    used: u32,
    /// The size of the last share taken.
    size: u32,
    taken_ms: i64,
    /// The database's view when the share was taken.
    decision: Decision,
    tat_ms: i64,
}

impl Leases {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Spends one request of a live share, if there is one.
    fn spend(&self, bucket: &str, limit: Limit, now_ms: i64) -> Option<Decision> {
        let mut map = self.lock();
        let lease = map.get_mut(bucket)?;
        if lease.left == 0 || now_ms - lease.taken_ms >= LEASE_MS {
            return None;
        }
        lease.left -= 1;
        lease.used += 1;
        Some(lease.report(limit))
    }

    /// What the next share of `bucket` should be, and the unspent requests of an expired
    /// share to give back to the database first. Clears the expired share.
    fn plan(&self, bucket: &str, limit: Limit, now_ms: i64) -> (u32, u32) {
        let most = (limit.burst / 16).clamp(1, MAX_SHARE);
        let mut map = self.lock();
        let Some(lease) = map.get_mut(bucket) else {
            return (1, 0);
        };
        let fresh = now_ms - lease.taken_ms < LEASE_MS;
        // A share spent before it expired asks for a bigger one; otherwise the next share
        // is what was spent, so a quiet bucket goes back to one request at a time.
        let size = if fresh && lease.left == 0 {
            lease.size.saturating_mul(2)
        } else {
            lease.used.max(1)
        };
        let refund = if fresh { 0 } else { lease.left };
        if !fresh {
            lease.left = 0;
        }
        (size.clamp(1, most), refund)
    }

    /// Records a share of `granted` requests taken now, one of which the caller spends.
    fn record(
        &self,
        bucket: &str,
        limit: Limit,
        granted: u32,
        decision: Decision,
        tat_ms: i64,
        now_ms: i64,
    ) -> Decision {
        let mut map = self.lock();
        if map.len() >= MAX_BUCKETS && !map.contains_key(bucket) {
            map.retain(|_, l| now_ms - l.taken_ms < LEASE_MS);
        }
        let lease = map.entry(bucket.to_owned()).or_insert(Lease {
            left: 0,
            used: 0,
            size: granted,
            taken_ms: now_ms,
            decision,
            tat_ms,
        });
        // Shares taken side by side by concurrent requests add up; otherwise this share
        // starts the count of what is spent.
        let merge = now_ms - lease.taken_ms < LEASE_MS && lease.left > 0;
        lease.left = if merge { lease.left } else { 0 } + granted.saturating_sub(1);
        lease.used = if merge { lease.used } else { 0 } + 1;
        lease.size = granted;
        lease.taken_ms = now_ms;
        lease.decision = decision;
        lease.tat_ms = tat_ms;
        lease.report(limit)
    }

    /// The TAT of `bucket` if the database found it full and it cannot have room yet: no
    /// request fits before `tat + interval - window`. Requests spent by other replicas only
    /// push the TAT further; a refund (another replica's expired share) can pull it back,
    /// and then this process refuses for at most one interval more than the exact limit.
    fn still_full(&self, bucket: &str, now_ms: i64) -> Option<i64> {
        let mut full = self
            .full
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tat, room_at) = *full.get(bucket)?;
        if room_at > now_ms {
            Some(tat)
        } else {
            full.remove(bucket);
            None
        }
    }

    /// Remembers that the database found `bucket` full with this TAT.
    fn remember_full(&self, bucket: &str, limit: Limit, tat_ms: i64, now_ms: i64) {
        let mut full = self
            .full
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if full.len() >= MAX_BUCKETS && !full.contains_key(bucket) {
            // Forgetting a full bucket only sends its next request to the database.
            full.retain(|_, (_, room_at)| *room_at > now_ms);
            if full.len() >= MAX_BUCKETS {
                full.clear();
            }
        }
        let room_at = tat_ms + limit.interval_ms - limit.window_ms();
        full.insert(bucket.to_owned(), (tat_ms, room_at));
    }
}

impl Lease {
    /// The headers' view: the database's remaining requests plus this share's.
    fn report(&self, limit: Limit) -> Decision {
        let unspent = i64::from(self.left) * limit.interval_ms;
        Decision {
            allowed: true,
            remaining: self
                .decision
                .remaining
                .saturating_add(self.left)
                .min(limit.burst),
            reset_at: ceil_div(self.tat_ms - unspent, 1000),
            ..self.decision
        }
    }
}

/// Rate-limit buckets: the throttle store, the clock and this process's leases, and
/// nothing else.
pub struct Throttles<'a> {
    store: &'a dyn ThrottleStore,
    clock: &'a dyn Clock,
    leases: &'a Leases,
    tenant_id: &'a str,
}

impl Portcullis {
    /// The rate-limit buckets.
    #[must_use]
    pub fn throttles(&self) -> Throttles<'_> {
        Throttles {
            store: self.store.as_ref(),
            clock: self.clock.as_ref(),
            leases: &self.leases,
            tenant_id: self.tenant_id(),
        }
    }
}

impl Throttles<'_> {
    /// Counts one request against `bucket` like [`Throttles::count`], but a busy bucket
    /// costs one database write per share rather than one per request, and a full one none
    /// until it can have room again: the process takes
    /// several requests at once from the database bucket and spends them within
    /// `LEASE_MS`. A share is counted in the database before any of it is spent, so the
    /// limit still holds across replicas; shares grow while they run out and shrink back to
    /// one request when the bucket is quiet, and an expired share's unspent requests are
    /// given back. A limit of fewer than 32 requests is never shared: it is counted one
    /// request at a time, exactly.
    pub async fn count_shared(&self, bucket: &str, limit: Limit) -> Result<Decision, StoreError> {
        let now_ms = self.clock.now_ms();
        if let Some(decision) = self.leases.spend(bucket, limit, now_ms) {
            return Ok(decision);
        }
        if let Some(tat) = self.leases.still_full(bucket, now_ms) {
            return Ok(Decision::from_tat(limit, false, tat, now_ms));
        }
        let (size, refund) = self.leases.plan(bucket, limit, now_ms);
        if refund > 0 {
            self.store
                .throttle_refund(
                    self.tenant_id,
                    bucket,
                    i64::from(refund) * limit.interval_ms,
                )
                .await?;
        }
        let tenant = self.tenant_id;
        let window = limit.window_ms();
        let mut granted = size;
        let ThrottleHit {
            fitted: mut allowed,
            tat_ms: mut tat,
        } = self
            .store
            .throttle_hit(
                tenant,
                bucket,
                now_ms,
                i64::from(size) * limit.interval_ms,
                window,
            )
            .await?;
        if !allowed && size > 1 {
            // Nearly empty: the last requests go one at a time.
            granted = 1;
            ThrottleHit {
                fitted: allowed,
                tat_ms: tat,
            } = self
                .store
                .throttle_hit(tenant, bucket, now_ms, limit.interval_ms, window)
                .await?;
        }
        let decision = Decision::from_tat(limit, allowed, tat, now_ms);
        if !allowed {
            self.leases.remember_full(bucket, limit, tat, now_ms);
            return Ok(decision);
        }
        Ok(self
            .leases
            .record(bucket, limit, granted, decision, tat, now_ms))
    }

    /// Counts one request against `bucket`; a refused request is not counted.
    pub async fn count(&self, bucket: &str, limit: Limit) -> Result<Decision, StoreError> {
        let now_ms = self.clock.now_ms();
        let ThrottleHit {
            fitted: allowed,
            tat_ms: tat,
        } = self
            .store
            .throttle_hit(
                self.tenant_id,
                bucket,
                now_ms,
                limit.interval_ms,
                limit.window_ms(),
            )
            .await?;
        Ok(Decision::from_tat(limit, allowed, tat, now_ms))
    }

    /// Whether `bucket` would refuse a request now, without counting one.
    pub async fn is_full(&self, bucket: &str, limit: Limit) -> Result<bool, StoreError> {
        let now_ms = self.clock.now_ms();
        let tat = self.store.throttle_peek(self.tenant_id, bucket).await?;
        Ok(tat.is_some_and(|tat| tat.max(now_ms) + limit.interval_ms - now_ms > limit.window_ms()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_grow_while_spent_and_shrink_when_quiet() {
        let leases = Leases::default();
        let limit = Limit::per(6_000, 60);
        let now = 1_000_000;
        let db = Decision::from_tat(limit, true, now + 100, now);
        assert_eq!(leases.plan("b", limit, now), (1, 0));
        leases.record("b", limit, 1, db, now + 100, now);
        // Spent at once: the next share doubles, up to burst / 16.
        assert_eq!(leases.plan("b", limit, now), (2, 0));
        leases.record("b", limit, 2, db, now + 300, now);
        assert!(leases.spend("b", limit, now + 1).is_some());
        assert!(leases.spend("b", limit, now + 1).is_none());
        assert_eq!(leases.plan("b", limit, now + 1), (4, 0));
        leases.record("b", limit, 4, db, now + 700, now + 1);
        // Quiet past the lease: the three unspent requests go back and the share shrinks.
        let later = now + 1 + LEASE_MS;
        assert!(leases.spend("b", limit, later).is_none());
        assert_eq!(leases.plan("b", limit, later), (1, 3));
        // Small limits are never shared.
        let small = Limit::per(20, 60);
        leases.record("s", small, 1, db, now + 3_000, now);
        assert_eq!(leases.plan("s", small, now), (1, 0));
    }

    #[test]
    fn a_full_bucket_is_refused_locally_until_it_can_have_room() {
        let leases = Leases::default();
        let limit = Limit::per(3, 60);
        let now = 1_000_000;
        // Full: TAT a whole window ahead. No request fits for one interval.
        leases.remember_full("f", limit, now + 60_000, now);
        assert_eq!(leases.still_full("f", now), Some(now + 60_000));
        assert_eq!(leases.still_full("f", now + 19_999), Some(now + 60_000));
        assert_eq!(leases.still_full("f", now + 20_000), None);
        // Forgotten once it may have room: the next request asks the database.
        assert_eq!(leases.still_full("f", now), None);
    }

    #[test]
    fn decisions_report_remaining_reset_and_retry() {
        let limit = Limit::per(3, 60);
        assert_eq!(limit.interval_ms, 20_000);
        let now = 1_000_000;
        // First hit: TAT = now + 20 s.
        let d = Decision::from_tat(limit, true, now + 20_000, now);
        assert_eq!((d.remaining, d.retry_after), (2, 0));
        assert_eq!(d.reset_at, (now + 20_000) / 1000);
        // Bucket empty: TAT = now + 60 s; a refusal says to wait 20 s.
        let d = Decision::from_tat(limit, false, now + 60_000, now);
        assert_eq!((d.remaining, d.retry_after), (0, 20));
    }
}
