//! An application's own share of a rate limit, charged only once a request is known to
//! speak for that application: a confidential client after it has authenticated, a public
//! client once its request holds a grant that checks out (a public client has no secret, so
//! anyone can name it). Until then a request counts against its IP alone, in the HTTP
//! layer's middleware, so naming a victim's `client_id` without its secret cannot spend the
//! victim's budget.

use async_trait::async_trait;

/// A request refused because its application's budget is spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Seconds until the budget allows another request.
    pub retry_after: i64,
}

/// Decides whether a request of an identified application may go on. The HTTP layer
/// implements it with its per-application limits.
#[async_trait]
pub trait Admission: Send + Sync {
    /// Counts one request of `client_id`; `Err` when its budget is spent.
    async fn admit(&self, client_id: &str) -> Result<(), Refused>;
}

/// Admits every request: for surfaces without per-application limits (the login pages,
/// the CLI, tests of other rules).
#[derive(Clone, Copy, Debug, Default)]
pub struct Unlimited;

#[async_trait]
impl Admission for Unlimited {
    async fn admit(&self, _client_id: &str) -> Result<(), Refused> {
        Ok(())
    }
}
