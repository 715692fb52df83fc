//! Counting requests with the generic cell rate algorithm (GCRA): each bucket stores one
//! "theoretical arrival time" (TAT) in the database, so limits hold across a restart and
//! across replicas sharing a database. A bucket allows `burst` requests at once and one
//! more every `interval_ms`; a refused request is not counted.

use crate::service::Portcullis;
use crate::store::StoreError;

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

impl Portcullis {
    /// Counts one request against `bucket`; a refused request is not counted.
    pub async fn throttle(&self, bucket: &str, limit: Limit) -> Result<Decision, StoreError> {
        let now_ms = self.clock.now_ms();
        let (allowed, tat) = self
            .store
            .throttle_hit(
                self.tenant_id(),
                bucket,
                now_ms,
                limit.interval_ms,
                limit.window_ms(),
            )
            .await?;
        Ok(Decision::from_tat(limit, allowed, tat, now_ms))
    }

    /// Whether `bucket` would refuse a request now, without counting one.
    pub async fn throttled(&self, bucket: &str, limit: Limit) -> Result<bool, StoreError> {
        let now_ms = self.clock.now_ms();
        let tat = self.store.throttle_peek(self.tenant_id(), bucket).await?;
        Ok(tat.is_some_and(|tat| tat.max(now_ms) + limit.interval_ms - now_ms > limit.window_ms()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
